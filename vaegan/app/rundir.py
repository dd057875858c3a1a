"""Refuse to start a run whose directory cannot hold its checkpoints, or holds another run.

Without this, an unwritable or full run dir shows up as an OSError from the first checkpoint
save, after the first ``every_n_gen_steps`` steps of compute, or (worse) as a truncated file;
and two runs in one dir, or a new run in a finished run's dir, mix two training histories.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import os
import platform
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, open_dict
from torch import nn

from vaegan.app.checkpoint_io import CheckpointError, checkpoint_gen_step
from vaegan.app.config import ConfigError
from vaegan.vocab.layout import LOCK_FILE, RUN_OUTPUTS, RunDirError, RunLayout

MARGIN_BYTES = 64 << 20  # logs, image grids and metrics beside the checkpoints


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


# ----------------------------------------------------------------------------- one run per dir
#
# A run dir holds one run: its metrics.csv, last.ckpt and .hydra/ describe a single training
# history. Two processes writing it at once interleave their rows and overwrite each other's
# checkpoints; a fresh run started in a finished run's dir appends a second history to the
# first. These checks run before anything is written: from the Hydra callback
# ``vaegan.app.hydra_callbacks.GuardRunDir`` (before Hydra saves .hydra/) and from ``run()``.


log = logging.getLogger("vaegan")
_held: dict[Path, tuple[int, int]] = {}  # run dir -> (lock fd, depth): re-entrant per process
_atexit_registered = False


def warn(message: str) -> None:
    """``warning: …`` on stderr: these run before Hydra has set up the job's logging."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


class RunFinished(Exception):
    """Nothing to train: the checkpoint has done ``steps`` already (exit 0, nothing touched)."""


def is_child_rank() -> bool:
    """A DDP rank other than 0 (they re-run the job in rank 0's run dir, which rank 0 guards)."""
    return any(
        int(os.environ.get(var) or 0) > 0
        for var in ("LOCAL_RANK", "RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")
    )


def host_name() -> str:
    """This machine's name for the lock (``gethostname`` can be empty in a container)."""
    return socket.gethostname() or platform.node() or os.uname().nodename or "an unnamed host"


def _holder(text: str) -> str:
    try:
        info = json.loads(text)
        pid = info["pid"]
    except (ValueError, KeyError, TypeError):
        return "an unknown process"
    host = info.get("host") or "an unnamed host"
    started = info.get("started") or "at an unknown time"
    return f"pid {pid} on {host}, started {started}"


def _refuse_link(path: Path) -> RunDirError:
    target = os.readlink(path) if path.is_symlink() else "?"
    return RunDirError(
        f"{path} is a symbolic link (to {target}); vaegan never follows links among a run "
        "dir's own files: delete the link (rm it, the target is untouched) and start again"
    )


def _open_lock(path: Path, flags: int) -> int:
    """Open the lock file without following a link (O_NOFOLLOW): a link there would have its
    target emptied and overwritten by the lock."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        if path.is_symlink():
            raise _refuse_link(path) from None
        raise RunDirError(f"cannot open the run-dir lock {path} ({_reason(err)})") from None


def _in_use(run_dir: Path, holder: str) -> RunDirError:
    return RunDirError(
        f"the run dir {run_dir} is in use by another run ({holder}); one run per dir: "
        "wait for it, stop it, or pick another dir with hydra.run.dir=..."
    )


def check_not_in_use(run_dir: Path) -> None:
    """RunDirError naming the holder when another process holds ``run_dir``'s lock (a peek:
    takes nothing, creates nothing)."""
    run_dir = Path(run_dir).resolve()
    path = run_dir / LOCK_FILE
    if path.is_symlink():
        raise _refuse_link(path)
    if run_dir in _held or not path.is_file():
        return
    fd = _open_lock(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except BlockingIOError:
        raise _in_use(run_dir, _holder(os.pread(fd, 4096, 0).decode(errors="replace"))) from None
    except OSError:
        pass  # no locks on this file system: run_dir_lock warns
    finally:
        os.close(fd)


@contextmanager
def run_dir_lock(run_dir: Path) -> Iterator[None]:
    """Hold RUN_DIR/.vaegan.lock (``flock``; pid, host, start time inside) while training.

    Re-entrant within a process (a ``gan_control`` job locks RUN_DIR for both branches and
    each branch may lock again); a nested run dir (RUN_DIR/control) has a lock of its own.
    The OS drops the lock when its holder dies, so a lock left by a killed run is taken over
    (with a note naming it). DDP child ranks do not lock: they share rank 0's run dir.
    """
    run_dir = Path(run_dir).resolve()
    if is_child_rank():
        yield
        return
    global _atexit_registered
    if not _atexit_registered:  # an exit with an error (sys.exit in a callback) is not stale
        atexit.register(release_all_locks)
        _atexit_registered = True
    if run_dir in _held:
        fd, depth = _held[run_dir]
        _held[run_dir] = (fd, depth + 1)
        try:
            yield
        finally:
            if run_dir in _held:  # not yet released by release_all_locks (exit)
                fd, depth = _held[run_dir]
                _held[run_dir] = (fd, depth - 1)
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    fd = _open_lock(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(os.pread(fd, 4096, 0).decode(errors="replace"))
        os.close(fd)
        raise _in_use(run_dir, holder) from None
    except OSError as err:  # a file system without locks (some network mounts)
        warn(f"cannot lock the run dir {run_dir} ({_reason(err)}): make sure no other run "
             "uses it")
    previous = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    if previous:  # a holder that ended without releasing: killed, or the machine went down
        warn(f"run dir {run_dir}: taking over the lock of {_holder(previous)}, which is no "
             "longer running")
    me = {"pid": os.getpid(), "host": host_name(),
          "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)
    _held[run_dir] = (fd, 1)
    try:
        yield
    finally:
        if _held.get(run_dir, (None,))[0] == fd:  # else release_all_locks (exit) did it
            del _held[run_dir]
            os.ftruncate(fd, 0)  # empty: released cleanly (kept, so the lock has one inode)
            os.close(fd)


def release_all_locks() -> None:
    """Release every lock this process holds (tests; a process exit does it anyway)."""
    for fd, _ in _held.values():
        os.ftruncate(fd, 0)
        os.close(fd)
    _held.clear()


def check_not_finished(ckpt_path: str | os.PathLike | None, steps: int) -> None:
    """RunFinished when ``ckpt_path`` has done ``steps`` generator steps; ConfigError below it.

    Without this a re-run of a finished run (``ckpt_path=last``, a requeue) trained one step
    past ``steps``, appended to metrics.csv and overwrote the final checkpoint.
    """
    if ckpt_path is None or not Path(ckpt_path).expanduser().is_file():
        return
    done = checkpoint_gen_step(ckpt_path)
    if done == steps:
        raise RunFinished(
            f"{ckpt_path} is finished: {done} of steps={steps} generator steps done; nothing "
            f"to train (to train further, raise steps above {done})"
        )
    if done > steps:
        raise ConfigError(
            f"steps={steps} must be >= the {done} generator steps ckpt_path={ckpt_path} has "
            f"done; allowed: steps={done} (finished, nothing to do) or more (train further)"
        )


def previous_run(run_dir: Path) -> str | None:
    """What a previous run left in ``run_dir`` (for the message), or None when it holds none."""
    layout = RunLayout(run_dir)
    last = layout.last_ckpt
    if last.is_file():
        try:
            return f"a run of {checkpoint_gen_step(last)} generator steps (checkpoints/last.ckpt)"
        except CheckpointError:
            return "a run (checkpoints/last.ckpt, unreadable)"
    if layout.metrics_csv.is_file():
        return "a run's metrics (csv/metrics.csv)"
    return None


def sibling_dir(run_dir: Path) -> Path:
    """The first free ``RUN_DIR-1``, ``RUN_DIR-2``, ... beside ``run_dir``."""
    n = 1
    while (candidate := run_dir.with_name(f"{run_dir.name}-{n}")).exists():
        n += 1
    return candidate


def run_outputs(run_dir: Path) -> list[Path]:
    """The previous run's outputs in ``run_dir``: what ``on_existing_run=overwrite`` deletes."""
    return [run_dir / name for name in RUN_OUTPUTS
            if (run_dir / name).exists() or (run_dir / name).is_symlink()]


def _listing(paths: list[Path], root: Path) -> str:
    names = [f"{p.relative_to(root)}{'/' if p.is_dir() and not p.is_symlink() else ''}"
             for p in paths]
    return ", ".join(names) or "nothing"


def overwrite_note(run_dir: Path) -> str:
    """What overwrite deletes and what it keeps, by name (the user may keep files there)."""
    doomed = run_outputs(run_dir)
    ours = {*doomed, run_dir / ".hydra", run_dir / LOCK_FILE}
    kept = sorted(p for p in run_dir.iterdir() if p not in ours) if run_dir.is_dir() else []
    note = f"deleting {_listing(doomed, run_dir)}"
    return note + (f"; keeping {_listing(kept, run_dir)}" if kept else "")


def clear_run(run_dir: Path) -> None:
    """Delete a previous run's outputs (``on_existing_run=overwrite``; a pair's ``control/``
    too); .hydra/ is Hydra's."""
    for path in run_outputs(run_dir):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def resolve_existing(
    run_dir: Path, ckpt_path: str | None, on_existing: str = "refuse"
) -> tuple[Path, bool]:
    """(the dir a run with ``ckpt_path`` may write, whether its old results must go first).

    A run dir that holds a run is only reused by the resume of that run (``ckpt_path=last`` or
    its own ``checkpoints/last.ckpt``); anything else would append a second history to it.
    Nothing is deleted here: the caller clears the dir (``clear_run``) once it holds the lock.
    ``on_existing`` is one of app/config.py's ON_EXISTING (validated there).
    """
    own = RunLayout(run_dir).last_ckpt.resolve()
    if ckpt_path is not None and Path(ckpt_path).expanduser().resolve() == own:
        return run_dir, False
    found = previous_run(run_dir)
    if found is None:
        return run_dir, False
    if on_existing == "sibling":
        new = sibling_dir(run_dir)
        warn(f"run dir {run_dir} holds {found}: this run goes to {new} (on_existing_run=sibling)")
        return new, False
    if on_existing == "overwrite":
        warn(f"run dir {run_dir} holds {found}: {overwrite_note(run_dir)} "
             "(on_existing_run=overwrite)")
        return run_dir, True
    raise RunDirError(
        f"the run dir {run_dir} already holds {found}; a new run there would mix two histories. "
        "Resume it with ckpt_path=last, or set on_existing_run=sibling (a new dir "
        f"{sibling_dir(run_dir).name} beside it) or on_existing_run=overwrite ("
        f"{overwrite_note(run_dir)}), or pick another dir with hydra.run.dir=..."
    )


def claim_run_dir(
    run_dir: Path, ckpt_path: str | None, steps: int, on_existing: str = "refuse",
    finished_check: bool = True,
) -> tuple[Path, str | None, bool, bool]:
    """(the dir to train in, the resolved ``ckpt_path``, whether there is nothing to train,
    whether the dir's old results must be deleted first: ``clear_run`` under the lock).

    ``ckpt_path=last`` is resolved here; a finished checkpoint (``steps`` reached) means "say
    so, touch nothing", ``steps`` below it is a ConfigError, and a dir holding another run is
    refused (or replaced by a sibling, or cleared: ``on_existing_run``). ``finished_check``:
    off for a ``gan_control`` pair, whose branches are checked one by one.
    """
    run_dir = Path(run_dir)
    ckpt = resolve_ckpt_path(ckpt_path, run_dir)
    if finished_check:  # every rank: under srun each task decides alone, and all must agree
        try:
            check_not_finished(ckpt, int(steps))
        except RunFinished as done:
            log.warning("%s", done)
            return run_dir, ckpt, True, False
    if is_child_rank():  # rank 0 decides the rest, and its outputs are appearing in the dir
        return run_dir, ckpt, False, False
    check_not_in_use(run_dir)  # "in use by pid …" says more than "holds a run"
    target, overwrite = resolve_existing(run_dir, ckpt, on_existing)
    return target, ckpt, False, overwrite


# ----------------------------------------------------------------------------- config history

# Keys a resume may change without comment: where it runs, how long, and from what.
RESUME_KEYS = ("ckpt_path", "steps", "diagnose", "run_name", "paths", "hydra", "on_existing_run")
HISTORY = "history"  # RUN_DIR/.hydra/history/<time>/: the configs of earlier segments


def _flat(node: object, prefix: str = "") -> dict[str, object]:
    if isinstance(node, dict):
        out: dict[str, object] = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): node}


def changed_keys(old: dict, new: dict) -> list[str]:
    """``key: old -> new`` for every training key that differs (RESUME_KEYS left out)."""
    a, b = _flat(old), _flat(new)
    keys = sorted(k for k in a.keys() | b.keys() if k.split(".")[0] not in RESUME_KEYS)
    return [f"{k}: {a.get(k, '(absent)')} -> {b.get(k, '(absent)')}" for k in keys
            if a.get(k, "(absent)") != b.get(k, "(absent)")]


def archive_hydra_config(run_dir: Path) -> Path | None:
    """Copy RUN_DIR/.hydra/*.yaml to .hydra/history/<when it was written>/ before Hydra
    overwrites it with a resumed segment's config; None when there is none yet."""
    hydra_dir = run_dir / ".hydra"
    saved = sorted(hydra_dir.glob("*.yaml"))
    config = hydra_dir / "config.yaml"
    if not config.is_file():
        return None
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(config.stat().st_mtime))
    dest = hydra_dir / HISTORY / stamp
    n = 1
    while dest.exists():
        dest, n = hydra_dir / HISTORY / f"{stamp}_{n}", n + 1
    dest.mkdir(parents=True)
    for path in saved:
        shutil.copy2(path, dest / path.name)
    return dest


def claim(cfg: DictConfig, run_dir: Path) -> tuple[Path, str | None, bool]:
    """``claim_run_dir`` for ``run()`` (which holds the lock); a sibling dir becomes
    ``paths.output_dir``, an overwritten one is cleared."""
    new_dir, ckpt, finished, overwrite = claim_run_dir(
        run_dir, cfg.get("ckpt_path"), int(cfg.steps), cfg.get("on_existing_run", "refuse")
    )
    if overwrite:
        clear_run(new_dir)
    if new_dir != Path(run_dir):
        with open_dict(cfg):
            cfg.paths.output_dir = str(new_dir)
    return new_dir, ckpt, finished


def resolve_ckpt_path(ckpt_path: str | None, run_dir: Path) -> str | None:
    """``ckpt_path=last``: RUN_DIR/checkpoints/last.ckpt when it exists, else a fresh start.

    What a requeued (or resubmitted) job passes: the same command resumes where the pre-empted
    one stopped, and starts from scratch the first time. Any other value is a path, unchanged.
    """
    if ckpt_path != "last":
        return ckpt_path
    last = RunLayout(run_dir).last_ckpt
    if last.is_file():
        log.info("ckpt_path=last: resuming from %s", last)
        return str(last)
    log.info("ckpt_path=last: no %s yet, starting fresh", last)
    return None
