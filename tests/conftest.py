"""Shared fixtures and the test environment: wandb offline, tiny runs in ``tmp_path``, the
tests marked ``gpu`` skipped on a machine without CUDA, and those marked ``slurm`` skipped
where no SLURM cluster answers (``make test-slurm`` starts one and makes them fail instead)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.helpers import slurm
from tests.helpers.run import train_tiny

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    if item.get_closest_marker("slurm") and (reason := slurm.unavailable()):
        if os.environ.get(slurm.REQUIRE) == "1":  # make test-slurm: a missing cluster fails
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under ``make test-slurm`` a skipped test is a failure: none may pass by not running."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get(slurm.REQUIRE) == "1" and skipped and session.exitstatus == 0:
        print(f"\n{slurm.REQUIRE}=1: {skipped} test(s) skipped; every test must run")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def tiny_run(tmp_path: Path):
    """A factory: ``tiny_run("beta=0", ...)`` trains in a fresh dir and returns its result."""
    counter = iter(range(1000))

    def factory(*overrides: str, debug: str | None = "tiny") -> dict:
        return train_tiny(tmp_path / f"run{next(counter)}", *overrides, debug=debug)

    return factory
