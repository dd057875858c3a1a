"""The composed training config the benchmark runs, outside a Hydra app.

The bench measures what ``vaegan-train experiment=quickstart`` trains (offline LPIPS: a random
AlexNet backbone costs the same as the pretrained one), at a size chosen by the profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from vaegan.train import compose_train_config

BASE = ("experiment=quickstart", "loss.objective.perceptual.pretrained=false")
# The tiniest model that still runs every code path (AlexNet-LPIPS needs >= 32 px).
TINY = (
    "model.ch=8",
    "data.batch_size=4",
    "data.num_patches=64",
    "loss.discriminator.ndf=8",
)
# Stable Diffusion's first stage and loss (VGG-LPIPS, the larger PatchGAN); sizes come on top.
SD_KL_F8 = ("experiment=sd_kl_f8",)


def bench_config(run_dir: Path, overrides: Sequence[str] = ()) -> DictConfig:
    """``conf/train.yaml`` + the quickstart (or the ``experiment=`` in ``overrides``) +
    ``overrides``, writing into ``run_dir``."""
    own_experiment = any(o.startswith("experiment=") for o in overrides)
    base = [o for o in BASE if not (own_experiment and o.startswith("experiment="))]
    return compose_train_config(run_dir, [*base, *overrides])
