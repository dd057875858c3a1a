"""Changes to fresh players that the bench measures against vaegan as it is, by name.

Speed flags (``channels_last``, ``compile``), two ways of trading recomputation for activation
memory that vaegan does not offer yet (measured to size the trade), and latent-diffusion's
model ops for the reference. Each keeps the parameters (and so the optimizers) as they are.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from vaegan.bench.ldm_ops import ldm_ops
from vaegan.bench.players import Players


def channels_last(p: Players) -> None:
    for module in (p.ae, p.disc, p.objective):
        module.to(memory_format=torch.channels_last)


def compile_networks(p: Players) -> None:
    p.ae = torch.compile(p.ae)  # type: ignore[assignment]
    p.disc = torch.compile(p.disc)


def _recomputed(forward: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    return checkpoint(forward, x, use_reentrant=False)


def checkpoint_blocks(p: Players) -> None:
    """Keep only each autoencoder block's input; recompute the block during backward."""
    ae = p.ae
    for block in [*ae.encoder.down, *ae.encoder.mid, *ae.decoder.mid, *ae.decoder.up]:
        block.forward = functools.partial(_recomputed, block.forward)


class _NormAct(nn.Module):
    """GroupNorm → SiLU whose output is recomputed in backward from the input it keeps."""

    def __init__(self, norm: nn.Module, act: nn.Module) -> None:
        super().__init__()
        self.inner = nn.Sequential(norm, act)

    def forward(self, x: Tensor) -> Tensor:
        return _recomputed(self.inner, x)


def recompute_norm_act(p: Players) -> None:
    """Every GroupNorm → SiLU pair in the autoencoder: the norm's output (SiLU's input) is no
    longer kept, one of the three activations each norm-act-conv otherwise saves."""
    for module in list(p.ae.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        layers = list(module)
        i = next((i for i in range(len(layers) - 1) if isinstance(layers[i], nn.GroupNorm)
                  and isinstance(layers[i + 1], nn.SiLU)), None)
        if i is None:
            continue
        merged = [*layers[:i], _NormAct(layers[i], layers[i + 1]), *layers[i + 2 :]]
        for name in list(module._modules):
            del module._modules[name]
        for j, layer in enumerate(merged):
            module.add_module(str(j), layer)


PREPARES: dict[str, Callable[[Players], None]] = {
    "channels_last": channels_last,
    "compile": compile_networks,
    "checkpoint_blocks": checkpoint_blocks,
    "recompute_norm_act": recompute_norm_act,
    "ldm_ops": ldm_ops,
}
