"""Spectral probe for claim G1: is the GAN adding high-frequency texture, or structure?

At every validation, on a fixed validation batch, it logs
- ``probe/hf_ratio``: power of the reconstruction's high-frequency band (radial frequency above
  half the Nyquist frequency) over that of the input. 1 = as much fine detail as the data;
  blurry VAE reconstructions sit well below 1.
- ``probe/lowpass_l1``: L1 error between input and reconstruction after 4× average pooling,
  i.e. the error in the coarse, low-frequency structure.
The study adds it to arms with ``+callbacks.probe._target_=vaegan.study.probe.SpectralProbe``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from vaegan.vocab.metric_names import PROBE_HF_RATIO, PROBE_LOWPASS_L1

HF_CUTOFF = 0.5  # fraction of the Nyquist frequency above which power counts as "high"
POOL = 4  # average-pooling factor for the low-frequency error


def high_frequency_power(x: Tensor, cutoff: float = HF_CUTOFF) -> Tensor:
    """Mean power of each image's spectrum above ``cutoff`` × Nyquist (radially): shape [B]."""
    spectrum = torch.fft.fft2(x - x.mean(dim=(-2, -1), keepdim=True)).abs().pow(2)
    fy = torch.fft.fftfreq(x.shape[-2], device=x.device).abs()
    fx = torch.fft.fftfreq(x.shape[-1], device=x.device).abs()
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2) / 0.5  # 1.0 = Nyquist
    mask = (radius > cutoff).to(x.dtype)
    return (spectrum * mask).sum(dim=(-3, -2, -1)) / mask.sum() / x.shape[-3]


def lowpass_l1(x: Tensor, xrec: Tensor, pool: int = POOL) -> Tensor:
    """L1 error of the coarse structure: both images average-pooled by ``pool``: shape [B]."""
    k = min(pool, x.shape[-1])
    diff = F.avg_pool2d(x, k) - F.avg_pool2d(xrec, k)
    return diff.abs().flatten(1).mean(dim=1)


class SpectralProbe(L.Callback):
    """Logs ``probe/hf_ratio`` and ``probe/lowpass_l1`` at each validation (see module doc)."""

    def __init__(self, num_images: int = 64) -> None:
        if num_images < 1:
            raise ValueError(f"callbacks.probe.num_images={num_images} must be >= 1")
        self.num_images = num_images
        self._batch: Tensor | None = None

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        if self._batch is None:
            self._batch = trainer.datamodule.val_batch(self.num_images)
        x = self._batch.to(pl_module.device)
        xrec = pl_module.autoencoder.decode(pl_module.autoencoder.encode(x).mode())
        ratio = high_frequency_power(xrec).mean() / high_frequency_power(x).mean().clamp_min(1e-12)
        pl_module.log_dict(
            {PROBE_HF_RATIO: ratio, PROBE_LOWPASS_L1: lowpass_l1(x, xrec).mean()},
            on_step=False, on_epoch=True,
        )
