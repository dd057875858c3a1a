"""Shared fixtures and the test environment: wandb offline, tiny runs in ``tmp_path``, and the
tests marked ``gpu`` skipped on a machine without CUDA."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.helpers.run import train_tiny

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")


@pytest.fixture
def tiny_run(tmp_path: Path):
    """A factory: ``tiny_run("beta=0", ...)`` trains in a fresh dir and returns its result."""
    counter = iter(range(1000))

    def factory(*overrides: str, debug: str | None = "tiny") -> dict:
        return train_tiny(tmp_path / f"run{next(counter)}", *overrides, debug=debug)

    return factory
