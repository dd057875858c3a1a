"""Posterior statistics over time: the evidence for claims C1–C3 and fix F3.

From the training batch's posterior (every ``every_n_steps``): μ mean/std, log σ² mean/min/max,
σ² mean, the fraction of log σ² sitting at a clamp bound, KL per latent channel
(``latent/kl_dim/<c>``, the per-dim heatmap) and ``latent/total_dims``. On a fixed validation
batch (every ``active_units_every``): active units (Burda et al. 2016) and collapsed dims,
the numbers that tell an informative KL rise from posterior collapse.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import lightning as L
import torch
from torch import Tensor

from vaegan.callbacks.diagnostic import Diagnostic
from vaegan.callbacks.emit import fixed_val_images, log_histograms, log_scalars
from vaegan.core.hooks import GeneratorOutput
from vaegan.models.distributions import (
    DiagonalGaussian,
    clamp_fraction,
    posterior_from_moments,
)
from vaegan.vocab import metric_names as metric
from vaegan.vocab.checks import require

_POSTERIOR_DEFAULTS = {
    name: p.default for name, p in inspect.signature(posterior_from_moments).parameters.items()
}


def posterior_stats(
    posterior: DiagonalGaussian, posterior_kwargs: dict[str, Any]
) -> dict[str, Tensor | float]:
    """Detached summary tensors of q(z|x) for one batch (no host sync here)."""
    settings = {**_POSTERIOR_DEFAULTS, **posterior_kwargs}
    mu, logvar = posterior.mean.detach(), posterior.logvar.detach()
    if settings["parameterization"] == "clamp":
        clamp = clamp_fraction(logvar, settings["logvar_min"], settings["logvar_max"])
    else:
        clamp = torch.zeros((), device=mu.device)
    stats = {
        metric.LATENT_MU_MEAN: mu.mean(),
        metric.LATENT_MU_STD: mu.std(),
        metric.LATENT_LOGVAR_MEAN: logvar.mean(),
        metric.LATENT_LOGVAR_MIN: logvar.min(),
        metric.LATENT_LOGVAR_MAX: logvar.max(),
        metric.LATENT_VAR_MEAN: logvar.exp().mean(),
        metric.LATENT_CLAMP_FRAC: clamp,
        metric.LATENT_TOTAL_DIMS: float(mu[0].numel()),
    }
    per_channel = DiagonalGaussian(mu, logvar, posterior.deterministic).kl_per_channel()
    stats.update({metric.latent_kl_dim(c): v for c, v in enumerate(per_channel)})
    return stats


log = logging.getLogger("vaegan")
MIN_UNIT_IMAGES = 8  # fewer validation images: active units and collapsed dims are NaN


@torch.no_grad()
def unit_activity(
    autoencoder: torch.nn.Module, images: Tensor, batch_size: int, threshold: float
) -> dict[str, Tensor]:
    """Active units: latent elements d with Cov_x(E_q[z_d]) > threshold (Burda et al. 2016);
    collapsed dims: elements whose KL, averaged over the images, is below ``threshold`` nats."""
    was_training = autoencoder.training
    autoencoder.eval()
    means, kls = [], []
    for chunk in images.split(batch_size):
        posterior = autoencoder.encode(chunk)
        means.append(posterior.mean)
        kls.append(posterior.kl_per_element())
    autoencoder.train(was_training)
    mu, kl = torch.cat(means), torch.cat(kls)
    if len(mu) < MIN_UNIT_IMAGES:  # a variance over 1 image is NaN, and 0 units "active"
        nan = torch.tensor(float("nan"))
        return {metric.LATENT_ACTIVE_UNITS: nan, metric.LATENT_COLLAPSED_DIMS: nan}
    return {
        metric.LATENT_ACTIVE_UNITS: (mu.var(dim=0) > threshold).sum().float(),
        metric.LATENT_COLLAPSED_DIMS: (kl.mean(dim=0) < threshold).sum().float(),
    }


class LatentStats(Diagnostic):
    """Latent statistics at cheap intervals; nothing is computed on other steps."""

    name = "latent"

    def __init__(
        self,
        every_n_steps: int = 10,
        active_units_every: int = 250,
        histograms_every: int | None = 250,
        num_images: int = 256,
        threshold: float = 0.01,
    ) -> None:
        self.every_n_steps = self.interval("every_n_steps", every_n_steps)
        self.active_units_every = self.interval("active_units_every", active_units_every)
        self.histograms_every = self.interval("histograms_every", histograms_every, off=True)
        require(num_images >= 1, "callbacks.latent.num_images", num_images, "be >= 1")
        self.num_images = num_images
        self.threshold = threshold
        self._images: Tensor | None = None
        self._units_at = -1

    def on_generator_output(self, trainer: L.Trainer, pl_module: Any, out: GeneratorOutput) -> None:
        posterior, step = out.posterior, pl_module.gen_step
        if self.due(pl_module, self.every_n_steps):
            stats = posterior_stats(posterior, pl_module.autoencoder.posterior_kwargs)
            log_scalars(trainer, stats, step)
        if self.due(pl_module, self.histograms_every):
            histograms = {metric.LATENT_MU: posterior.mean, metric.LATENT_LOGVAR: posterior.logvar}
            log_histograms(trainer, histograms, step)

    def _log_units(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self._images is None:
            self._images = fixed_val_images(trainer, self.num_images)
            if len(self._images) < MIN_UNIT_IMAGES:
                log.warning(
                    "%s and %s need at least %d validation images, the validation set has %d:"
                    " logged as NaN (not computed); add images or raise data.val_fraction",
                    metric.LATENT_ACTIVE_UNITS, metric.LATENT_COLLAPSED_DIMS, MIN_UNIT_IMAGES,
                    len(self._images),
                )
        images = self._images.to(pl_module.device)
        batch = getattr(trainer.datamodule, "batch_size", 64)
        stats = unit_activity(pl_module.autoencoder, images, batch, self.threshold)
        log_scalars(trainer, stats, pl_module.gen_step)
        self._units_at = pl_module.gen_step

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        """A count at the start too: at initialisation μ ≈ 0 and σ ≈ 1 (claim C3's baseline)."""
        self._log_units(trainer, pl_module)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.due(pl_module, self.active_units_every):
            self._log_units(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        """The final state always gets a count, however short the run."""
        if self._units_at != pl_module.gen_step:
            self._log_units(trainer, pl_module)
