"""Shared fixtures: compose the real Hydra config and train tiny runs in ``tmp_path``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from omegaconf import DictConfig

from vaegan.train import compose_train_config, run

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def compose_config(run_dir: Path, *overrides: str, debug: str | None = "tiny") -> DictConfig:
    """The composed ``conf/train.yaml`` as ``vaegan-train`` would see it, run dir ``run_dir``."""
    extra = [f"debug={debug}"] if debug else []
    return compose_train_config(run_dir, [*extra, *overrides])


def train_tiny(run_dir: Path, *overrides: str, debug: str | None = "tiny") -> dict:
    """Train a tiny run in-process through the same ``run()`` that ``vaegan-train`` calls."""
    return run(compose_config(run_dir, *overrides, debug=debug), run_dir=run_dir)


@pytest.fixture
def tiny_run(tmp_path: Path):
    """A factory: ``tiny_run("beta=0", ...)`` trains in a fresh dir and returns its result."""
    counter = iter(range(1000))

    def factory(*overrides: str, debug: str | None = "tiny") -> dict:
        return train_tiny(tmp_path / f"run{next(counter)}", *overrides, debug=debug)

    return factory
