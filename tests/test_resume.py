"""Exact resume: 2N steps straight == N steps, then N more from the checkpoint.

Everything that carries state across the cut is exercised: the β warm-up/ramp and the GAN ramp
cross it, the LR warm-up (scheduler state) crosses it, the discriminator is on before and
after, the cut falls mid-epoch of an augmented, shuffled data set (loader position, order and
crops), and the posterior noise comes from the global RNG (checkpointed RNG states). The cut is
made twice: by a shorter run, and by a pre-emption signal (checkpoint, requeue, then the same
command with ``ckpt_path=last`` in the same run dir, whose metrics.csv must continue).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers.metrics import column, read_metrics
from tests.helpers.resume import COMMON, N, assert_same_run, final_state
from tests.helpers.run import train_tiny
from vaegan.vocab import metric_names as metric

pytestmark = pytest.mark.slow  # every test trains two or three runs and compares them


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("straight")
    assert train_tiny(run_dir, *COMMON, f"steps={2 * N}")["gen_step"] == 2 * N
    return run_dir


def test_resume_reproduces_the_uninterrupted_run(straight, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    every = f"callbacks.checkpoint.every_n_gen_steps={N}"
    assert train_tiny(first, *COMMON, every, f"steps={N}")["gen_step"] == N
    ckpt = first / "checkpoints" / "last.ckpt"
    result = train_tiny(second, *COMMON, every, f"steps={2 * N}", f"ckpt_path={ckpt}")
    assert result["gen_step"] == 2 * N
    assert min(column(read_metrics(second), metric.TRAIN_LOSS)) == N  # continued, not restarted
    assert_same_run(straight, [first, second])


def test_preemption_checkpoints_requeues_and_resumes_exactly(straight, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    run_dir = tmp_path / "run"
    marker = tmp_path / "requeued"
    overrides = (
        *COMMON,
        f"steps={2 * N}",
        "callbacks.checkpoint.every_n_gen_steps=100",  # no periodic save: the signal's only
        f"callbacks.requeue.command=[touch,'{marker}_{{job_id}}']",
        "ckpt_path=last",  # what the sbatch template passes: resume if last.ckpt exists
    )
    signal_at = (
        "+callbacks.preempt._target_=tests.helpers.probes.SignalAt",
        f"+callbacks.preempt.gen_step={N - 1}",
    )
    stopped = train_tiny(run_dir, *overrides, *signal_at)
    assert stopped["gen_step"] < 2 * N  # stopped early, at a step boundary
    assert Path(f"{marker}_4242").is_file()  # `scontrol requeue 4242` stand-in
    assert '"status": "requeued"' in (run_dir / "run_info.json").read_text()
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["vaegan"]["gen_step"] == stopped["gen_step"]

    resumed = train_tiny(run_dir, *overrides)  # the requeued job: same command, same dir
    assert resumed["gen_step"] == 2 * N
    assert_same_run(straight, [run_dir])


def test_resume_from_the_end_of_training_checkpoint_is_exact(tmp_path):
    """The most common resume: extend a finished run. Default callbacks and data (the tiny
    preset saves every 6 steps, so the cut at 4 is the checkpoint written at train end)."""
    common = ("seed=7", "gan_start=3", "loss.objective.perceptual_weight=0")
    straight, first, second = tmp_path / "straight", tmp_path / "first", tmp_path / "second"
    train_tiny(straight, *common, f"steps={2 * N}")
    train_tiny(first, *common, f"steps={N}")
    ckpt = first / "checkpoints" / "last.ckpt"
    train_tiny(second, *common, f"steps={2 * N}", f"ckpt_path={ckpt}")
    ref = column(read_metrics(straight), metric.TRAIN_LOSS)
    got = column(read_metrics(second), metric.TRAIN_LOSS)
    assert sorted(got) == list(range(N, 2 * N))
    for step in got:
        assert got[step] == pytest.approx(ref[step], rel=1e-6), (step, got, ref)
    a, b = final_state(straight), final_state(second)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-7, msg=key)
