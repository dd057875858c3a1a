"""Nothing gets in through a file, and no secret gets out into a run dir or a logger."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import train_tiny
from vaegan.checkpoint_io import AtomicCheckpointIO, CheckpointError
from vaegan.data.errors import DataError
from vaegan.redact import REDACTED, redact_overrides, redact_tree

FAKE_API_KEY = "f4ke0000wandb0000api0000key0000deadbeef"
FAKE_SECRET = "sk-FAKE-7f3a9c1e5b2d4f60"


class MakesADir:
    """Unpickling this calls os.mkdir(path): what a malicious checkpoint would do."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


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
            "~data.num_patches", "data.num_workers=0",
        )
    assert not (tmp_path / "pwned").exists()
