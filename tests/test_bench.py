"""``make bench`` at the tiniest size: every row is there and every number is sane.

No timing assertions: the machine running the tests is shared and noisy; the ratios are
judged by a person reading ``make bench``'s table, not by the suite.
"""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import pytest
import torch

from vaegan.bench.__main__ import main
from vaegan.bench.external import external_rows
from vaegan.bench.table import Target


def _fake(result: dict) -> types.ModuleType:
    """A stand-in for a measurement another module owns (it has its own tests and runtime)."""
    module = types.ModuleType("fake")
    module.measure = lambda steps, repeats, overrides=(): {**result, "steps": steps}
    return module


@pytest.fixture
def table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(
        sys.modules, "vaegan.bench.callbacks_cost",
        _fake({"ratio": 1.01, "ratio_range": (0.99, 1.02), "scale": 10}),
    )
    monkeypatch.setitem(
        sys.modules, "vaegan.bench.ddp_cost", _fake({"ratio": 0.7, "low": 0.6, "high": 0.8})
    )
    out = tmp_path / "RESULTS.md"
    threads = torch.get_num_threads()
    try:  # one thread: a loaded machine slows a spinning OpenMP team far more than one thread
        main(["--quick", "--tiny", "--repeats", "1", "--threads", "1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    text = out.read_text()
    assert text.strip().endswith("|")
    return text


@pytest.mark.timeout(240)
def test_bench_table_has_every_row_with_sane_numbers(table: str) -> None:
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    sections = [row.split(" | ")[0].strip("| ") for row in rows[1:]]
    for section in ("1", "2", "3", "4", "5", "6", "7", "DDP"):
        assert section in sections, f"row {section} missing:\n{table}"
    assert sections.count("3") == 2 and sections.count("4") == 9
    assert "projected to 256 px" in table
    assert "not run" not in table, table
    for row in rows[1:]:
        result = row.split(" | ")[2]
        number = float(result.split("×")[0].split("%")[0].split(" ")[0])
        assert math.isfinite(number) and number >= 0, row
        if "×" in result:
            assert number > 0, row


def test_external_measure_missing_failing_or_odd() -> None:
    assert external_rows("X", "t", "no_such_module", None, steps=1) is None
    sys.modules["vaegan.bench._broken"] = types.SimpleNamespace(
        measure=lambda steps: (_ for _ in ()).throw(RuntimeError("boom"))
    )
    try:
        (row,) = external_rows("X", "t", "_broken", Target(1.0, True), steps=1, repeats=2)
    finally:
        del sys.modules["vaegan.bench._broken"]
    assert row.result == "not run" and "boom" in row.detail
