"""vaegan: KL autoencoders with perceptual and adversarial losses, and their KL dynamics."""

from typing import Any

__all__ = ["load_autoencoder"]


def __getattr__(name: str) -> Any:
    """``vaegan.load_autoencoder`` without importing torch for every ``import vaegan.x``."""
    if name == "load_autoencoder":
        from vaegan.interop import load_autoencoder

        return load_autoencoder
    raise AttributeError(f"module 'vaegan' has no attribute {name!r}")
