"""Sections 1, 2 and 6: what Lightning, the callbacks and the data loader add to a batch."""

from __future__ import annotations

from vaegan.bench.context import GAN_ON, Context
from vaegan.bench.external import external_rows
from vaegan.bench.fit import FitBench
from vaegan.bench.steps import plain_step
from vaegan.bench.table import Row, Target, ratio_row
from vaegan.bench.timing import Ratio, interleaved


def _fit(ctx: Context, name: str, *overrides: str) -> FitBench:
    cfg = ctx.config(GAN_ON, *overrides)
    p = ctx.profile
    return FitBench(cfg, ctx.datamodule(cfg), ctx.run_dir / name, p.warmup, p.steps)


def framework(ctx: Context) -> list[Row]:
    """``Trainer.fit`` with the default callbacks vs the plain loop, both reading the loader."""
    cfg = ctx.config(GAN_ON)
    plain = ctx.data_loop(cfg, plain_step)
    times = interleaved({"fit": _fit(ctx, "framework"), "plain": plain}, ctx.profile.repeats)
    workers = int(cfg.data.num_workers)
    return [
        ratio_row(
            "1", "framework overhead: `Trainer.fit` (default callbacks, CSV log) / plain "
            "PyTorch loop, same model, losses, optimizers and loader; GAN on",
            Ratio.of(times["fit"], times["plain"]), Target(1.05, at_most=True),
        ),
        Row(
            "6", f"data loading: share of a batch spent waiting for it (num_workers={workers})",
            f"{plain.data_share:.1%}",
            f"{plain.waited / max(plain.timed, 1) * 1e3:.1f} ms per batch of {cfg.data.batch_size}",
            value=plain.data_share,
        ),
    ]


def diagnostics(ctx: Context) -> list[Row]:
    """``callbacks_cost.measure`` when present, else default callbacks vs ``callbacks=none``."""
    p = ctx.profile
    target = Target(1.03, at_most=True)
    rows = external_rows(
        "2", "diagnostics cost", "callbacks_cost", target,
        steps=p.steps, repeats=p.external_repeats, warmup=p.warmup, overrides=p.size,
    )
    if rows is not None:
        return rows
    times = interleaved(
        {"on": _fit(ctx, "callbacks_on"), "off": _fit(ctx, "callbacks_off", "callbacks=none")},
        p.repeats,
    )
    return [
        ratio_row(
            "2", "diagnostics cost: `callbacks=default` / `callbacks=none` (`Trainer.fit`)",
            Ratio.of(times["on"], times["off"]), target,
        )
    ]
