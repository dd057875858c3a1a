"""How big and how long each measurement runs: ``make bench``, ``--quick``, ``--tiny``."""

from __future__ import annotations

from dataclasses import dataclass, replace

from vaegan.bench.config import SD_KL_F8, TINY


@dataclass(frozen=True)
class Profile:
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
    # repeats for the measurements other modules own (callbacks_cost times >= 50 steps per fit,
    # ddp_cost starts processes): they are most of the bench's runtime
    external_repeats: int = 3


FULL = Profile(
    warmup=2, steps=5, repeats=5, size=(),
    batch_sizes=(8, 16, 32, 64), image_sizes=(32, 64, 128), image_batch=8,
    sd_size=(*SD_KL_F8, "data.image_size=64", "data.batch_size=2"), compile=True,
)
QUICK = replace(
    FULL, warmup=1, steps=3, repeats=3, size=("data.batch_size=16",),
    batch_sizes=(8, 16, 32), image_sizes=(32, 64), image_batch=8,
    sd_size=(*SD_KL_F8, "data.image_size=32", "data.batch_size=1"), compile=False,
    fresh_memory_process=False, external_repeats=1,
)


def tiny(base: Profile) -> Profile:
    """The smallest networks that run every code path: for the test suite, seconds."""
    return replace(
        base, warmup=1, steps=2, repeats=min(base.repeats, 2), size=TINY,
        batch_sizes=(2, 4), image_sizes=(32, 64), image_batch=2,
        sd_size=(), fresh_memory_process=False, external_repeats=1,
    )
