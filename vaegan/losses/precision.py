"""fp32 islands inside mixed precision (``trainer.precision=bf16-mixed`` / ``16-mixed``).

The KL is a sum over every latent element of exp(log σ²) − 1 − log σ² + μ²: in bf16 (8 bits
of mantissa) the sum loses small terms and exp overflows early, so it runs in fp32 even when
the convolutions around it run in half precision. The adaptive weight's norm ratio likewise.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch
from torch import Tensor

from vaegan.models.distributions import DiagonalGaussian


def autocast_off(like: Tensor) -> AbstractContextManager:
    """Disable autocast for ``like``'s device type (a no-op outside autocast)."""
    return torch.autocast(device_type=like.device.type, enabled=False)


def fp32_posterior(posterior: DiagonalGaussian) -> DiagonalGaussian:
    """The same posterior with fp32 moments (gradients still flow to the half-precision ones)."""
    return DiagonalGaussian(
        posterior.mean.float(), posterior.logvar.float(), deterministic=posterior.deterministic
    )
