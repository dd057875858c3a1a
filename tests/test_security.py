"""Nothing gets in through a file, and no secret gets out into a run dir or a logger."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers.run import train_main, train_tiny
from vaegan.app.checkpoint_io import AtomicCheckpointIO, CheckpointError
from vaegan.data.errors import DataError
from vaegan.vocab.redact import REDACTED, redact_overrides, redact_tree

FAKE_API_KEY = "f4ke0000wandb0000api0000key0000deadbeef"
FAKE_SECRET = "sk-FAKE-7f3a9c1e5b2d4f60"


class MakesADir:
    """Unpickling this calls os.mkdir(path): what a malicious checkpoint would do."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@pytest.mark.slow
def test_secrets_never_land_in_the_run_dir_and_unreachable_wandb_falls_back(tmp_path):
    run_dir = tmp_path / "run"
    env = {
        **os.environ, "WANDB_API_KEY": FAKE_API_KEY, "WANDB_MODE": "online",
        "WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_SILENT": "true",
    }
    exe = Path(sys.executable).parent / "vaegan-train"
    proc = subprocess.run(
        [str(exe), "debug=tiny", f"hydra.run.dir={run_dir}", "steps=2", "gan_start=1",
         "callbacks=none", "logger=wandb", "logger.wandb.init_timeout=5",
         f"+logger_secret={FAKE_SECRET}", "+auth.header=${oc.env:WANDB_API_KEY}"],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run_dir / "csv" / "metrics.csv").is_file()  # trained despite the dead server
    assert "wandb init (online) failed" in proc.stderr
    assert list((run_dir / "wandb").glob("offline-run-*"))  # fell back to offline
    assert f"+logger_secret={REDACTED}" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    leaks = [
        str(path.relative_to(run_dir)) for path in run_dir.rglob("*") if path.is_file()
        and any(s.encode() in path.read_bytes() for s in (FAKE_API_KEY, FAKE_SECRET))
    ]
    assert not leaks, leaks
    assert FAKE_SECRET not in proc.stdout + proc.stderr


def test_redaction_rules():
    env_values = [FAKE_API_KEY]
    tree = {
        "logger": {"api_key": "abc123", "project": "vaegan", "token": None},
        "db": {"password": {"primary": "hunter2"}, "mode": "off"},
        "note": f"uses {FAKE_API_KEY}",
        "ok": True, "exclude_keys": [],
    }
    assert redact_tree(tree, env_values) == {
        "logger": {"api_key": REDACTED, "project": "vaegan", "token": None},
        "db": {"password": {"primary": REDACTED}, "mode": "off"},
        "note": f"uses {REDACTED}",
        "ok": True, "exclude_keys": [],
    }
    assert redact_overrides(["beta=1e-4", "+hf_token=abc", "db.PASSWORD=x", "run_name=a"]) == [
        "beta=1e-4", f"+hf_token={REDACTED}", f"db.PASSWORD={REDACTED}", "run_name=a",
    ]


@pytest.mark.parametrize("name", [
    "+db.passwd", "+hf_auth", "+credentials", "+s3.secret_access", "+ssh.private_key_pem",
    "+http.cookie", "+session_id", "+headers.Authorization", "+gpg.passphrase",
])
def test_widened_secret_names_are_redacted(name):
    assert redact_overrides([f"{name}=hunter2x"]) == [f"{name}={REDACTED}"]
    assert redact_tree({name.lstrip("+").split(".")[-1]: "hunter2x"}, []) != {
        name.lstrip("+").split(".")[-1]: "hunter2x"
    }


def test_ordinary_keys_are_not_redacted():
    plain = ["data.root=/data/images", "trainer.precision=32-true", "loss.objective.rec_kind=l1",
             "model.ch_mult=[1,2]", "optim.betas=[0.5,0.9]", "seed=3"]
    assert redact_overrides(plain) == plain


def test_passwd_auth_and_credentials_never_land_in_the_run_dir(tmp_path, monkeypatch, capsys):
    secrets = {
        "+db.passwd": "pw-1a2b3c4d", "+hf_auth": "hf_5e6f7a8b9c", "+credentials": "cr-0d1e2f3a",
    }
    code, _, err = train_main(monkeypatch, capsys, tmp_path, "steps=1",
                              *(f"{k}={v}" for k, v in secrets.items()))
    assert code == 0, err
    leaks = [
        str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file()
        and any(v.encode() in path.read_bytes() for v in secrets.values())
    ]
    assert not leaks, leaks


def test_checkpoints_get_the_run_dirs_file_mode(tmp_path):
    """One policy: the umask's mode for every file (checkpoints were 0600, the rest 0644)."""
    previous = os.umask(0o022)
    try:
        train_tiny(tmp_path, "steps=1", "~callbacks.images", "~callbacks.latent",
                   "~callbacks.gradients", "~callbacks.discriminator")
    finally:
        os.umask(previous)
    mode = (tmp_path / "checkpoints" / "last.ckpt").stat().st_mode & 0o777
    assert mode == (tmp_path / "csv" / "metrics.csv").stat().st_mode & 0o777 == 0o644


def test_plain_pickle_with_code_is_refused_as_unsafe_not_called_corrupt(tmp_path):
    """A pickle.dump file used to be reported as "mmap ... corrupt or truncated"."""
    import pickle

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    with open(evil, "wb") as f:
        pickle.dump({"state_dict": MakesADir(marker)}, f, protocol=2)
    with pytest.raises(CheckpointError, match="was refused as unsafe: .*GLOBAL posix.mkdir"):
        train_tiny(tmp_path / "run", "callbacks=none", f"ckpt_path={evil}")
    assert not marker.exists()


def test_checkpoint_with_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": MakesADir(marker)}}, evil)
    with pytest.raises(CheckpointError, match="refused: unpickling them can run code"):
        train_tiny(tmp_path / "run", "callbacks=none", f"ckpt_path={evil}")
    with pytest.raises(Exception, match="Weights only load failed"):
        AtomicCheckpointIO().load_checkpoint(evil)  # Lightning's own loader is restricted too
    assert not marker.exists()


@pytest.mark.parametrize("root", ["$(touch pwned)", "`touch pwned`", "; touch pwned"])
def test_data_root_is_a_path_not_a_shell_command(tmp_path, monkeypatch, root):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        train_tiny(
            tmp_path / "run", "callbacks=none", "data=folder", f"data.root='{root}'",
            "data.num_workers=0",
        )
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(("override", "redacted"), [
    ("+headers={Authorization: SECRETx1}", "+headers={Authorization: ***}"),
    ("+h={Authorization: Bearer SECRETx1, accept: json}", "+h={Authorization: ***, accept: json}"),
    ("+svc={auth: {user: u, pw: SECRETx1}, port: 1}", "+svc={auth: ***, port: 1}"),
    ("+h={'api_key': 'SECRETx1', n: 2}", "+h={'api_key': ***, n: 2}"),
    ("+hooks=[{name: a, token: SECRETx1}]", "+hooks=[{name: a, token: ***}]"),
    ("+auth={user: u, pw: SECRETx1}", "+auth=***"),
])
def test_secret_keys_inside_dict_valued_overrides_are_redacted(override, redacted):
    """Only ``name=value`` was redacted: a secret key inside ``{…}`` was written in clear."""
    assert redact_overrides([override]) == [redacted]


def test_dict_valued_override_with_a_secret_never_lands_in_the_run_dir(
    tmp_path, monkeypatch, capsys
):
    """config.yaml had ``***``; overrides.yaml, hydra.yaml, run_info.json and the command
    line wandb records had the secret."""
    from vaegan.loggers.hydra_names import run_label

    code, _, err = train_main(monkeypatch, capsys, tmp_path, "steps=1",
                              f"+headers={{Authorization: Bearer {FAKE_SECRET}, accept: json}}")
    assert code == 0, err
    leaks = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
             if p.is_file() and FAKE_SECRET.encode() in p.read_bytes()]
    assert not leaks, leaks
    assert "Authorization: ***, accept: json" in (tmp_path / ".hydra/overrides.yaml").read_text()
    assert FAKE_SECRET not in " ".join(sys.argv)  # wandb records the command line
    assert FAKE_SECRET not in (run_label() or "")  # the wandb run name


@pytest.mark.parametrize("protocol", [4, 5])
def test_pickle_protocol_4_and_5_with_code_are_refused_as_unsafe_not_corrupt(tmp_path, protocol):
    """Protocol 4/5 name a callable with STACK_GLOBAL, which the weights_only unpickler
    reports as "Unsupported operand 149": the file was called corrupt."""
    import pickle

    from vaegan.app.checkpoint_io import check_resumable

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"state_dict": MakesADir(marker)}, protocol=protocol))
    with pytest.raises(CheckpointError, match=r"refused as unsafe: .*STACK_GLOBAL posix\.mkdir"):
        check_resumable(evil, torch.nn.Linear(1, 1))
    assert not marker.exists()
    evil.write_bytes(pickle.dumps({"state_dict": [1.0, 2.0]}, protocol=protocol)[:-5])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):  # no code: corrupt
        check_resumable(evil, torch.nn.Linear(1, 1))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_real_full_disk_during_a_save_is_the_enospc_line_not_a_torch_traceback(
    tmp_path, monkeypatch
):
    """torch's zip writer turns ENOSPC into ``RuntimeError: … unexpected pos …``, which
    escaped as a traceback; /dev/full gives the error a full disk gives."""
    from vaegan.app import checkpoint_io

    last = tmp_path / "last.ckpt"
    checkpoint_io.atomic_save({"step": 1}, last)
    real_save = torch.save

    def onto_a_full_disk(obj, f, *args, **kwargs):  # a buffered file, as atomic_save's
        full = open("/dev/full", "wb")  # noqa: SIM115
        try:
            real_save(obj, full, *args, **kwargs)  # raises torch's RuntimeError
        finally:
            with contextlib.suppress(OSError):
                full.close()

    monkeypatch.setattr(torch, "save", onto_a_full_disk)
    with pytest.raises(checkpoint_io.CheckpointWriteError) as err:
        checkpoint_io.atomic_save({"step": 2, "w": torch.zeros(100_000)}, last)
    assert str(err.value).startswith(
        f"cannot write the checkpoint {last} (No space left on device, ENOSPC); the previous "
        "one is kept"), err.value
    monkeypatch.undo()
    assert torch.load(last, weights_only=True) == {"step": 1}
    assert not list(tmp_path.glob(".*.tmp"))
