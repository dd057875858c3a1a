"""Compose the real Hydra config and run ``vaegan-train`` in-process, as a user would."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from vaegan.app.config import validate
from vaegan.app.errors import config_errors
from vaegan.train import build_module, compose_train_config, main, run

# The tiny preset without the diagnostics callbacks: a ``vaegan-train`` run in seconds.
TINY_MAIN = ("debug=tiny", "gan_start=2", "~callbacks.images", "~callbacks.latent",
             "~callbacks.gradients", "~callbacks.discriminator")


def compose_config(run_dir: Path, *overrides: str, debug: str | None = "tiny") -> DictConfig:
    """The composed ``conf/train.yaml`` as ``vaegan-train`` would see it, run dir ``run_dir``."""
    extra = [f"debug={debug}"] if debug else []
    return compose_train_config(run_dir, [*extra, *overrides])


def train_tiny(run_dir: Path, *overrides: str, debug: str | None = "tiny") -> dict:
    """Train a tiny run in-process through the same ``run()`` that ``vaegan-train`` calls."""
    return run(compose_config(run_dir, *overrides, debug=debug), run_dir=run_dir)


def run_main_io(monkeypatch, capsys, *argv: str) -> tuple[int, str, str]:
    """``vaegan-train ARGV`` in-process (Hydra's own logging off); (exit code, stdout, stderr),
    the code 0 when it returns."""
    GlobalHydra.instance().clear()
    argv = (*argv, "hydra/job_logging=disabled", "hydra/hydra_logging=disabled")
    monkeypatch.setattr(sys, "argv", ["vaegan-train", *argv])
    # Hydra's logging config disables every existing logger: later caplog tests would see none
    loggers = [lg for lg in logging.Logger.manager.loggerDict.values()
               if isinstance(lg, logging.Logger)]
    disabled, root_level = {lg: lg.disabled for lg in loggers}, logging.getLogger().level
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code
    finally:
        for lg, was in disabled.items():
            lg.disabled = was
        logging.getLogger().setLevel(root_level)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_main(monkeypatch, capsys, *argv: str) -> tuple[int, str]:
    """``run_main_io`` without stdout: (exit code, stderr)."""
    code, _, err = run_main_io(monkeypatch, capsys, *argv)
    return code, err


def train_main(monkeypatch, capsys, run_dir: Path, *argv: str) -> tuple[int, str, str]:
    """A tiny ``vaegan-train`` in-process in ``run_dir``: (exit code, stdout, stderr)."""
    return run_main_io(monkeypatch, capsys, *TINY_MAIN, f"hydra.run.dir={run_dir}", *argv)


def check_config(cfg: DictConfig) -> None:
    """What a run checks before it trains: the config's cross-section rules, then each
    constructor's own ranges (as one-line ConfigErrors)."""
    with config_errors():
        validate(cfg)
        build_module(cfg)
