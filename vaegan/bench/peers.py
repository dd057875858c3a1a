"""Peer numbers: vaegan's ``sd_kl_f8`` autoencoder against diffusers' ``AutoencoderKL`` with the
same architecture and the same weights (``vaegan.interop.export.to_diffusers``), forward +
backward per batch, so a user can see what choosing vaegan's model costs."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from hydra.utils import instantiate
from torch import Tensor, nn

from vaegan.bench.table import Row, failed_row, ratio_row
from vaegan.bench.timing import Ratio, interleaved

SECTION = "peers"
TITLE = "vaegan sd_kl_f8 / diffusers AutoencoderKL, forward + backward (same weights)"


def _timer(step: Callable[[], None], warmup: int, steps: int) -> Callable[[], float]:
    def measure() -> float:
        for _ in range(warmup):
            step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        return (time.perf_counter() - start) / steps

    return measure


def _step(model: nn.Module, run: Callable[[Tensor], Tensor], x: Tensor) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        run(x).square().mean().backward()

    return step


def peer_ratio(model: nn.Module, x: Tensor, warmup: int, steps: int, repeats: int) -> Ratio:
    """vaegan seconds per batch / diffusers seconds per batch, after checking that both give
    the same encode mean and decode (else the comparison would be of different networks)."""
    from vaegan.interop.export import max_differences, to_diffusers

    model.set_activation_checkpointing("none")  # diffusers keeps every activation too
    peer = to_diffusers(model).to(x.device)
    diffs = max_differences(model, peer, size=x.shape[-1])
    if max(diffs.values()) > 1e-3:
        raise AssertionError(f"vaegan and diffusers outputs differ: {diffs}")
    model.train(), peer.train()
    times = interleaved({
        "vaegan": _timer(_step(model, lambda t: model(t, sample_posterior=False)[0], x),
                         warmup, steps),
        "diffusers": _timer(_step(peer, lambda t: peer(t).sample, x), warmup, steps),
    }, repeats)
    return Ratio.of(times["vaegan"], times["diffusers"])


def peers(ctx) -> list[Row]:
    p = ctx.profile
    try:
        # --tiny has no SD size: ch=32 is the smallest width whose levels share one GroupNorm
        # group count, which diffusers' AutoencoderKL needs
        cfg = ctx.config(*(p.sd_size or ("model.ch=32",)))
        model = instantiate(cfg.model, _convert_="all").to(ctx.device)
        x = torch.rand(cfg.data.batch_size, 3, cfg.data.image_size, cfg.data.image_size,
                       device=ctx.device) * 2 - 1
        return [ratio_row(SECTION, TITLE, peer_ratio(model, x, p.warmup, p.steps, p.repeats))]
    except Exception as err:  # noqa: BLE001 - e.g. diffusers not installed: say so in the table
        return [failed_row(SECTION, TITLE, err)]
