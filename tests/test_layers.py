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


def _private_lightning_names() -> dict[str, str]:
    """Private Lightning names the package uses: ``from lightning… import _x``, ``trainer._x``
    and ``getattr(trainer, "_x")``, each with where it is used."""
    import ast

    found: dict[str, str] = {}
    for path in sorted((ROOT / "vaegan").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lightning"):
                for alias in node.names:
                    if alias.name.startswith("_"):
                        found.setdefault(alias.name, str(path.relative_to(ROOT)))
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__") and isinstance(node.value, ast.Name)
                    and node.value.id == "trainer"):
                found.setdefault(f"trainer.{node.attr}", str(path.relative_to(ROOT)))
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("getattr", "hasattr") and len(node.args) >= 2
                    and isinstance(node.args[0], ast.Name) and node.args[0].id == "trainer"
                    and isinstance(node.args[1], ast.Constant)
                    and str(node.args[1].value).startswith("_")):
                found.setdefault(f"trainer.{node.args[1].value}", str(path.relative_to(ROOT)))
    return found


def test_every_lightning_internal_is_listed():
    """docs/INTERFACES.md lists every private Lightning name the package touches, so that a
    Lightning upgrade knows where to look."""
    docs = (ROOT / "docs" / "INTERFACES.md").read_text()
    section = docs.split("## Lightning internals", 1)[1].split("\n## ", 1)[0]
    found = _private_lightning_names()
    assert "_logger_connector" in str(found) and "_SubprocessScriptLauncher" in found  # it sees
    missing = {name: where for name, where in found.items()
               if name.removeprefix("trainer.") not in section or where not in section}
    assert not missing, f"not in docs/INTERFACES.md's 'Lightning internals': {missing}"
