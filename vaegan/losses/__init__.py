"""Loss terms and the combined VAE-GAN objective."""

from vaegan.losses.objective import GeneratorOutput, VAEGANObjective
from vaegan.losses.perceptual import Perceptual, PretrainedWeightsMissing

__all__ = ["GeneratorOutput", "Perceptual", "PretrainedWeightsMissing", "VAEGANObjective"]
