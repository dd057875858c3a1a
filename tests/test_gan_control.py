"""``gan_control=true``: the no-GAN branch forked at ``gan_start`` is the run without the GAN.

Three tiny runs through the real Trainer: the pair, a plain run with the same ``gan_start``
and a run whose GAN never switches on (``gan_start`` beyond ``steps``). The GAN branch must be
the plain run and the control the never-GAN run, step for step, with everything before
``gan_start`` computed once. Then a pre-emption inside the control, resumed with the same
command, and a 2-job multirun.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers.metrics import column, read_metrics
from tests.helpers.offline_wandb import offline_run
from tests.helpers.run import train_tiny
from vaegan.app.config import ConfigError
from vaegan.vocab import metric_names as metric

STEPS, GAN_START = 12, 6
COMMON = (
    f"steps={STEPS}",
    "~callbacks.images",
    "loss.objective.perceptual_weight=0",  # speed: LPIPS is frozen, it carries no state
    "data.num_patches=40",  # 5 batches per epoch: the fork falls mid-epoch
    "trainer.val_check_interval=4",
)
CURVES = (metric.TRAIN_LOSS, metric.TRAIN_KL, metric.TRAIN_REC, metric.TRAIN_KL_VAR,
          metric.TRAIN_BETA)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gan_control")
    dirs = {"pair": root / "pair", "plain": root / "plain", "never": root / "never"}
    result = train_tiny(dirs["pair"], *COMMON, f"gan_start={GAN_START}", "gan_control=true")
    assert result["gen_step"] == STEPS and result["control"]["gen_step"] == STEPS
    train_tiny(dirs["plain"], *COMMON, f"gan_start={GAN_START}")
    train_tiny(dirs["never"], *COMMON, f"gan_start={10 * STEPS}")
    return dirs


def assert_same_curves(got_dir: Path, want_dir: Path, steps: range) -> None:
    got, want = read_metrics(got_dir), read_metrics(want_dir)
    for name in CURVES:
        g, w = column(got, name), column(want, name)
        assert sorted(g) == list(steps), (name, sorted(g))
        for step in steps:
            assert g[step] == pytest.approx(w[step], rel=1e-6, abs=1e-9), (name, step)


@pytest.mark.slow
def test_gan_branch_is_the_plain_run(runs):
    assert_same_curves(runs["pair"], runs["plain"], range(STEPS))
    assert max(column(read_metrics(runs["pair"]), metric.TRAIN_ADV_WEIGHT)) > 0


@pytest.mark.slow
def test_control_is_the_run_whose_gan_never_switches_on(runs):
    control = runs["pair"] / "control"
    # computed once: the control's rows start at the fork, the GAN branch holds the trunk
    assert_same_curves(control, runs["never"], range(GAN_START, STEPS))
    assert set(column(read_metrics(control), metric.TRAIN_ADV_WEIGHT).values()) == {0.0}
    assert column(read_metrics(control), metric.TRAIN_D_LOSS) == {}
    rows = read_metrics(control)
    val_steps = sorted({int(float(r["gen_step"])) for r in rows if r.get(metric.VAL_REC)})
    assert val_steps == [8, 12]  # validation continues on the same clock
    info = json.loads((control / "run_info.json").read_text())
    assert (info["branch"], info["fork_step"], info["gan_start"]) == ("control", GAN_START, None)
    fork = torch.load(runs["pair"] / "checkpoints" / "gan_start.ckpt", weights_only=True)
    assert fork["vaegan"]["gen_step"] == GAN_START


@pytest.mark.slow
def test_preempted_control_resumes_with_the_same_command(runs, tmp_path):
    run_dir = tmp_path / "pair"
    overrides = (
        *COMMON, f"gan_start={GAN_START}", "gan_control=true", "ckpt_path=last",
        "callbacks.checkpoint.every_n_gen_steps=100",  # the signal's save is the only one
    )
    signal = (
        "+callbacks.preempt._target_=tests.helpers.probes.SignalAt",
        "+callbacks.preempt.gen_step=9",
        "+callbacks.preempt.run_dir_name=control",
    )
    stopped = train_tiny(run_dir, *overrides, *signal)
    assert 9 <= stopped["control"]["gen_step"] < STEPS  # stopped inside the control
    assert json.loads((run_dir / "run_info.json").read_text())["status"] == "stopped"
    gan_ckpt = run_dir / "checkpoints" / "last.ckpt"
    before = gan_ckpt.stat().st_mtime_ns

    resumed = train_tiny(run_dir, *overrides)  # the requeued job: same command, same dir
    assert resumed["control"]["gen_step"] == STEPS
    assert gan_ckpt.stat().st_mtime_ns == before  # the finished GAN branch is not retrained
    assert_same_curves(run_dir / "control", runs["never"], range(GAN_START, STEPS))
    assert_same_curves(run_dir, runs["plain"], range(STEPS))

    files = [p for p in run_dir.rglob("*") if p.is_file() and p.name != ".vaegan.lock"]
    stamps = {p: p.stat().st_mtime_ns for p in files}
    again = train_tiny(run_dir, *overrides)  # a finished pair: nothing to train or touch
    assert again["finished"] and again["control"]["gen_step"] == STEPS
    assert {p: p.stat().st_mtime_ns for p in files} == stamps
    with pytest.raises(ConfigError, match="must be >= the 12 generator steps"):
        train_tiny(run_dir, *overrides[1:], "steps=10")  # below the checkpoints: an error


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("gan_start=0",), "1 <= gan_start < steps"),
        (("gan_start=12",), "1 <= gan_start < steps"),
        (("loss=vae",), "needs the GAN"),
        (("optim.accumulate=4",), "multiple of optim.accumulate=4"),
    ],
)
def test_gan_control_refuses_a_pair_without_a_fork(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train_tiny(tmp_path, "gan_control=true", *overrides)


@pytest.mark.slow
def test_multirun_gives_each_job_its_control(tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "vaegan-train"), "-m", "debug=tiny", "steps=4",
            "gan_start=2", "gan_control=true", "schedule=constant",
            "loss.objective.perceptual_weight=0",
            "~callbacks.images", "beta=1e-4,1e-2", f"hydra.sweep.dir={sweep}",
        ],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job, beta in (("0", 1e-4), ("1", 1e-2)):
        control = sweep / job / "control"
        betas = set(column(read_metrics(control), metric.TRAIN_BETA).values())
        assert len(betas) == 1 and betas.pop() == pytest.approx(beta)  # logged as float32
        assert sorted(column(read_metrics(control), metric.TRAIN_LOSS)) == [2, 3]
    assert "2 jobs, 0 failed" in (sweep / "summary.md").read_text()  # controls are not jobs


@pytest.mark.slow
def test_wandb_gets_the_pair_as_two_runs_of_one_group(tmp_path):
    run_dir = tmp_path / "pair"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = subprocess.run(  # a process of its own: its exit flushes both offline runs
        [
            str(Path(sys.executable).parent / "vaegan-train"), "debug=tiny", "steps=4",
            "gan_start=2", "gan_control=true", "logger=wandb",
            "loss.objective.perceptual_weight=0", "~callbacks.images", f"hydra.run.dir={run_dir}",
        ],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    gan, control = offline_run(run_dir), offline_run(run_dir / "control")
    assert gan["run"].run_group == control["run"].run_group == f"quickstart-{run_dir.name}"
    assert control["run"].display_name == gan["run"].display_name + " [no-GAN control]"
    assert metric.TRAIN_KL in control["history"] and gan["run"].run_id != control["run"].run_id


@pytest.mark.slow
def test_overwrite_replaces_the_whole_pair_and_both_branches_record_one_fork(
    tmp_path, monkeypatch, capsys
):
    """``overwrite`` kept the old ``control/``: the new GAN branch was paired with it."""
    from tests.helpers.run import train_main

    pair = ("steps=3", "gan_start=1", "gan_control=true", "loss.objective.perceptual_weight=0")
    assert train_main(monkeypatch, capsys, tmp_path, *pair)[0] == 0
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = train_main(monkeypatch, capsys, tmp_path, *pair, "seed=1",
                              "on_existing_run=overwrite")
    assert code == 0, err
    assert "deleting checkpoints/, csv/, run_info.json, control/" in err, err
    assert "keeping notes.txt" in err, err
    assert yaml_seed(tmp_path / "control") == 1  # the control was trained again, from the fork
    gan = json.loads((tmp_path / "run_info.json").read_text())
    control = json.loads((tmp_path / "control" / "run_info.json").read_text())
    assert gan["fork_id"] and gan["fork_id"] == control["fork_id"]


def yaml_seed(run_dir: Path) -> int:
    from omegaconf import OmegaConf

    return int(OmegaConf.load(run_dir / ".hydra" / "config.yaml").seed)


@pytest.mark.slow
def test_stop_in_the_control_names_its_step_and_the_finished_pair_is_completed(
    tmp_path, monkeypatch, capsys
):
    """The stop named the GAN branch's last step and checkpoint; after the resume finished
    both branches the job's run_info.json still said "stopped"."""
    from tests.helpers.run import train_main

    pair = ("steps=4", "gan_start=1", "gan_control=true", "ckpt_path=last",
            "loss.objective.perceptual_weight=0")
    stop = ("+callbacks.stop._target_=tests.helpers.probes.SignalAt",
            "+callbacks.stop.gen_step=2", "+callbacks.stop.name=SIGTERM",
            "+callbacks.stop.run_dir_name=control")
    code, _, err = train_main(monkeypatch, capsys, tmp_path, *pair, *stop)
    assert code == 143, err
    step = torch.load(tmp_path / "control" / "checkpoints" / "last.ckpt",
                      weights_only=True)["vaegan"]["gen_step"]
    assert step < 4
    last = tmp_path / "control" / "checkpoints" / "last.ckpt"
    assert f"stopped by SIGTERM after generator step {step}: {last}" in err, err
    assert json.loads((tmp_path / "run_info.json").read_text())["status"] == "stopped"
    code, _, err = train_main(monkeypatch, capsys, tmp_path, *pair)
    assert code == 0, err
    assert json.loads((tmp_path / "run_info.json").read_text())["status"] == "completed"
