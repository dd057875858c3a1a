"""Refuse to start a run whose directory cannot hold its checkpoints.

Without this, an unwritable or full run dir shows up as an OSError from the first checkpoint
save, after the first ``every_n_gen_steps`` steps of compute, or (worse) as a truncated file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from torch import nn

MARGIN_BYTES = 64 << 20  # logs, image grids and metrics beside the checkpoints


class RunDirError(OSError):
    """The run dir cannot be created or written, or has too little free space."""


def _reason(err: OSError) -> str:
    return err.strerror or type(err).__name__


def ensure_writable(run_dir: Path) -> None:
    """Create ``run_dir`` and write, fsync and delete a probe file in it."""
    fix = "pick another dir with hydra.run.dir=... (or fix its permissions)"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(f"cannot create the run dir {run_dir} ({_reason(err)}); {fix}") from None
    probe = run_dir / f".write-probe-{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        reason = _reason(err)
        raise RunDirError(f"cannot write to the run dir {run_dir} ({reason}); {fix}") from None
    finally:
        probe.unlink(missing_ok=True)


def checkpoint_bytes(module: nn.Module) -> int:
    """About the size of a training checkpoint: the state dict plus Adam's two moments."""
    state = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    trainable = sum(p.numel() * p.element_size() for p in module.parameters() if p.requires_grad)
    return state + 2 * trainable


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def ensure_space(run_dir: Path, module: nn.Module) -> None:
    """Room for two checkpoints (an atomic save keeps the old one until the new one is whole)."""
    need = 2 * checkpoint_bytes(module) + MARGIN_BYTES
    free = free_bytes(run_dir)
    if free < need:
        raise RunDirError(
            f"the run dir {run_dir} has {free / 2**20:.0f} MiB free; this model's checkpoints "
            f"need about {need / 2**20:.0f} MiB (two copies while one is replaced); free space "
            "or pick another dir with hydra.run.dir=..."
        )
