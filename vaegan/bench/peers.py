"""Peer numbers: vaegan's ``sd_kl_f8`` autoencoder against diffusers' ``AutoencoderKL`` with the
same architecture and the same weights (``vaegan.interop.export.to_diffusers``), forward +
backward per batch, so a user can see what choosing vaegan's model costs. A model comparison,
not a training step: no loss, discriminator or optimizer on either side."""

from __future__ import annotations

from collections.abc import Callable

import torch
from hydra.utils import instantiate
from torch import Tensor, nn

from vaegan.bench.context import Context
from vaegan.bench.table import Row, failed_row, ratio_row
from vaegan.bench.timing import Ratio, interleaved, now

SECTION = "peers"
TITLE = "vaegan sd_kl_f8 / diffusers AutoencoderKL, forward + backward (same weights)"


def _timer(
    model: nn.Module, reconstruct: Callable[[Tensor], Tensor], x: Tensor, warmup: int, steps: int
) -> Callable[[], float]:
    """Seconds per forward + backward of ``reconstruct(x)``, after ``warmup`` untimed ones."""

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        reconstruct(x).square().mean().backward()

    def seconds_per_batch() -> float:
        for _ in range(warmup):
            forward_backward()
        start = now()
        for _ in range(steps):
            forward_backward()
        return (now() - start) / steps

    return seconds_per_batch


def peer_ratio(model: nn.Module, x: Tensor, warmup: int, steps: int, repeats: int) -> Ratio:
    """vaegan seconds per batch / diffusers seconds per batch, after checking that both give
    the same encode mean and decode (else the comparison would be of different networks)."""
    from vaegan.interop.export import max_differences, to_diffusers

    model.set_activation_checkpointing("none")  # diffusers keeps every activation too
    peer = to_diffusers(model).to(x.device)
    differences = max_differences(model, peer, size=x.shape[-1])
    if max(differences.values()) > 1e-3:
        raise AssertionError(f"vaegan and diffusers outputs differ: {differences}")
    model.train()
    peer.train()
    times = interleaved({
        "vaegan": _timer(model, lambda images: model(images, sample_posterior=False)[0], x,
                         warmup, steps),
        "diffusers": _timer(peer, lambda images: peer(images).sample, x, warmup, steps),
    }, repeats)
    return Ratio.of(times["vaegan"], times["diffusers"])


def measure(ctx: Context) -> list[Row]:
    profile = ctx.profile
    try:
        # --tiny has no SD size: ch=32 is the smallest width whose levels share one GroupNorm
        # group count, which diffusers' AutoencoderKL needs
        cfg = ctx.config(*(profile.sd_size or ("model.ch=32",)))
        model = instantiate(cfg.model, _convert_="all").to(ctx.device)
        size = int(cfg.data.image_size)
        x = torch.rand(int(cfg.data.batch_size), 3, size, size, device=ctx.device) * 2 - 1
        ratio = peer_ratio(model, x, profile.warmup, profile.steps, profile.repeats)
        return [ratio_row(SECTION, TITLE, ratio)]
    except Exception as err:  # noqa: BLE001 - e.g. diffusers not installed: say so in the table
        return [failed_row(SECTION, TITLE, err)]
