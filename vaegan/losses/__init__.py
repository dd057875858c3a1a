"""Loss terms and the combined VAE-GAN objective."""

from vaegan.losses.objective import GeneratorTerms, VAEGANObjective
from vaegan.losses.perceptual import Perceptual, PretrainedWeightsMissing

__all__ = ["GeneratorTerms", "Perceptual", "PretrainedWeightsMissing", "VAEGANObjective"]
