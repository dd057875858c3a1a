"""Row 4: peak training memory of each design, measured in a fresh process each, and
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

from vaegan.bench.anatomy import SavedBytes
from vaegan.bench.context import COMPUTE, GAN_OFF, GAN_ON, Context
from vaegan.bench.fit import BatchClock, SyntheticData, build, fit, with_steps
from vaegan.bench.memory import measure_here, peak_memory
from vaegan.bench.model_changes import apply_changes
from vaegan.bench.table import Row, Target, failed_row

SD_PIXELS = 12 * 256**2  # Stable Diffusion's kl-f8 training batch: 12 images of 256 px
GIB, MIB = 2**30, 2**20


@dataclass(frozen=True)
class Case:
    design: str  # vaegan | reference (``fit.DESIGNS``)
    phase: str
    sd: bool = False  # at the profile's ``sd_size`` instead of its ``size``
    changes: str | None = None  # ``+``-joined ``model_changes.CHANGES`` names


REFERENCE = Case("reference", GAN_ON, True, "ldm_ops")  # LDM's design and its model ops
MEASURED: tuple[tuple[str, Case, Case], ...] = (
    ("vaegan / reference, GAN on", Case("vaegan", GAN_ON), Case("reference", GAN_ON)),
    ("vaegan / reference, GAN off", Case("vaegan", GAN_OFF), Case("reference", GAN_OFF)),
    ("vaegan / reference with LDM's model ops, GAN on", Case("vaegan", GAN_ON, True), REFERENCE),
    ("vaegan, `model.activation_checkpointing=none` / reference with LDM's ops, GAN on",
     Case("vaegan", GAN_ON, True, "ac_none"), REFERENCE),
)
# label, model changes of the numerator, target; the denominator is always REFERENCE's
PROJECTED: tuple[tuple[str, str | None, Target | None], ...] = (
    ("vaegan as configured (`model.activation_checkpointing={mode}`) / reference (LDM's design "
     "and model ops: x·σ(x), softmax attention)", None, Target(0.6, at_most=True)),
    ("vaegan, `model.activation_checkpointing=none` / reference", "ac_none", None),
    ("vaegan, `model.activation_checkpointing=norm_act` / reference", "ac_norm_act", None),
    ("vaegan, `model.activation_checkpointing=blocks` / reference", "ac_blocks", None),
)


def _spec(ctx: Context, case: Case) -> dict[str, Any]:
    profile = ctx.profile
    return {
        "design": case.design, "changes": case.changes,
        "overrides": ctx.overrides(*COMPUTE, *(profile.sd_size if case.sd else ()), case.phase),
        "device": str(ctx.device), "threads": torch.get_num_threads(),
        "warmup": profile.warmup, "steps": max(1, min(profile.steps, 2)),
    }


def _size_label(ctx: Context, sd: bool) -> str:
    sizes = ctx.profile.sd_size if sd else ()
    cfg = ctx.config(*sizes)
    named = [override.removeprefix("experiment=") for override in sizes
             if override.startswith("experiment=")]
    return ", ".join([*(f"`{name}`" for name in named), f"{cfg.data.image_size} px",
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
    for label, numerator, denominator in MEASURED:
        ours, theirs = peak(numerator), peak(denominator)
        ratio = ours["step_mb"] / theirs["step_mb"] if theirs["step_mb"] > 0 else float("nan")
        rows.append(
            Row(
                "4", f"peak step memory (measured), {label} ({_size_label(ctx, numerator.sd)})",
                f"{ratio:.2f}×",
                f"{ours['step_mb']:.0f} vs {theirs['step_mb']:.0f} MiB above idle ({unit} "
                f"{ours['peak_mb']:.0f} vs {theirs['peak_mb']:.0f} MiB)",
                value=ratio,
            )
        )
    return rows


def projected(ctx: Context) -> list[Row]:
    """Saved activations × SD's batch·pixels / this batch's, + gradients, for each variant."""
    cfg = with_steps(ctx.config(*COMPUTE, *ctx.profile.sd_size, GAN_ON), 1, ctx.run_dir / "saved")
    built = build(cfg)  # once: kl-f8 and VGG take a while
    data = SyntheticData(cfg)
    scale = SD_PIXELS / (data.batch.shape[0] * data.batch.shape[-2] * data.batch.shape[-1])
    trainable = [*built.autoencoder.parameters(), *built.discriminator.parameters()]
    grads = sum(param.numel() * param.element_size() for param in trainable
                if param.requires_grad)

    def saved(changes: str | None) -> Counter[str]:
        """One batch of ``Trainer.fit``, counted up to the generator's backward."""
        module = copy.deepcopy(built)
        apply_changes(module, changes)
        counter = SavedBytes()
        fit(cfg, module, data, ctx.run_dir / f"saved-{changes}", BatchClock(0, 1), counter)
        return counter.total

    ref = sum(saved("ldm_ops").values()) * scale + grads
    mode = cfg.model.get("activation_checkpointing", "none")
    rows = []
    for label, changes, target in PROJECTED:
        parts = saved(changes)
        mine = sum(parts.values()) * scale + grads
        split = ", ".join(
            f"{network} {saved_bytes / sum(parts.values()):.0%}"
            for network, saved_bytes in parts.most_common() if saved_bytes > 0
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


def measure(ctx: Context) -> list[Row]:
    rows = []
    for part in (measured, projected):
        try:
            rows += part(ctx)
        except Exception as err:  # noqa: BLE001 - one failed probe must not lose the table
            rows.append(failed_row("4", f"memory ({part.__name__})", err))
    return rows
