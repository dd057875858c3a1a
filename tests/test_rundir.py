"""Run dirs, resumes and signals: what a re-run, a second run or a kill does to a run dir.

Each test is a row of the README's "What happens when" table. Real Hydra app (``main``) or
``train_tiny`` runs of the tiny preset.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch

from tests.test_faults import run_main

SIGNAL_AT = "+callbacks.stop._target_=tests.probes.SignalAt"


def test_sigterm_checkpoints_at_the_step_boundary_and_exits_143(tmp_path, monkeypatch, capsys):
    """SIGTERM used to end the process at once: nothing saved, nothing recorded, exit 0."""
    def default_action(signum, frame):  # stands in for "the process dies here"
        raise RuntimeError("SIGTERM was not handled by the run")

    previous = signal.signal(signal.SIGTERM, default_action)
    try:
        code, err = run_main(
            monkeypatch, capsys, "debug=tiny", f"hydra.run.dir={tmp_path}", "steps=8",
            SIGNAL_AT, "+callbacks.stop.gen_step=2", "+callbacks.stop.name=SIGTERM",
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == 143, err
    assert "stopped by SIGTERM after generator step 3" in err and "ckpt_path=last" in err
    assert json.loads((tmp_path / "run_info.json").read_text())["status"] == "stopped"
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["vaegan"]["gen_step"] == 3
