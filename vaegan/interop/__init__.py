"""Autoencoders in and out: vaegan runs, diffusers models, LDM/Stable Diffusion checkpoints.

``load_autoencoder(path)`` reads any of them (architecture from the weights);
``model=pretrained model.source=PATH`` fine-tunes from one (``pretrained``);
``vaegan-export`` writes diffusers or LDM files (``export``).
"""

from vaegan.interop.sources import SourceError, load_autoencoder, pretrained, read_source

__all__ = ["SourceError", "load_autoencoder", "pretrained", "read_source"]
