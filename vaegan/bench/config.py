"""What the bench trains (the composed config) and how big and how long (the profiles).

The bench runs ``experiment=quickstart``'s objective (LDM's: L1 + LPIPS summed per sample,
hinge PatchGAN, adaptive weight; offline LPIPS: a random AlexNet backbone costs what the
pretrained one does) but states its own model and batch instead of inheriting the
quickstart's, which is sized for a 5-minute CPU demo and changes with it; likewise the
diagnostics callbacks run at their default intervals, not the demo's. ``SIZE`` is the
size every earlier ``bench/RESULTS.md`` was measured at; profiles put their sizes on top.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
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
    own_experiment = any(override.startswith("experiment=") for override in overrides)
    base = BASE if not own_experiment else tuple(
        override for override in BASE
        if not override.startswith("experiment=") and override not in SIZE
    )
    return compose_train_config(run_dir, [*base, *overrides])


@dataclass(frozen=True)
class Profile:
    """How big and how long each measurement runs: ``make bench``, ``--quick``, ``--tiny``."""

    warmup: int  # untimed batches before each measurement
    steps: int  # timed batches per repeat
    repeats: int  # interleaved repeats per comparison
    size: tuple[str, ...]  # overrides for the size every comparison runs at
    batch_sizes: tuple[int, ...]  # scaling over batch size, at the base image size
    image_sizes: tuple[int, ...]  # scaling over image size, at ``image_batch``
    image_batch: int
    sd_size: tuple[str, ...]  # Stable Diffusion's kl-f8 model at a size a CPU can step
    compile: bool  # torch.compile costs minutes of compilation on a CPU
    fresh_memory_process: bool = True  # one process per memory probe (else: this one, inexact)
    # repeats of the two long measurements (the diagnostics cost times >= 50 batches per fit,
    # the DDP cost starts processes): they are most of the bench's runtime
    long_repeats: int = 3


FULL = Profile(
    warmup=2, steps=5, repeats=5, size=(),
    batch_sizes=(8, 16, 32, 64), image_sizes=(32, 64, 128), image_batch=8,
    sd_size=(*SD_KL_F8, "data.image_size=64", "data.batch_size=2"), compile=True,
)
QUICK = replace(
    FULL, warmup=1, steps=3, repeats=3, size=("data.batch_size=16",),
    batch_sizes=(8, 16, 32), image_sizes=(32, 64), image_batch=8,
    sd_size=(*SD_KL_F8, "data.image_size=32", "data.batch_size=1"), compile=False,
    fresh_memory_process=False, long_repeats=1,
)


def tiny(base: Profile) -> Profile:
    """The smallest networks that run every code path: for the test suite, seconds."""
    return replace(
        base, warmup=1, steps=2, repeats=min(base.repeats, 2), size=TINY,
        batch_sizes=(2, 4), image_sizes=(32, 64), image_batch=2,
        sd_size=(), fresh_memory_process=False, long_repeats=1,
    )
