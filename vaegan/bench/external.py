"""Measurements other modules own (``callbacks_cost``, ``ddp_cost``), called when present.

Each exposes ``measure(steps, repeats) -> dict``; ``warmup`` and ``overrides`` (the profile's
size, so ``--tiny`` stays tiny) are passed too where its signature takes them. The dict is read
leniently: a ``rows`` list of such dicts, or one result with ``ratio`` (and ``ratio_range``,
``low``/``high`` or ``min``/``max``, ``name``/``measure``); every other scalar or pair goes
into the detail column.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Sequence
from typing import Any

from vaegan.bench.table import Row, Target, failed_row

_RANGE = (("low", "high"), ("min", "max"))
_RANGE_PAIRS = ("ratio_range", "range", "spread")
_NAMES = ("name", "measure", "measurement")


def external_rows(
    section: str, title: str, module: str, target: Target | None, **kwargs: Any
) -> list[Row] | None:
    """Rows from ``vaegan.bench.<module>.measure``; ``None`` when that module does not exist."""
    qualified = f"vaegan.bench.{module}"
    try:
        measure = importlib.import_module(qualified).measure
    except ModuleNotFoundError as err:
        if err.name == qualified:
            return None
        return [failed_row(section, f"{title} (`{qualified}`)", err)]
    except (ImportError, AttributeError) as err:
        return [failed_row(section, f"{title} (`{qualified}`)", err)]
    accepted = inspect.signature(measure).parameters
    try:
        result = measure(**{k: v for k, v in kwargs.items() if k in accepted})
    except Exception as err:  # their failure must not take the other rows down
        return [failed_row(section, f"{title} (`{qualified}.measure`)", err)]
    if not isinstance(result, dict):
        err = TypeError(f"measure() returned {type(result).__name__}, not a dict")
        return [failed_row(section, f"{title} (`{qualified}.measure`)", err)]
    entries = result.get("rows") if isinstance(result.get("rows"), list) else [result]
    return [_row(section, title, module, entry, target) for entry in entries]


def _row(
    section: str, title: str, module: str, entry: dict[str, Any], target: Target | None
) -> Row:
    name = next((str(entry[k]) for k in _NAMES if k in entry), "")
    measure = f"{title}: {name}" if name else title
    ratio = entry.get("ratio")
    spread = _spread(entry)
    if not isinstance(ratio, (int, float)):
        return Row(section, f"{measure} (`{module}`)", "see detail", _detail(entry, set()))
    result = f"{ratio:.2f}×" + (f" [{spread[0]:.2f}–{spread[1]:.2f}]" if spread else "")
    used = {"ratio", *_NAMES, *(k for pair in _RANGE for k in pair), *_RANGE_PAIRS, "rows"}
    value = float(ratio) if math.isfinite(ratio) else None
    return Row(section, f"{measure} (`{module}`)", result, _detail(entry, used), target, value)


def _spread(entry: dict[str, Any]) -> tuple[float, float] | None:
    for lo, hi in _RANGE:
        if _number(entry.get(lo)) and _number(entry.get(hi)):
            return entry[lo], entry[hi]
    for key in _RANGE_PAIRS:
        pair = entry.get(key)
        if _pair(pair):
            return pair[0], pair[1]
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _pair(value: Any) -> bool:
    return isinstance(value, Sequence) and len(value) == 2 and all(map(_number, value))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if _pair(value):
        return f"[{_fmt(value[0])}–{_fmt(value[1])}]"
    return str(value)


def _detail(entry: dict[str, Any], used: set[str]) -> str:
    shown = {
        k: v for k, v in entry.items()
        if k not in used and (_number(v) or _pair(v) or isinstance(v, str))
    }
    return ", ".join(f"{k}={_fmt(v)}" for k, v in shown.items())
