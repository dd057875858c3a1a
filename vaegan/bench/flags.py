"""Row 7: the speed flags users expect, each against vaegan's default eager fp32 step.

Every variant is ``VAEGAN.training_step`` under ``Trainer.fit``; a flag is a config override
where vaegan has one (``trainer.precision``, ``model.activation_checkpointing``,
``trainer.benchmark``, ``optim.fused``), else a change to the built module
(``model_changes``). A flag becomes a default only where it wins here; the row says what each
buys on this machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch
from omegaconf import DictConfig

from vaegan.bench.context import GAN_ON, Context
from vaegan.bench.fit import FitBench
from vaegan.bench.table import Row, failed_row, ratio_row
from vaegan.bench.timing import Ratio, interleaved
from vaegan.models.autoencoder import ACTIVATION_CHECKPOINTING


@dataclass(frozen=True)
class Flag:
    name: str
    overrides: tuple[str, ...] = ()
    change: str | None = None  # a ``model_changes.CHANGES`` name
    cuda_only: bool = False


def flag_list(
    device: torch.device, with_compile: bool, baseline_ac: str = "none"
) -> list[Flag]:
    """The flags that exist as options on ``device`` (TF32 matmuls have no vaegan option;
    attention is SDPA by default, so its flag is the plain-softmax baseline)."""
    flags = [
        Flag("`channels_last` (models)", change="channels_last"),
        Flag("bf16 autocast (`trainer.precision=bf16-mixed`)", ("trainer.precision=bf16-mixed",)),
        Flag("LDM's softmax attention instead of SDPA", change="plain_attention"),
        Flag("cuDNN autotuning (`trainer.benchmark=true`)", ("trainer.benchmark=true",), None,
             True),
        Flag("fused Adam (`optim.fused=true`)", ("optim.fused=true",)),
        *(
            Flag(f"`model.activation_checkpointing={mode}`",
                 (f"model.activation_checkpointing={mode}",))
            for mode in ACTIVATION_CHECKPOINTING if mode != baseline_ac
        ),
    ]
    if with_compile:
        flags.append(Flag("`torch.compile` (autoencoder and discriminator)", change="compile"))
    return [flag for flag in flags if device.type == "cuda" or not flag.cuda_only]


def flag_rows(ctx: Context, flags: list[Flag], *extra: str) -> list[Row]:
    """Each flag's ``Trainer.fit`` time per batch / the default's, interleaved."""
    fits: dict[str, FitBench] = {"default": ctx.compute_fit(GAN_ON, *extra)}
    rows, warmups = [], {}
    for flag in flags:
        fits[flag.name] = ctx.compute_fit(GAN_ON, *extra, *flag.overrides, changes=flag.change)
    times: dict[str, list[float]] = {"default": []}
    for name, bench in fits.items():  # a first call alone: its warm-up (compilation) shows
        start = time.perf_counter()
        try:
            times[name] = [bench()]
        except Exception as err:  # noqa: BLE001 - e.g. no compiler for inductor
            rows.append(failed_row("7", f"speed flag {name}", err))
        warmups[name] = time.perf_counter() - start
    fits = {name: fits[name] for name in times}
    for name, more in interleaved(fits, max(ctx.profile.repeats - 1, 0)).items():
        times[name] += more
    for name in list(fits)[1:]:  # after the default
        ratio = Ratio.of(times[name], times["default"])
        row = ratio_row("7", f"speed flag {name} / default ({ctx.device.type})", ratio)
        verdict = "wins in every repeat" if ratio.high < 1 else "does not win"
        rows.append(replace(row, detail=f"{row.detail}; first fit {warmups[name]:.0f} s; "
                                        f"{verdict}"))
    return rows


def has_attention(cfg: DictConfig) -> bool:
    return bool(cfg.model.get("use_mid_attn") or cfg.model.get("attn_resolutions"))


def measure(ctx: Context) -> list[Row]:
    flags = flag_list(ctx.device, ctx.profile.compile)
    if not has_attention(ctx.config()):  # the swap would change nothing
        flags = [flag for flag in flags if flag.change != "plain_attention"]
    return flag_rows(ctx, flags)
