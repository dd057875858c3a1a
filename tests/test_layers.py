"""The folder tree is a stack of layers (pyproject.toml's import-linter contract): an import
from a lower folder up to a higher one, or between two folders on one floor, fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_layers_contract_is_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_import_is_ignored():
    """The contract holds as written: no ``ignore_imports`` escape hatch."""
    text = (ROOT / "pyproject.toml").read_text()
    assert "[tool.importlinter]" in text
    assert "ignore_imports" not in text
