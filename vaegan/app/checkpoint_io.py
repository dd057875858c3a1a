"""Checkpoints that survive a kill at any moment, and a resume that checks before it trusts.

Saving: ``torch.save`` into a temp file in the same directory, ``fsync``, then ``os.replace``
onto ``last.ckpt``: a reader (or a resume after SIGKILL, pre-emption or power loss) sees the
old file or the new one, never half of one. Loading: ``weights_only=True`` (tensors and plain
containers only), because a checkpoint is a pickle and unpickling can run arbitrary code.

Permissions: a checkpoint gets the mode every other file of the run dir gets, the one the
process umask gives (0644 under the usual 022). One policy for the whole run dir, on purpose:
a checkpoint holds no secret that metrics.csv or .hydra/ do not (secrets are redacted
everywhere), and a checkpoint only its owner can read breaks shared group dirs. To keep runs
private, set ``umask 077`` or train into a private dir.
"""

from __future__ import annotations

import errno
import os
import pickle
import pickletools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from torch import nn

# What Lightning needs to resume training (the model, both optimizers, the loop counters).
RESUME_KEYS = ("state_dict", "optimizer_states", "lr_schedulers", "loops")


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names the file and the problem."""


def _is_local(path: str | os.PathLike) -> bool:
    text = str(path)
    return "://" not in text or text.startswith("file://")


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask: from /proc (Linux), else by setting it and putting it back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` that replaces ``path`` only once the new file is complete on disk."""
    path = Path(str(path).removeprefix("file://"))
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a process killed mid-save
        stale.unlink(missing_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise CheckpointWriteError(_write_failure(path, err)) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # like every other file of the run dir (mkstemp: 0600)
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        cause = _os_error(err)
        if cause is not None:  # ENOSPC, EDQUOT, EIO, ...: the old file is intact
            raise CheckpointWriteError(_write_failure(path, cause)) from None
        raise
    _fsync_dir(path.parent)


def _os_error(err: BaseException) -> OSError | None:
    """The OSError behind a failed save: ``err`` itself, or the one torch's zip writer turned
    into a RuntimeError (``unexpected pos …``; the disk's error is its ``__context__``)."""
    seen: BaseException | None = err
    for _ in range(8):
        if seen is None or isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (full disk, quota, I/O error); the old one is kept."""


def _write_failure(path: Path, err: OSError) -> str:
    code = errno.errorcode.get(err.errno or 0, "")
    reason = f"{err.strerror or type(err).__name__}{f', {code}' if code else ''}"
    kept = "the previous one is kept" if path.is_file() else "there is no earlier one"
    return (
        f"cannot write the checkpoint {path} ({reason}); {kept}. Free space (or fix the "
        "dir), then continue with ckpt_path=last"
    )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO with atomic local saves and ``weights_only`` loads."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not _is_local(path):
            super().save_checkpoint(checkpoint, path, storage_options)  # remote: fsspec's way
            return
        atomic_save(checkpoint, path)

    def load_checkpoint(
        self,
        path: Any,
        map_location: Callable | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        return super().load_checkpoint(
            path, map_location, weights_only=True if weights_only is None else weights_only
        )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def _unsafe_detail(err: pickle.UnpicklingError) -> str:
    """What the weights_only unpickler refused (``Unsupported global: GLOBAL posix.system``)."""
    paragraphs = [p.strip() for p in str(err).split("\n\n") if p.strip()]
    found = [p for p in paragraphs if "GLOBAL" in p or "Unsupported" in p]
    detail = found[0] if found else _first_line(err)
    return " ".join(detail.removeprefix("WeightsUnpickler error:").split())[:200]


_CODE_OPCODES = ("GLOBAL", "STACK_GLOBAL", "INST")  # references to a callable or a class


def _code_reference(path: Path) -> str | None:
    """The first callable a plain pickle names (``posix.system``), read opcode by opcode
    without unpickling; None when it names none or is not a pickle.

    The weights_only unpickler names what it refuses only for protocol <= 3's GLOBAL; for
    protocol 4 and 5 (STACK_GLOBAL) it says "Unsupported operand 149", which reads as corrupt.
    """
    strings: list[str] = []
    try:
        with open(path, "rb") as f:
            for opcode, arg, _ in pickletools.genops(f):
                if isinstance(arg, str):
                    strings.append(arg)
                if opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    return f"STACK_GLOBAL {strings[-2]}.{strings[-1]}"
                if opcode.name in _CODE_OPCODES:
                    return f"{opcode.name} {str(arg).replace(' ', '.')}"
    except Exception:  # not a pickle, or a truncated one: no reference found up to there
        return None
    return None


def _load(path: Path) -> Any:
    """``torch.load(weights_only=True)``; every failure becomes a one-line CheckpointError.

    ``mmap`` (no copy of a large file in memory) needs torch's zip format; a legacy or foreign
    pickle is read again without it, so that the restricted unpickler sees it and a hostile
    file is reported as refused, not as "corrupt".
    """
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap can only be used" not in str(err):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # A reference to a global (a function, a class) is what code execution needs; an
        # unsupported opcode alone is a file torch.save did not write (text, other pickles).
        code = None if "global" in str(err).lower() else _code_reference(path)
        if code is not None:
            raise CheckpointError(
                f"ckpt_path={path} was refused as unsafe: it holds Python objects other than "
                f"tensors and plain data (refused: unpickling them can run code; {code}); only "
                "resume from checkpoints that vaegan wrote"
            ) from None
        if "Weights only load failed" in str(err) and "global" in str(err).lower():
            raise CheckpointError(
                f"ckpt_path={path} was refused as unsafe: it holds Python objects other than "
                "tensors and plain data (refused: unpickling them can run code; "
                f"{_unsafe_detail(err)}); only resume from checkpoints that vaegan wrote"
            ) from None
        raise CheckpointError(
            f"ckpt_path={path} is not a readable checkpoint (not a file torch.save wrote: "
            f"{_unsafe_detail(err)}); it may be corrupt or truncated: use an earlier copy"
        ) from None
    except KeyError:  # a pickle's first byte read as a torch storage key: not torch's format
        raise CheckpointError(
            f"ckpt_path={path} is not a readable checkpoint (not a file torch.save wrote); it "
            "may be corrupt or truncated: use an earlier copy"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise CheckpointError(
            f"ckpt_path={path} is not a readable checkpoint ({_first_line(err)}); it may be "
            "corrupt or truncated: use an earlier copy"
        ) from None


def _mismatch(path: Path, saved: dict[str, Any], model: dict[str, torch.Tensor]) -> str | None:
    """The first difference between a checkpoint's and the model's state dict, as text."""
    missing = [k for k in model if k not in saved]
    unexpected = [k for k in saved if k not in model]
    shapes = [
        k for k in model
        if k in saved and hasattr(saved[k], "shape") and saved[k].shape != model[k].shape
    ]
    if shapes:
        k = shapes[0]
        return (
            f"{len(shapes)} tensors differ in shape, e.g. {k}: {list(saved[k].shape)} in the "
            f"checkpoint, {list(model[k].shape)} in this config"
        )
    if missing or unexpected:
        example = (missing or unexpected)[0]
        return (
            f"{len(missing)} tensors missing and {len(unexpected)} unexpected "
            f"(e.g. {example})"
        )
    return None


def check_resumable(path: str | os.PathLike, module: nn.Module) -> None:
    """Raise CheckpointError unless ``path`` is a checkpoint this module can resume from.

    Runs before ``trainer.fit`` so a typo or a checkpoint of another model costs a second and
    one clear line, not a traceback from deep inside Lightning after the loggers have started.
    """
    path = Path(os.path.expanduser(str(path)))
    if not path.is_file():
        raise CheckpointError(
            f"ckpt_path={path} does not exist" if not path.exists() else
            f"ckpt_path={path} is not a file"
        )
    ckpt = _load(path)
    if not isinstance(ckpt, dict) or not all(k in ckpt for k in RESUME_KEYS):
        have = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"ckpt_path={path} is not a Lightning training checkpoint (needs {list(RESUME_KEYS)}, "
            f"has {have}); resume from a vaegan run's checkpoints/last.ckpt"
        )
    problem = _mismatch(path, ckpt["state_dict"], module.state_dict())
    if problem:
        raise CheckpointError(
            f"ckpt_path={path} does not match this config's model: {problem}; resume with the "
            "config it was trained with (its run dir's .hydra/config.yaml)"
        )


def checkpoint_gen_step(path: str | os.PathLike) -> int:
    """The number of generator steps a vaegan checkpoint has completed (0 when not recorded).

    What decides whether a run (or one branch of a ``gan_control`` pair) is finished, without
    building a model: ``steps`` at or below it means there is nothing left to train.
    """
    ckpt = _load(Path(os.path.expanduser(str(path))))
    state = ckpt.get("vaegan", {}) if isinstance(ckpt, dict) else {}
    return int(state.get("gen_step", 0))
