"""The run directory's layout: every name a run writes below RUN_DIR, defined once.

The vocabulary every layer shares (the guard and requeue write ``last.ckpt``, the analysis
reads ``metrics.csv``), so it imports nothing but the standard library: ``vaegan-diagnose`` and the
notebook read run dirs without importing torch or Lightning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKPOINTS = "checkpoints"
LAST_CKPT = "last.ckpt"
FORK_CKPT = "gan_start.ckpt"  # gan_control: the GAN branch's state at gan_start
CSV_DIR = "csv"
METRICS_FILE = "metrics.csv"
RUN_INFO = "run_info.json"
CONTROL_DIR = "control"  # gan_control: the no-GAN branch, a run dir of its own
IMAGES = "images"
PLOTS = "plots"
DIAGNOSIS = "diagnosis.md"
DIAGNOSIS_JSON = "diagnosis.json"
FAILED = "FAILED"  # a failed job's traceback
LOCK_FILE = ".vaegan.lock"
HYDRA_DIR = ".hydra"
HYDRA_CONFIG = "config.yaml"  # Hydra's composed config, in HYDRA_DIR
HYDRA_OVERRIDES = "overrides.yaml"  # the command line's overrides, in HYDRA_DIR
HYDRA_SETTINGS = "hydra.yaml"  # Hydra's own config (run dir, choices), in HYDRA_DIR
# What a previous run leaves that a new run must not mix with (on_existing_run=overwrite
# removes these; CONTROL_DIR too: a pair is overwritten whole, or a new GAN branch is paired
# with the old control).
RUN_OUTPUTS = (CHECKPOINTS, CSV_DIR, IMAGES, PLOTS, RUN_INFO, FAILED, DIAGNOSIS,
               DIAGNOSIS_JSON, CONTROL_DIR, "wandb", "tensorboard")


class RunDirError(ValueError, OSError):
    """A path that is not a usable run directory: it cannot be created, written or read, or
    holds no run. One line: the path and what is wrong. Both a ValueError (bad input to the
    analysis commands) and an OSError (the file system refused), so callers of either kind
    catch it.
    """


@dataclass(frozen=True)
class RunLayout:
    """Paths of one run dir: ``RunLayout(run_dir).last_ckpt`` and so on."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    @property
    def last_ckpt(self) -> Path:
        return self.checkpoints / LAST_CKPT

    @property
    def fork_ckpt(self) -> Path:
        return self.checkpoints / FORK_CKPT

    @property
    def metrics_csv(self) -> Path:
        return self.root / CSV_DIR / METRICS_FILE

    @property
    def run_info(self) -> Path:
        return self.root / RUN_INFO

    @property
    def control(self) -> RunLayout:
        return RunLayout(self.root / CONTROL_DIR)

    @property
    def images(self) -> Path:
        return self.root / IMAGES

    @property
    def plots(self) -> Path:
        return self.root / PLOTS

    @property
    def diagnosis(self) -> Path:
        return self.root / DIAGNOSIS

    @property
    def diagnosis_json(self) -> Path:
        return self.root / DIAGNOSIS_JSON

    @property
    def hydra_config(self) -> Path:
        return self.root / HYDRA_DIR / HYDRA_CONFIG

    @property
    def hydra_overrides(self) -> Path:
        return self.root / HYDRA_DIR / HYDRA_OVERRIDES

    @property
    def hydra_settings(self) -> Path:
        return self.root / HYDRA_DIR / HYDRA_SETTINGS

    @property
    def failed(self) -> Path:
        return self.root / FAILED

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE


def last_checkpoint_path(trainer: Any) -> Path:
    """Where ``last.ckpt`` goes: the checkpoint callback's ``dirpath`` (Lightning's
    ``trainer.checkpoint_callbacks``), else RUN_DIR/checkpoints."""
    for callback in trainer.checkpoint_callbacks:
        if getattr(callback, "dirpath", None):
            return Path(callback.dirpath) / LAST_CKPT
    return RunLayout(trainer.default_root_dir).last_ckpt
