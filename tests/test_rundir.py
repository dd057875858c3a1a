"""Run dirs, resumes and signals: what a re-run, a second run or a kill does to a run dir.

Each test is a row of the "What happens when" table in docs/robustness.md. Real Hydra app
(``main``) or ``train_tiny`` runs of the tiny preset.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tests.helpers.metrics import column, read_metrics
from tests.helpers.run import run_main, train_main
from vaegan.vocab import metric_names as metric

SIGNAL_AT = "+callbacks.stop._target_=tests.helpers.probes.SignalAt"


def snapshot(run_dir: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``run_dir`` with its size and modification time."""
    return {str(p.relative_to(run_dir)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in run_dir.rglob("*") if p.is_file()}


def test_sigterm_checkpoints_at_the_step_boundary_and_exits_143(tmp_path, monkeypatch, capsys):
    """SIGTERM used to end the process at once: nothing saved, nothing recorded, exit 0."""
    def default_action(signum, frame):  # stands in for "the process dies here"
        raise RuntimeError("SIGTERM was not handled by the run")

    previous = signal.signal(signal.SIGTERM, default_action)
    try:
        code, err = run_main(
            monkeypatch, capsys, "debug=tiny", f"hydra.run.dir={tmp_path}", "steps=8",
            SIGNAL_AT, "+callbacks.stop.gen_step=2", "+callbacks.stop.name=SIGTERM",
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == 143, err
    assert "stopped by SIGTERM after generator step 3" in err and "ckpt_path=last" in err
    assert json.loads((tmp_path / "run_info.json").read_text())["status"] == "stopped"
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["vaegan"]["gen_step"] == 3


def test_rerun_of_a_finished_run_says_so_exits_0_and_touches_nothing(
    tmp_path, monkeypatch, capsys
):
    """It used to train one step past ``steps``, append to metrics.csv and overwrite last.ckpt."""
    assert train_main(monkeypatch, capsys, tmp_path, "steps=4", "ckpt_path=last")[0] == 0
    before = snapshot(tmp_path)
    code, out, err = train_main(monkeypatch, capsys, tmp_path, "steps=4", "ckpt_path=last")
    assert code == 0, err
    assert "nothing to do, the run is finished" in out
    assert snapshot(tmp_path) == before


def test_steps_below_the_checkpoint_is_one_line_and_touches_nothing(
    tmp_path, monkeypatch, capsys
):
    assert train_main(monkeypatch, capsys, tmp_path, "steps=4")[0] == 0
    before = snapshot(tmp_path)
    code, _, err = train_main(monkeypatch, capsys, tmp_path, "steps=2", "ckpt_path=last")
    assert code == 2
    assert err.startswith("error: steps=2 must be >= the 4 generator steps"), err
    assert snapshot(tmp_path) == before


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from vaegan.app.rundir import run_dir_lock
with run_dir_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.mark.slow
def test_second_run_in_a_busy_run_dir_stops_naming_the_first_and_a_stale_lock_is_taken_over(
    tmp_path, monkeypatch, capsys
):
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = train_main(monkeypatch, capsys, tmp_path, "steps=2")
        assert code == 2
        assert f"is in use by another run (pid {holder.pid} on " in err, err
        assert not (tmp_path / "csv").exists() and not (tmp_path / ".hydra").exists()
    finally:
        holder.kill()  # SIGKILL: no chance to release the lock; the OS drops it
        holder.wait()
    code, _, err = train_main(monkeypatch, capsys, tmp_path, "steps=2")
    assert code == 0, err
    assert f"taking over the lock of pid {holder.pid}" in err, err
    assert len(column(read_metrics(tmp_path), metric.TRAIN_LOSS)) == 2


def test_fresh_run_into_a_finished_runs_dir_is_refused_unless_asked(
    tmp_path, monkeypatch, capsys
):
    """It used to append a second history to metrics.csv and replace last.ckpt."""
    run_dir = tmp_path / "run"
    assert train_main(monkeypatch, capsys, run_dir, "steps=3")[0] == 0
    before = snapshot(run_dir)
    code, _, err = train_main(monkeypatch, capsys, run_dir, "steps=3")
    assert code == 2
    assert "already holds a run of 3 generator steps" in err and "on_existing_run=" in err, err
    assert snapshot(run_dir) == before

    code, _, err = train_main(monkeypatch, capsys, run_dir, "steps=2",
                              "on_existing_run=sibling")
    assert code == 0, err
    assert snapshot(run_dir) == before
    assert len(column(read_metrics(tmp_path / "run-1"), metric.TRAIN_LOSS)) == 2

    code, _, err = train_main(monkeypatch, capsys, run_dir, "steps=2",
                              "on_existing_run=overwrite")
    assert code == 0, err
    assert sorted(column(read_metrics(run_dir), metric.TRAIN_LOSS)) == [0, 1]  # one history


def test_resume_with_changed_training_keys_warns_and_keeps_the_config_history(
    tmp_path, monkeypatch, capsys
):
    assert train_main(monkeypatch, capsys, tmp_path, "steps=2", "beta=1e-4")[0] == 0
    code, _, err = train_main(monkeypatch, capsys, tmp_path, "steps=4", "ckpt_path=last",
                              "beta=1e-3")
    assert code == 0, err
    assert "changed training keys: beta: 0.0001 -> 0.001" in err, err
    assert "steps" not in err.split("changed training keys:")[1].split(";")[0]
    (history,) = (tmp_path / ".hydra" / "history").iterdir()
    assert OmegaConf.load(history / "config.yaml").beta == 1e-4
    assert OmegaConf.load(tmp_path / ".hydra" / "config.yaml").beta == 1e-3


def test_lock_is_reentrant_nested_dirs_lock_apart_and_child_ranks_are_let_through(
    tmp_path, monkeypatch
):
    """What a gan_control job (RUN_DIR, then RUN_DIR/control, same process) and DDP child
    ranks (rank 0's dir, rank 0's decision) need from the guards."""
    from vaegan.app.rundir import LOCK_FILE, claim_run_dir, run_dir_lock

    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "metrics.csv").write_text("step\n0\n")  # a run is here
    with run_dir_lock(tmp_path), run_dir_lock(tmp_path), run_dir_lock(tmp_path / "control"):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] > 0
    assert (tmp_path / LOCK_FILE).read_text() == ""  # released cleanly: no stale-lock note
    with pytest.raises(Exception, match="already holds a run's metrics"):
        claim_run_dir(tmp_path, None, 4)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert claim_run_dir(tmp_path, None, 4) == (tmp_path, None, False, False)
    ckpt = tmp_path / "done.ckpt"
    torch.save({"vaegan": {"gen_step": 4}}, ckpt)
    assert claim_run_dir(tmp_path, str(ckpt), 4)[2]  # finished: every rank stops, none waits
    with run_dir_lock(tmp_path / "child"):
        assert not (tmp_path / "child").exists()  # rank 1 neither locks nor creates


def test_lock_that_is_a_symlink_is_refused_and_its_target_untouched(
    tmp_path, monkeypatch, capsys
):
    """The lock was opened through the link: its target was emptied and overwritten."""
    target = tmp_path / "precious.txt"
    target.write_text("a user's file\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".vaegan.lock").symlink_to(target)
    code, _, err = train_main(monkeypatch, capsys, run_dir, "steps=2")
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert ".vaegan.lock is a symbolic link" in err and str(target) in err, err
    assert target.read_text() == "a user's file\n"
    assert not (run_dir / ".hydra").exists() and not (run_dir / "csv").exists()


def test_lock_message_names_the_host_even_when_gethostname_is_empty(tmp_path, monkeypatch):
    """It read ``pid N on , started …``: the host was whatever gethostname gave, even ''."""
    from vaegan.app import rundir

    monkeypatch.setattr(rundir.socket, "gethostname", lambda: "")
    with rundir.run_dir_lock(tmp_path):
        info = json.loads((tmp_path / ".vaegan.lock").read_text())
    assert info["host"], info
    held = json.dumps({"pid": 4242, "host": "", "started": "2026-12-05 18:00:00 UTC"})
    assert rundir._holder(held) == "pid 4242 on an unnamed host, started 2026-12-05 18:00:00 UTC"
    assert rundir._holder(json.dumps({"pid": 7})).startswith("pid 7 on an unnamed host")


@pytest.mark.parametrize(("steps", "change", "message"), [
    ("steps=4", "model.ch=16", "was trained with another model: model.ch: 8 -> 16"),
    ("steps=2", "model.ch=16", "is finished and was trained with another model or loss: "
                               "model.ch: 8 -> 16"),
    ("steps=2", "loss.objective.rec_kind=l2", "is finished and was trained with another model "
                                              "or loss: loss.objective.rec_kind: l1 -> l2"),
], ids=["resume", "finished-model", "finished-loss"])
@pytest.mark.slow
def test_resume_with_another_model_is_refused_before_anything_is_written(
    tmp_path, monkeypatch, capsys, steps, change, message
):
    """The refusal came after Hydra rewrote .hydra/config.yaml and the run was marked failed;
    a finished run said "nothing to do" (exit 0) whatever the model or loss."""
    assert train_main(monkeypatch, capsys, tmp_path, "steps=2")[0] == 0
    before = snapshot(tmp_path)
    info = (tmp_path / "run_info.json").read_text()
    code, _, err = train_main(monkeypatch, capsys, tmp_path, steps, "ckpt_path=last", change)
    assert code == 2, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert message in err and f"its config: {tmp_path / '.hydra' / 'config.yaml'}" in err, err
    assert snapshot(tmp_path) == before
    assert (tmp_path / "run_info.json").read_text() == info


KILL_AFTER_SAVE = """
import os, signal, sys
import vaegan.app.checkpoint_io as io
save, kill_at = io.atomic_save, int(sys.argv[1])
def save_then_die(obj, path):  # SIGKILL the moment last.ckpt at gen_step kill_at is on disk
    save(obj, path)
    if str(path).endswith("last.ckpt") and obj["vaegan"]["gen_step"] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
io.atomic_save = save_then_die
from vaegan.train import main
sys.argv = ["vaegan-train", *sys.argv[2:]]
main()
"""


@pytest.mark.slow
def test_sigkill_right_after_a_checkpoint_loses_no_row_the_resume_skips(
    tmp_path, monkeypatch, capsys
):
    """The checkpoint was written before its step's train row and validation were logged
    (and the CSV rows before it were still buffered): the resume never wrote them."""
    from tests.helpers.run import TINY_MAIN, run_main_io

    argv = (*TINY_MAIN, f"hydra.run.dir={tmp_path}", "steps=6", "ckpt_path=last",
            "callbacks.checkpoint.every_n_gen_steps=3", "trainer.val_check_interval=3",
            "loss.objective.perceptual_weight=0")
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_SAVE, "3", *argv],
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt",
                      weights_only=True)["vaegan"]["gen_step"] == 3
    code, _, err = run_main_io(monkeypatch, capsys, *argv)
    assert code == 0, err
    rows = read_metrics(tmp_path)
    train_steps = sorted(int(float(r["gen_step"])) for r in rows if r.get(metric.TRAIN_LOSS))
    assert train_steps == list(range(6))  # each step once: none lost, none twice
    assert sorted(column(rows, metric.VAL_REC)) == [3, 6]


def test_sigint_checkpoints_records_stopped_and_exits_130(tmp_path, monkeypatch, capsys):
    """Ctrl-C went through Lightning's KeyboardInterrupt handling: exit 1, no status."""
    code, _, err = train_main(monkeypatch, capsys, tmp_path, "steps=4", SIGNAL_AT,
                              "+callbacks.stop.gen_step=1", "+callbacks.stop.name=SIGINT")
    assert code == 130, err
    assert "stopped by SIGINT after generator step 2" in err, err
    assert json.loads((tmp_path / "run_info.json").read_text())["status"] == "stopped"
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["vaegan"]["gen_step"] == 2


def test_run_name_cannot_leave_the_outputs_dir(tmp_path, monkeypatch, capsys):
    """``run_name=../../x`` made the run dir (and what overwrite deletes) outside outputs/."""
    from tests.helpers.run import run_main_io

    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    code, _, err = run_main_io(monkeypatch, capsys, "debug=tiny", "run_name=../../escaped")
    assert code == 2, err
    assert err.startswith("error: run_name='../../escaped' must be one folder name"), err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == [
        Path("a"), Path("a/b")]


def test_a_non_utf8_file_name_is_named_not_a_unicode_traceback(tmp_path, monkeypatch, capsys):
    """An unreadable image whose name is not UTF-8 ended in ``UnicodeEncodeError:
    surrogates not allowed`` (writing FAILED, printing the error) instead of naming it."""
    import numpy as np
    from PIL import Image

    from tests.helpers.run import run_main_io

    root = tmp_path / "images"
    root.mkdir()
    for i in range(12):
        Image.fromarray(np.full((40, 40, 3), 10 * i, np.uint8)).save(root / f"img{i}.png")
    (root / os.fsdecode(b"caf\xe9.png")).write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 40)
    run_dir = tmp_path / "run"
    code, _, err = run_main_io(monkeypatch, capsys, "debug=tiny", "data=folder",
                               f"data.root={root}", f"hydra.run.dir={run_dir}", "steps=1")
    assert code == 2, err
    assert err.startswith("error: 1 unreadable images: ") and "caf\\xe9.png" in err, err
    assert "caf\\xe9.png" in (run_dir / "FAILED").read_text()
    assert "caf\\xe9.png" in json.loads((run_dir / "run_info.json").read_text())["error"]
