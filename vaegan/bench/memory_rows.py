"""Section 4: peak training memory of each design, measured in a fresh process each, and
projected to Stable Diffusion's training size from the activations a generator pass saves.

At a CPU-sized batch the parameter gradients (336 MiB for kl-f8, the same in every design)
are a large part of a step's peak; at 256 px, batch 12 the saved activations dominate. The
projection (saved activations × batch·pixels ratio + gradients) is therefore what the target
is held against; the measured rows check it at the sizes a CPU can run.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch

from vaegan.bench.anatomy import saved_bytes
from vaegan.bench.context import COMPUTE, GAN_OFF, GAN_ON, Context
from vaegan.bench.memory import measure_here, peak_memory
from vaegan.bench.model_changes import PREPARES
from vaegan.bench.players import players_of, synthetic_batch
from vaegan.bench.table import Row, Target, failed_row
from vaegan.train import build_module

SD_PIXELS = 12 * 256**2  # Stable Diffusion's kl-f8 training batch: 12 images of 256 px
GIB, MIB = 2**30, 2**20


@dataclass(frozen=True)
class Case:
    design: str  # vaegan | reference (both Trainer.fit) | plain (row 1's plain loop)
    phase: str
    sd: bool = False  # at the profile's ``sd_size`` instead of its ``size``
    flag: str | None = None  # model changes, ``+``-joined (``model_changes.PREPARES``)


REFERENCE = Case("reference", GAN_ON, True, "ldm_ops")  # LDM's design and its model ops
MEASURED: tuple[tuple[str, Case, Case], ...] = (
    ("vaegan / reference, GAN on", Case("vaegan", GAN_ON), Case("reference", GAN_ON)),
    ("vaegan / reference, GAN off", Case("vaegan", GAN_OFF), Case("reference", GAN_OFF)),
    ("`Trainer.fit` / plain loop, GAN on", Case("vaegan", GAN_ON), Case("plain", GAN_ON)),
    ("vaegan / reference with LDM's model ops, GAN on", Case("vaegan", GAN_ON, True), REFERENCE),
    ("vaegan, `model.activation_checkpointing=none` / reference with LDM's ops, GAN on",
     Case("vaegan", GAN_ON, True, "ac_none"), REFERENCE),
)
# label, model change of the numerator, target; the denominator is always REFERENCE's
PROJECTED: tuple[tuple[str, str | None, Target | None], ...] = (
    ("vaegan as configured (`model.activation_checkpointing={mode}`) / reference (LDM's design "
     "and model ops: x·σ(x), softmax attention)", None, Target(0.6, at_most=True)),
    ("vaegan, `model.activation_checkpointing=none` / reference", "ac_none", None),
    ("vaegan, `model.activation_checkpointing=norm_act` / reference", "ac_norm_act", None),
    ("vaegan, `model.activation_checkpointing=blocks` / reference", "ac_blocks", None),
)


def _spec(ctx: Context, case: Case) -> dict[str, Any]:
    p = ctx.profile
    return {
        "design": case.design, "flag": case.flag,
        "overrides": ctx.overrides(*COMPUTE, *(p.sd_size if case.sd else ()), case.phase),
        "device": str(ctx.device), "threads": torch.get_num_threads(),
        "warmup": p.warmup, "steps": max(1, min(p.steps, 2)),
    }


def _size_label(ctx: Context, sd: bool) -> str:
    sizes = ctx.profile.sd_size if sd else ()
    cfg = ctx.config(*sizes)
    named = [o.replace("experiment=", "") for o in sizes if o.startswith("experiment=")]
    return ", ".join([*(f"`{n}`" for n in named), f"{cfg.data.image_size} px",
                      f"batch {cfg.data.batch_size}"])


def measured(ctx: Context) -> list[Row]:
    """Each distinct configuration probed once (``--tiny`` has no separate kl-f8 size)."""
    probe = peak_memory if ctx.profile.fresh_memory_process else measure_here
    cache: dict[str, dict[str, float]] = {}

    def peak(case: Case) -> dict[str, float]:
        spec = json.dumps(_spec(ctx, case))
        if spec not in cache:
            cache[spec] = probe(json.loads(spec))
        return cache[spec]

    unit = "CUDA max allocated" if ctx.device.type == "cuda" else "peak RSS"
    rows = []
    for label, num, den in MEASURED:
        a, b = peak(num), peak(den)
        ratio = a["step_mb"] / b["step_mb"] if b["step_mb"] > 0 else float("nan")
        rows.append(
            Row(
                "4", f"peak step memory (measured), {label} ({_size_label(ctx, num.sd)})",
                f"{ratio:.2f}×",
                f"{a['step_mb']:.0f} vs {b['step_mb']:.0f} MiB above idle ({unit} "
                f"{a['peak_mb']:.0f} vs {b['peak_mb']:.0f} MiB)",
                value=ratio,
            )
        )
    return rows


def projected(ctx: Context) -> list[Row]:
    """Saved activations × SD's batch·pixels / this batch's, + gradients, for each variant."""
    cfg = ctx.config(*ctx.profile.sd_size, GAN_ON)
    torch.manual_seed(int(cfg.seed))
    built = build_module(cfg).to(ctx.device).train()  # once: kl-f8 and VGG take a while
    x = synthetic_batch(cfg, ctx.device)
    scale = SD_PIXELS / (x.shape[0] * x.shape[-2] * x.shape[-1])
    trainable = [*built.autoencoder.parameters(), *built.discriminator.parameters()]
    grads = sum(t.numel() * t.element_size() for t in trainable if t.requires_grad)

    def saved(change: str | None) -> Counter[str]:
        module = copy.deepcopy(built)
        if change:
            PREPARES[change](module)
        return saved_bytes(players_of(module), x)

    ref = sum(saved("ldm_ops").values()) * scale + grads
    mode = cfg.model.get("activation_checkpointing", "none")
    rows = []
    for label, change, target in PROJECTED:
        parts = saved(change)
        mine = sum(parts.values()) * scale + grads
        split = ", ".join(
            f"{k} {v / sum(parts.values()):.0%}" for k, v in parts.most_common() if v > 0
        )
        rows.append(
            Row(
                "4", f"step memory projected to 256 px, batch 12: {label.format(mode=mode)}",
                f"{mine / ref:.2f}×",
                f"{mine / GIB:.1f} vs {ref / GIB:.1f} GiB (activations saved by one generator "
                f"pass at {_size_label(ctx, True)} × {scale:.0f}, + {grads / MIB:.0f} MiB "
                f"gradients); split: {split}",
                target, mine / ref,
            )
        )
    return rows


def memory(ctx: Context) -> list[Row]:
    rows = []
    for part in (measured, projected):
        try:
            rows += part(ctx)
        except Exception as err:  # noqa: BLE001 - one failed probe must not lose the table
            rows.append(failed_row("4", f"memory ({part.__name__})", err))
    return rows
