"""The diagonal Gaussian posterior q(z|x) and how its log-variance is parameterised.

The KL split into a mean part and a variance part (claim C2) and the fraction of
clamped log-variances (fix F3) live here so every caller computes them the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vaegan.vocab.checks import choice, require

PARAMETERIZATIONS = ("clamp", "softplus", "none")
_BOUND_TOL = 1e-6


class DiagonalGaussian:
    """N(mean, exp(logvar)) per element, with KL to N(0, I).

    `mean` and `logvar` are stored as given (not detached) so gradients can be
    taken with respect to them, e.g. for per-term gradient attribution.
    """

    def __init__(self, mean: Tensor, logvar: Tensor, deterministic: bool = False) -> None:
        if mean.shape != logvar.shape:
            raise ValueError(f"mean {tuple(mean.shape)} and logvar {tuple(logvar.shape)} differ")
        self.mean = mean
        self.logvar = logvar
        self.deterministic = deterministic

    @property
    def var(self) -> Tensor:
        return torch.zeros_like(self.mean) if self.deterministic else torch.exp(self.logvar)

    @property
    def std(self) -> Tensor:
        return torch.zeros_like(self.mean) if self.deterministic else torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """Reparameterised sample mean + std * eps, differentiable in mean and logvar."""
        eps = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + self.std * eps

    def mode(self) -> Tensor:
        return self.mean

    def kl_parts_per_element(self) -> tuple[Tensor, Tensor]:
        """Elementwise (0.5 mu^2, 0.5 (var - 1 - logvar)); both zero when deterministic."""
        if self.deterministic:
            zero = torch.zeros_like(self.mean)
            return zero, zero
        mu_part = 0.5 * self.mean.pow(2)
        var_part = 0.5 * (torch.exp(self.logvar) - 1.0 - self.logvar)
        return mu_part, var_part

    def kl_per_element(self) -> Tensor:
        """KL of each latent element to N(0, 1); same shape as `mean` (free bits, active units)."""
        mu_part, var_part = self.kl_parts_per_element()
        return mu_part + var_part

    def kl_parts(self) -> tuple[Tensor, Tensor]:
        """(mu part [B], variance part [B]); they add up to `kl()`."""
        mu_part, var_part = self.kl_parts_per_element()
        return _sum_per_sample(mu_part), _sum_per_sample(var_part)

    def kl(self) -> Tensor:
        """KL(q || N(0, I)) per sample, summed over all non-batch dims: shape [B]."""
        return _sum_per_sample(self.kl_per_element())

    def kl_per_channel(self) -> Tensor:
        """KL per latent channel [C]: summed over spatial dims, averaged over the batch."""
        per_element = self.kl_per_element()
        spatial = tuple(range(2, per_element.dim()))
        per_channel = per_element.sum(dim=spatial) if spatial else per_element
        return per_channel.mean(dim=0)


def _sum_per_sample(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1).sum(dim=1)


def check_posterior_args(
    parameterization: str = "clamp",
    logvar_min: float = -30.0,
    logvar_max: float = 20.0,
    min_var: float = 1e-4,
) -> None:
    """Raise a one-line ValueError naming the bad key; shared by the model constructor."""
    choice("model.posterior.parameterization", parameterization, PARAMETERIZATIONS)
    require(logvar_min < logvar_max, "model.posterior.logvar_min", logvar_min,
            f"be < model.posterior.logvar_max={logvar_max}")
    require(min_var > 0, "model.posterior.min_var", min_var, "be > 0")


def posterior_from_moments(
    moments: Tensor,
    parameterization: str = "clamp",
    logvar_min: float = -30.0,
    logvar_max: float = 20.0,
    min_var: float = 1e-4,
) -> DiagonalGaussian:
    """Split channels into (mean, h) and turn h into a log-variance.

    "clamp": clamp(h, logvar_min, logvar_max) as in LDM (gradient is zero at a bound);
    "softplus": log(softplus(h) + min_var), so var >= min_var with a smooth gradient;
    "none": h unbounded.
    """
    check_posterior_args(parameterization, logvar_min, logvar_max, min_var)
    if moments.shape[1] % 2:
        raise ValueError(f"moments need an even channel count, got {moments.shape[1]}")
    mean, h = torch.chunk(moments, 2, dim=1)
    if parameterization == "clamp":
        logvar = torch.clamp(h, logvar_min, logvar_max)
    elif parameterization == "softplus":
        logvar = torch.log(F.softplus(h) + min_var)
    else:
        logvar = h
    return DiagonalGaussian(mean, logvar)


def clamp_fraction(logvar: Tensor, logvar_min: float, logvar_max: float) -> Tensor:
    """Fraction of log-variances sitting at a clamp bound (there they get no gradient)."""
    at_bound = (logvar <= logvar_min + _BOUND_TOL) | (logvar >= logvar_max - _BOUND_TOL)
    return at_bound.float().mean().detach()
