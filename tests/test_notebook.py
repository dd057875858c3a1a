"""``notebooks/compare_kl_curves.ipynb`` runs top to bottom on a real tiny run (nbclient, the
engine nbmake uses) and is stored without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers.run import train_tiny

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "compare_kl_curves.ipynb"


def outputs_text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(str(out.get("data", {}).get("text/markdown", "")))
    return "\n".join(parts)


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
def test_notebook_plots_and_diagnoses_a_tiny_run(tmp_path, monkeypatch):
    run_dir = tmp_path / "runs" / "tiny"
    train_tiny(run_dir, "gan_control=true")  # with its no-GAN branch in tiny/control/
    monkeypatch.setenv("VAEGAN_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = outputs_text(nb)
    assert "1 runs" in text and str(run_dir) in text
    assert "### tiny: **" in text  # the diagnosis headline of the run
    assert "**GAN effect: " in text  # read against its no-GAN branch, not counted as a run
    assert "| run |" in text  # the comparison table
    assert "wandb runs skipped" in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # side-by-side curves and the overlay
