"""``make bench`` at the tiniest size: every row is there and every number is sane; what the
bench times is the module's real step, and the reference is LDM's step on the same module.

No timing assertions: the machine running the tests is shared and noisy; the ratios are
judged by a person reading ``make bench``'s table, not by the suite.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from vaegan.bench import __main__ as bench_main
from vaegan.bench import callbacks_cost
from vaegan.bench.table import Row


def _ddp_stand_in(ctx) -> list[Row]:
    """The DDP section starts three ``vaegan-train`` processes (tests/test_ddp.py runs DDP)."""
    return [Row("DDP", "DDP: stand-in", "1.00×", value=1.0)]


@pytest.fixture
def table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(bench_main.SECTIONS, "ddp", _ddp_stand_in)
    monkeypatch.setattr(callbacks_cost, "SCALE", 100)  # every interval within 5 batches
    out = tmp_path / "RESULTS.md"
    threads = torch.get_num_threads()
    try:  # one thread: a loaded machine slows a spinning OpenMP team far more than one thread
        bench_main.main(["--quick", "--tiny", "--repeats", "1", "--threads", "1",
                         "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    text = out.read_text()
    assert text.strip().endswith("|")
    return text


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_table_has_every_row_with_sane_numbers(table: str) -> None:
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    sections = [row.split(" | ")[0].strip("| ") for row in rows[1:]]
    for section in ("1", "2", "3", "4", "5", "6", "7", "DDP", "peers"):
        assert section in sections, f"row {section} missing:\n{table}"
    assert sections.count("3") == 2 and sections.count("4") == 8
    assert "projected to 256 px" in table and "split: autoencoder" in table
    assert "not run" not in table, table
    for row in rows[1:]:
        result = row.split(" | ")[2]
        number = float(result.split("×")[0].split("%")[0].split(" ")[0])
        assert math.isfinite(number) and number >= 0, row
        if "×" in result:
            assert number > 0, row


def test_unknown_section_is_one_line_error() -> None:
    with pytest.raises(SystemExit, match="--only nope: no such section; allowed: framework"):
        bench_main.main(["--only", "nope"])


# ---------------------------------------------------------------- what the bench times


def _tiny_cfg(tmp_path: Path, *extra: str):
    from vaegan.bench.config import TINY, bench_config
    from vaegan.bench.context import COMPUTE

    return bench_config(tmp_path / "cfg", [*COMPUTE, *TINY, "trainer=cpu", *extra])


def _fit(cfg, tmp_path: Path, design: str, steps: int, hooks=None):
    """``steps`` batches of ``design`` through ``Trainer.fit``; ``hooks``: forward hooks on the
    module's networks by attribute name."""
    from vaegan.bench.fit import BatchClock, SyntheticData, build, fit, with_steps

    run_dir = tmp_path / design
    cfg = with_steps(cfg, steps, run_dir)
    module = build(cfg, design)
    for name, hook in (hooks or {}).items():
        getattr(module, name).register_forward_hook(hook)
    fit(cfg, module, SyntheticData(cfg), run_dir, BatchClock(1, steps))
    return module


def _params(module) -> list[torch.Tensor]:
    return [param.detach().clone()
            for net in (module.autoencoder, module.discriminator) for param in net.parameters()]


def test_reference_is_ldms_two_forward_step(tmp_path: Path) -> None:
    """Before gan_start LDM's step runs two autoencoder forwards (the second frozen), three
    discriminator forwards and a zeroed discriminator step; its generator update is vaegan's."""
    from vaegan.bench.reference import LDMReference
    from vaegan.core.module import VAEGAN

    cfg = _tiny_cfg(tmp_path, "gan_start=1000")
    calls: dict[str, list[bool]] = {"autoencoder": [], "discriminator": []}

    def record(name: str):
        def hook(module, *_):
            calls[name].append(any(param.requires_grad for param in module.parameters()))
        return hook

    ref = _fit(cfg, tmp_path, "reference", 1, {name: record(name) for name in calls})
    assert type(ref) is LDMReference
    assert calls == {"autoencoder": [True, False], "discriminator": [False, True, True]}
    calls = {"autoencoder": [], "discriminator": []}
    mine = _fit(cfg, tmp_path, "vaegan", 1, {name: record(name) for name in calls})
    assert type(mine) is VAEGAN  # the real step, not a bench copy of it
    assert calls == {"autoencoder": [True], "discriminator": []}
    for theirs, ours in zip(_params(ref), _params(mine), strict=True):
        torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-6)


def test_saved_bytes_are_counted_in_the_real_step_up_to_the_generator_backward(
    tmp_path: Path,
) -> None:
    """The memory split counts the generator pass of ``VAEGAN.training_step``: every network's
    graph, and nothing of the discriminator step that follows it."""
    from vaegan.bench.anatomy import SavedBytes
    from vaegan.bench.fit import BatchClock, SyntheticData, build, fit, with_steps

    totals = {}
    for phase in ("gan_start=0", "gan_start=1000"):
        cfg = with_steps(_tiny_cfg(tmp_path, phase), 1, tmp_path / phase)
        counter = SavedBytes()
        fit(cfg, build(cfg), SyntheticData(cfg), tmp_path / phase, BatchClock(0, 1), counter)
        totals[phase] = counter.total
    assert set(totals["gan_start=0"]) >= {"autoencoder", "perceptual", "discriminator"}
    assert "discriminator" not in totals["gan_start=1000"]
    assert totals["gan_start=0"]["autoencoder"] == totals["gan_start=1000"]["autoencoder"]


@pytest.mark.slow
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
