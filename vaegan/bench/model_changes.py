"""Changes to fresh players that the bench measures against vaegan as it is, by name.

Speed flags (``channels_last``, ``compile``), each ``model.activation_checkpointing`` mode
(``ac_<mode>``: recomputation traded for activation memory), and latent-diffusion's model ops
for the reference. Each keeps the parameters (and so the optimizers) as they are.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vaegan.bench.ldm_ops import ldm_ops
from vaegan.bench.players import Players
from vaegan.models.autoencoder import ACTIVATION_CHECKPOINTING


def channels_last(p: Players) -> None:
    for module in (p.ae, p.disc, p.objective):
        module.to(memory_format=torch.channels_last)


def compile_networks(p: Players) -> None:
    p.ae = torch.compile(p.ae)  # type: ignore[assignment]
    p.disc = torch.compile(p.disc)


def activation_checkpointing(mode: str) -> Callable[[Players], None]:
    """``model.activation_checkpointing=mode`` on already-built players."""

    def prepare(p: Players) -> None:
        p.ae.set_activation_checkpointing(mode)

    return prepare


PREPARES: dict[str, Callable[[Players], None]] = {
    "channels_last": channels_last,
    "compile": compile_networks,
    **{f"ac_{mode}": activation_checkpointing(mode) for mode in ACTIVATION_CHECKPOINTING},
    "ldm_ops": ldm_ops,
}
