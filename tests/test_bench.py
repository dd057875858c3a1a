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


# ---------------------------------------------------------------- what the bench times


def _tiny_cfg(tmp_path: Path, *extra: str):
    from vaegan.bench.config import TINY, bench_config
    from vaegan.bench.context import COMPUTE

    return bench_config(tmp_path / "cfg", [*COMPUTE, *TINY, "trainer=cpu", *extra])


def _fit(cfg, tmp_path: Path, design: str, steps: int, hooks=None):
    from vaegan.bench.fit import BatchClock, SyntheticData, fit

    def prepare(module) -> None:
        for name, hook in (hooks or {}).items():
            getattr(module, name).register_forward_hook(hook)

    torch.manual_seed(int(cfg.seed))  # build_players seeds the same way
    return fit(cfg, SyntheticData(cfg), tmp_path / design, BatchClock(1, steps), design,
               prepare)


def _params(module_or_players) -> list[torch.Tensor]:
    nets = (
        (module_or_players.autoencoder, module_or_players.discriminator)
        if hasattr(module_or_players, "autoencoder")
        else (module_or_players.ae, module_or_players.disc)
    )
    return [p.detach().clone() for net in nets for p in net.parameters()]


def test_plain_loop_trains_what_training_step_trains(tmp_path: Path) -> None:
    """Row 1 divides Trainer.fit by the plain loop: the loop must do the module's work."""
    from vaegan.bench.fit import SyntheticData
    from vaegan.bench.loop import LoopBench, cycle
    from vaegan.bench.players import build_players
    from vaegan.bench.steps import plain_step

    cfg = _tiny_cfg(tmp_path, "gan_start=1")  # one step without the GAN, two with
    module = _fit(cfg, tmp_path, "vaegan", 3)
    players = build_players(cfg, torch.device("cpu"))
    # a loader, as row 1 reads one: starting its iterator draws from torch's RNG, as in fit
    batches = cycle(SyntheticData(cfg).train_dataloader(), torch.device("cpu"))
    LoopBench(players, batches, plain_step, 3, 0)
    fitted, plain = _params(module), _params(players)
    assert any(not torch.equal(a, b) for a, b in zip(fitted, _params(build_players(
        cfg, torch.device("cpu"))), strict=True)), "nothing was trained"
    for a, b in zip(fitted, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_reference_is_ldms_two_forward_step(tmp_path: Path) -> None:
    """Before gan_start LDM's step runs two autoencoder forwards (the second frozen), three
    discriminator forwards and a zeroed discriminator step; its generator update is vaegan's."""
    cfg = _tiny_cfg(tmp_path, "gan_start=1000")
    calls: dict[str, list[bool]] = {"autoencoder": [], "discriminator": []}

    def record(name: str):
        def hook(module, *_):
            calls[name].append(any(p.requires_grad for p in module.parameters()))
        return hook

    hooks = {name: record(name) for name in calls}
    ref = _fit(cfg, tmp_path, "reference", 1, hooks)
    assert calls == {"autoencoder": [True, False], "discriminator": [False, True, True]}
    calls = {"autoencoder": [], "discriminator": []}
    mine = _fit(cfg, tmp_path, "vaegan", 1, {name: record(name) for name in calls})
    assert calls == {"autoencoder": [True], "discriminator": []}
    for a, b in zip(_params(ref), _params(mine), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.timeout(120)
def test_gpu_check_dry_run_runs_every_section(tmp_path: Path) -> None:
    """``make bench-gpu``'s code path at tiny sizes on the CPU: every section gives numbers."""
    from vaegan.bench.gpu import main as gpu_main

    out = tmp_path / "RESULTS-gpu.md"
    threads = torch.get_num_threads()
    try:
        gpu_main(["--dry-run", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    text = out.read_text()
    assert "CPU (dry run)" in text and "**Dry run**" in text
    for measure in ("one forward vs two, GAN on", "one forward vs two, GAN off",
                    "peak memory, vaegan, GAN on / reference", "DDP run", "speed flag bf16",
                    "speed flag LDM's softmax attention", "not measured (no vaegan option)"):
        assert measure in text, f"{measure} missing:\n{text}"
    assert "not run" not in text and "failed" not in text and "skipped" not in text, text
