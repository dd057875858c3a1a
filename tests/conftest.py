"""Shared fixtures: compose the real Hydra config and train tiny runs in ``tmp_path``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from vaegan.train import CONFIG_DIR, run

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def compose_config(run_dir: Path, *overrides: str, debug: str | None = "tiny") -> DictConfig:
    """The composed ``conf/train.yaml`` as ``vaegan-train`` would see it, run dir ``run_dir``."""
    GlobalHydra.instance().clear()
    extra = [f"debug={debug}"] if debug else []
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[*extra, *overrides, f"hydra.run.dir={run_dir}"],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    return cfg


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
