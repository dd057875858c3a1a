"""The exact-resume runs: 2N steps straight against N steps, then N more from the checkpoint.

``COMMON`` puts state on both sides of the cut at N: the β warm-up and ramp, the GAN ramp and
the LR warm-up cross it, the discriminator is on before and after, and the cut falls mid-epoch
of an augmented, shuffled data set.
"""

from __future__ import annotations

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
