"""Networks: the KL autoencoder, its Gaussian posterior, and the PatchGAN discriminator."""

from vaegan.models.autoencoder import AutoencoderKL, Decoder, Encoder
from vaegan.models.discriminator import PatchGANDiscriminator
from vaegan.models.distributions import DiagonalGaussian, clamp_fraction, posterior_from_moments

__all__ = [
    "AutoencoderKL",
    "Decoder",
    "DiagonalGaussian",
    "Encoder",
    "PatchGANDiscriminator",
    "clamp_fraction",
    "posterior_from_moments",
]
