"""Result rows and the markdown table they render to."""

from __future__ import annotations

import math
from dataclasses import dataclass

from vaegan.bench.timing import Ratio


@dataclass(frozen=True)
class Target:
    """``value <= limit`` (``at_most``) or ``value >= limit``."""

    limit: float
    at_most: bool

    def met(self, value: float) -> bool:
        return value <= self.limit if self.at_most else value >= self.limit

    def __str__(self) -> str:
        return f"{'≤' if self.at_most else '≥'} {self.limit:g}"


@dataclass(frozen=True)
class Row:
    section: str
    measure: str
    result: str
    detail: str = ""
    target: Target | None = None
    value: float | None = None  # the number the target applies to (tests check it is sane)

    @property
    def met(self) -> str:
        if self.target is None or self.value is None or not math.isfinite(self.value):
            return "—"
        return "yes" if self.target.met(self.value) else "**no**"


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms" if seconds >= 0.01 else f"{seconds * 1e3:.2f} ms"


def ratio_row(section: str, measure: str, ratio: Ratio, target: Target | None = None) -> Row:
    """A timing ratio: median of paired repeats, its range, and both sides' median times."""
    return Row(
        section,
        measure,
        f"{ratio.ratio:.2f}× [{ratio.low:.2f}–{ratio.high:.2f}]",
        f"{milliseconds(ratio.a)} vs {milliseconds(ratio.b)} per batch",
        target,
        ratio.ratio,
    )


def failed_row(section: str, measure: str, err: BaseException) -> Row:
    """A measurement that could not run says why instead of vanishing from the table."""
    reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    return Row(section, measure, "not run", f"{type(err).__name__}: {reason}"[:160])


def render(rows: list[Row]) -> str:
    lines = [
        "| # | measurement | result | detail | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [row.section, row.measure, row.result, row.detail, str(row.target or "—"), row.met]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)
