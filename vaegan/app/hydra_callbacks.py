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
from omegaconf import DictConfig, OmegaConf, read_write

from vaegan.app.checkpoint_io import CheckpointError
from vaegan.app.config import ConfigError, check_run_name
from vaegan.app.errors import EXIT_BAD_INPUT
from vaegan.app.rundir import (
    RunDirError,
    archive_hydra_config,
    changed_keys,
    claim_run_dir,
    clear_run,
    ensure_writable,
    is_child_rank,
    run_dir_lock,
)
from vaegan.vocab.redact import redact_tree, redact_yaml_file


class ProbeRunDir(Callback):
    """Before Hydra creates the run (or sweep) dir: one line and exit 2 if it cannot write it.

    Hydra's callback guard turns exceptions into warnings, so this exits itself (SystemExit
    passes the guard).
    """

    def _probe(self, config: DictConfig, directory: str) -> None:
        try:
            check_run_name(config.get("run_name", "run"))  # before the dir it names exists
            ensure_writable(Path(directory))
        except (ConfigError, RunDirError) as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(EXIT_BAD_INPUT)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._probe(config, config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._probe(config, config.hydra.sweep.dir)


class GuardRunDir(Callback):
    """Before Hydra writes ``.hydra/`` into a single run's dir: one run per dir.

    A finished run (``steps`` reached) says so and exits 0 with nothing touched; ``steps``
    below its checkpoint, a dir in use by another run (its lock), or a dir holding another
    run (unless ``on_existing_run`` says ``sibling``/``overwrite``) exit 2 with one line. A
    resume in place archives the previous ``.hydra/`` to ``.hydra/history/`` and warns with
    the training keys it changes. The lock is held until the job ends (``run()`` re-enters
    it). DDP child ranks run in rank 0's dir on rank 0's terms: they only check whether the
    run is finished (under ``srun`` every task must exit then, not wait for rank 0).
    """

    def __init__(self) -> None:
        self._lock: Any = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = Path(config.hydra.run.dir)
        try:
            new_dir, ckpt, finished, overwrite = claim_run_dir(
                run_dir, config.get("ckpt_path"), int(config.steps),
                config.get("on_existing_run", "refuse"),
                finished_check=not config.get("gan_control", False),
            )
            if ckpt is not None and not is_child_rank():  # before anything is written
                refuse_changed_model(config, Path(ckpt), finished)
            if finished:
                print(f"{run_dir}: nothing to do, the run is finished ({ckpt})", flush=True)
                sys.exit(0)
            if new_dir != run_dir:
                with read_write(config):
                    config.hydra.run.dir = str(new_dir)
            self._lock = run_dir_lock(new_dir)
            self._lock.__enter__()
            if overwrite:  # only once the lock says no other run is in there
                clear_run(new_dir)
        except CheckpointError:
            return  # run() reports an unusable checkpoint (one line, before training)
        except (ConfigError, RunDirError) as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(EXIT_BAD_INPUT)
        if ckpt is not None and not is_child_rank():
            self._config_history(config, new_dir, Path(ckpt))

    @staticmethod
    def _config_history(config: DictConfig, run_dir: Path, ckpt: Path) -> None:
        """Warn with the training keys a resume changes; keep the replaced configs."""
        found = resume_changes(config, ckpt)
        if found is None:
            return
        source, changes = found
        kept = archive_hydra_config(run_dir) if source.parent.parent == run_dir.resolve() else None
        if changes:
            where = f"; the previous config is kept in {kept}" if kept else ""
            print(f"warning: resuming {ckpt} with changed training keys: "
                  f"{'; '.join(changes)}{where}", file=sys.stderr, flush=True)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None


# What a resume may not change: the architecture (its weights would not fit, and the refusal
# would come after Hydra rewrote .hydra/); a finished run, the objective too (nothing would be
# trained with it, and "nothing to do" hid that). Memory-only keys may change.
FROZEN_ON_RESUME = ("model",)
FROZEN_WHEN_FINISHED = ("model", "loss")
FREE_MODEL_KEYS = ("model.activation_checkpointing",)


def resume_changes(config: DictConfig, ckpt: Path) -> tuple[Path, list[str]] | None:
    """(the checkpoint's run config, ``key: old -> new`` for each training key this job
    changes); None when the checkpoint has no run dir config beside it."""
    source = ckpt.resolve().parent.parent / ".hydra" / "config.yaml"
    if not source.is_file():
        return None
    job = {k: v for k, v in config.items() if k != "hydra"}
    new = redact_tree(OmegaConf.to_container(OmegaConf.create(job), resolve=False))
    return source, changed_keys(OmegaConf.to_container(OmegaConf.load(source)), new)


def refuse_changed_model(config: DictConfig, ckpt: Path, finished: bool) -> None:
    """ConfigError, before Hydra writes anything, when a resume changes the model (or, for a
    finished run, the model or the loss); the message names the run's own config."""
    found = resume_changes(config, ckpt)
    if found is None:
        return
    source, changes = found
    frozen = FROZEN_WHEN_FINISHED if finished else FROZEN_ON_RESUME
    bad = [c for c in changes
           if c.split(".")[0] in frozen and c.split(":")[0] not in FREE_MODEL_KEYS]
    if not bad:
        return
    what = "is finished and was trained with another model or loss" if finished else \
        "was trained with another model"
    raise ConfigError(
        f"ckpt_path={ckpt} {what}: {'; '.join(bad)} (its config: {source}); nothing was "
        "changed. Resume with that config, or train this one as a new run "
        "(on_existing_run=sibling, or another hydra.run.dir=...)"
    )


class RedactSecrets(Callback):
    """Rewrite ``.hydra/*.yaml`` (and the sweep's ``multirun.yaml``) without secrets, right
    after Hydra saved them and before the job runs (see ``vaegan.vocab.redact``)."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        output_dir = Path(config.hydra.runtime.output_dir)
        subdir = config.hydra.output_subdir
        saved = list((output_dir / str(subdir)).glob("*.yaml")) if subdir is not None else []
        if config.hydra.mode == RunMode.MULTIRUN:
            saved += list(Path(config.hydra.sweep.dir).glob("multirun.yaml"))
        for path in saved:
            redact_yaml_file(path)
