"""The exact-resume runs: 2N steps straight against N steps, then N more from the checkpoint.

``COMMON`` puts state on both sides of the cut at N: the β warm-up and ramp, the GAN ramp and
the LR warm-up cross it, the discriminator is on before and after, and the cut falls mid-epoch
of an augmented, shuffled data set. ``assert_same_run`` is the comparison: the interrupted
run's parts against the uninterrupted run, at every generator step and in the final weights
(test_resume.py in-process, test_slurm_requeue.py through a real scheduler).
"""

from __future__ import annotations

from pathlib import Path

import torch

from tests.helpers.metrics import column, read_metrics
from vaegan.vocab import metric_names as metric

N = 4
COMMON = (
    "gan_start=2",
    "schedule.warmup_steps=1",
    "schedule.ramp_steps=6",
    "schedule.gan_ramp_steps=4",
    "optim.warmup_steps=6",
    "data.num_patches=24",  # 3 batches of 8 per epoch: a cut at step 3 or 4 is mid-epoch 1
    "data.augment=true",
    "trainer.val_check_interval=3",
    "~callbacks.images",
    "loss.objective.perceptual_weight=0",  # speed: LPIPS is frozen, it carries no state
)

CURVES = (metric.TRAIN_LOSS, metric.TRAIN_KL, metric.TRAIN_REC, metric.TRAIN_D_LOSS,
          metric.TRAIN_BETA, metric.TRAIN_ADV_WEIGHT)


def final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return ckpt["state_dict"]


def assert_same_run(reference: Path, parts: list[Path]) -> None:
    """Same curves per generator step and the same final weights (float tolerance)."""
    ref = read_metrics(reference)
    rows = [read_metrics(p) for p in parts]
    for name in CURVES:
        expected = column(ref, name)
        got = {k: v for r in rows for k, v in column(r, name).items()}
        assert len(expected) >= 2 * N - 2 and set(got) == set(expected), name
        for step, value in expected.items():
            assert abs(got[step] - value) <= 1e-6 * abs(value), (name, step, got[step], value)
    a, b = final_state(reference), final_state(parts[-1])
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-7, msg=key)
