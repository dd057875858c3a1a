"""Changes to a fresh module that the bench measures against vaegan as it is, by name.

Speed flags that are no config key (``channels_last``, ``compile``), and latent-diffusion's
model ops for the reference (``ldm_ops``; ``plain_attention``: its attention alone). The
``model.activation_checkpointing`` modes are config keys (``ac_<mode>`` sets one on a module
built already). Each keeps the parameters (and so the optimizers) as they are.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vaegan.bench.ldm_ops import ldm_ops, plain_attention
from vaegan.core.module import VAEGAN
from vaegan.models.autoencoder import ACTIVATION_CHECKPOINTING


def channels_last(m: VAEGAN) -> None:
    """NHWC weights: every conv then computes in channels_last, whatever the input's layout."""
    for module in (m.autoencoder, m.discriminator, m.objective):
        module.to(memory_format=torch.channels_last)


def compile_networks(m: VAEGAN) -> None:
    m.autoencoder.compile()
    m.discriminator.compile()


def activation_checkpointing(mode: str) -> Callable[[VAEGAN], None]:
    """``model.activation_checkpointing=mode`` on an already-built module."""

    def prepare(m: VAEGAN) -> None:
        m.autoencoder.set_activation_checkpointing(mode)

    return prepare


PREPARES: dict[str, Callable[[VAEGAN], None]] = {
    "channels_last": channels_last,
    "compile": compile_networks,
    **{f"ac_{mode}": activation_checkpointing(mode) for mode in ACTIVATION_CHECKPOINTING},
    "ldm_ops": ldm_ops,
    "plain_attention": plain_attention,
}


def prepare_all(names: str | None) -> Callable[[VAEGAN], None] | None:
    """``"a+b"`` -> one change applying ``PREPARES["a"]`` then ``PREPARES["b"]``."""
    changes = [PREPARES[n] for n in (names or "").split("+") if n]
    if not changes:
        return None

    def prepare(m: VAEGAN) -> None:
        for change in changes:
            change(m)

    return prepare
