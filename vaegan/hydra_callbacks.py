"""Hydra callbacks that run around each job: checks and cleanup Hydra's own writes need.

Both are wired in ``conf/hydra/default.yaml``. They exist because Hydra writes into the run
dir *before* the task function (``run()``) starts: a secret in an override is already on disk,
and an unwritable run dir fails inside Hydra with a traceback, not in ``run()``'s check.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from vaegan.errors import EXIT_BAD_INPUT
from vaegan.redact import redact_yaml_file
from vaegan.rundir import RunDirError, ensure_writable


class ProbeRunDir(Callback):
    """Before Hydra creates the run (or sweep) dir: one line and exit 2 if it cannot write it.

    Hydra's callback guard turns exceptions into warnings, so this exits itself (SystemExit
    passes the guard).
    """

    def _probe(self, directory: str) -> None:
        try:
            ensure_writable(Path(directory))
        except RunDirError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(EXIT_BAD_INPUT)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._probe(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._probe(config.hydra.sweep.dir)


class RedactSecrets(Callback):
    """Rewrite ``.hydra/*.yaml`` (and the sweep's ``multirun.yaml``) without secrets, right
    after Hydra saved them and before the job runs (see ``vaegan.redact``)."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        output_dir = Path(config.hydra.runtime.output_dir)
        subdir = config.hydra.output_subdir
        saved = list((output_dir / str(subdir)).glob("*.yaml")) if subdir is not None else []
        if config.hydra.mode == RunMode.MULTIRUN:
            saved += list(Path(config.hydra.sweep.dir).glob("multirun.yaml"))
        for path in saved:
            redact_yaml_file(path)
