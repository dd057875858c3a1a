"""The composed training config the benchmark runs, outside a Hydra app.

The bench runs ``experiment=quickstart``'s objective (LDM's: L1 + LPIPS summed per sample,
hinge PatchGAN, adaptive weight; offline LPIPS: a random AlexNet backbone costs what the
pretrained one does) but states its own model and batch instead of inheriting the
quickstart's, which is sized for a 5-minute CPU demo and changes with it; likewise the
diagnostics callbacks run at their default intervals, not the demo's. ``SIZE`` is the
size every earlier ``bench/RESULTS.md`` was measured at; profiles put their sizes on top.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from vaegan.train import CONFIG_DIR, compose_train_config


def default_intervals() -> tuple[str, ...]:
    """Every diagnostics interval at ``conf/callbacks/default.yaml``'s value: the bench times
    the callbacks users run (the quickstart shortens some for its demo)."""
    conf = OmegaConf.to_container(OmegaConf.load(Path(CONFIG_DIR) / "callbacks" / "default.yaml"))
    return tuple(  # ++: also composable with callbacks=none (an entry without _target_ is inert)
        f"++callbacks.{name}.{key}={value}"
        for name, section in conf.items() if isinstance(section, dict)
        for key, value in section.items()
        if "every" in str(key) and isinstance(value, int) and not isinstance(value, bool)
    )


# The model and batch the bench measures (not the quickstart's 16-channel model at batch 16):
# conf/model/small.yaml (32 channels, f=2, 0.6 M parameters), 32 px, batch 32, a 2-layer
# PatchGAN with 32 base channels.
SIZE = (
    "model=small",
    "model.ch=32",
    "data.image_size=32",
    "data.batch_size=32",
    "loss.discriminator.ndf=32",
    "loss.discriminator.n_layers=2",
)
BASE = (
    "experiment=quickstart",
    *SIZE,
    "loss.objective.perceptual.pretrained=false",
    "loss.objective.perceptual.download=false",
    *default_intervals(),
    "gan_control=false",  # one run, never the no-GAN pair the quickstart trains
    "threads=null",  # the bench's --threads decides, not the quickstart's 1
)
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
    """``conf/train.yaml`` + the quickstart at ``SIZE`` (or the ``experiment=`` in
    ``overrides``, at its own size) + ``overrides``, writing into ``run_dir``."""
    own_experiment = any(o.startswith("experiment=") for o in overrides)
    base = BASE if not own_experiment else tuple(
        o for o in BASE if not o.startswith("experiment=") and o not in SIZE
    )
    return compose_train_config(run_dir, [*base, *overrides])
