"""Errors a user can fix, and how ``vaegan-train`` reports them: one line, no traceback.

A config typo, a missing folder or weights file, an unusable checkpoint or run dir is not a
bug in vaegan, and a 60-line traceback hides the one line that says what to change. In a
single run these print ``error: <message>`` and exit with status 2 (3: training diverged);
in a multirun they propagate so the sweep records the job as failed and goes on.
``HYDRA_FULL_ERROR=1`` shows the traceback anyway.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode

from vaegan.app.checkpoint_io import CheckpointError
from vaegan.app.config import ConfigError
from vaegan.core.guard import NonFiniteLossError
from vaegan.data.errors import DataError
from vaegan.losses.perceptual import PretrainedWeightsMissing
from vaegan.vocab.layout import RunDirError

BAD_INPUT = (ConfigError, DataError, PretrainedWeightsMissing, CheckpointError, RunDirError)
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


@contextmanager
def config_errors() -> Iterator[None]:
    """Building objects from the config: a constructor's ValueError is a config error.

    Hydra wraps constructor errors in InstantiationException (a message shaped like a
    traceback); this unwraps them, keeps the typed ones (DataError, PretrainedWeightsMissing)
    and turns plain ValueErrors, which this project's constructors raise naming the key, into
    ConfigError.
    """
    try:
        yield
    except InstantiationException as err:
        cause: BaseException | None = err
        while isinstance(cause, InstantiationException):
            cause = cause.__cause__
        if isinstance(cause, BAD_INPUT):
            raise cause from None
        if isinstance(cause, ValueError):
            raise ConfigError(str(cause)) from cause
        raise
    except BAD_INPUT:
        raise
    except ValueError as err:
        raise ConfigError(str(err)) from err


def printable(text: str) -> str:
    """``text`` with the undecodable bytes of a non-UTF-8 file name as ``\\xe9``: Python
    keeps them as lone surrogates, which no UTF-8 stream or file accepts (printing the error
    that names such a file ended in a UnicodeEncodeError traceback)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def one_line_errors(task: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate the Hydra task: bad input exits 2, divergence exits 3, with one line each."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        except (*BAD_INPUT, NonFiniteLossError) as err:
            if _in_multirun() or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {printable(str(err))}", file=sys.stderr, flush=True)
            sys.exit(EXIT_DIVERGED if isinstance(err, NonFiniteLossError) else EXIT_BAD_INPUT)

    return wrapper
