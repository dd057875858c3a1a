"""Section 7: the speed flags users expect, each against vaegan's default eager fp32 step.

A flag becomes a default only where it wins here; the row says what each buys on this machine.
The activation-checkpointing modes (memory savers; their memory is in section 4) are timed
here too, on the quickstart's model, which ships with ``none``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import Tensor

from vaegan.bench import model_changes as changes
from vaegan.bench.context import GAN_ON, Context
from vaegan.bench.loop import LoopBench
from vaegan.bench.players import Players
from vaegan.bench.steps import Step, vaegan_step
from vaegan.bench.table import Row, failed_row, ratio_row
from vaegan.bench.timing import Ratio, interleaved
from vaegan.models.autoencoder import ACTIVATION_CHECKPOINTING


def _channels_last_step(p: Players, x: Tensor, step: int) -> None:
    vaegan_step(p, x.contiguous(memory_format=torch.channels_last), step)


def _bf16(device_type: str) -> Step:
    def step(p: Players, x: Tensor, i: int) -> None:
        with torch.autocast(device_type, dtype=torch.bfloat16):
            vaegan_step(p, x, i)

    return step


def flags(ctx: Context) -> list[Row]:
    cfg = ctx.config(GAN_ON)
    variants: dict[str, tuple[Step, Callable[[Players], None] | None]] = {
        "`channels_last` (models and input)": (_channels_last_step, changes.channels_last),
        "bf16 autocast": (_bf16(ctx.device.type), None),
        **{
            f"`model.activation_checkpointing={mode}`": (
                vaegan_step, changes.activation_checkpointing(mode)
            )
            for mode in ACTIVATION_CHECKPOINTING if mode != "none"
        },
    }
    if ctx.profile.compile:
        variants["`torch.compile` (autoencoder and discriminator)"] = (
            vaegan_step, changes.compile_networks
        )
    loops: dict[str, LoopBench] = {"eager": ctx.synthetic_loop(cfg, vaegan_step)}
    rows, warmups = [], {}
    for name, (step, prepare) in variants.items():
        start = time.perf_counter()
        try:
            loops[name] = ctx.synthetic_loop(cfg, step, prepare)
        except Exception as err:  # noqa: BLE001 - e.g. no compiler for inductor
            rows.append(failed_row("7", f"speed flag {name}", err))
        warmups[name] = time.perf_counter() - start
    times = interleaved(loops, ctx.profile.repeats)
    for name in [n for n in loops if n != "eager"]:
        r = Ratio.of(times[name], times["eager"])
        row = ratio_row("7", f"speed flag {name} / default eager fp32 ({ctx.device.type})", r)
        verdict = "wins in every repeat" if r.high < 1 else "does not win"
        rows.append(replace(row, detail=f"{row.detail}; warm-up {warmups[name]:.0f} s; {verdict}"))
    return rows
