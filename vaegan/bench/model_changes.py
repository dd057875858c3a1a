"""Changes to a freshly built module that the bench measures against vaegan as configured.

Speed flags that are no config key (``channels_last``, ``compile``), the
``model.activation_checkpointing`` modes on a module built already (``ac_<mode>``), and
latent-diffusion's model ops for the reference (``ldm_ops``; ``plain_attention``: its
attention alone, the SDPA flag's baseline). Each keeps the parameters (and so the optimizers)
as they are and computes the same function.

LDM computes swish as ``x * torch.sigmoid(x)`` (autograd keeps both ``x`` and ``σ(x)``, where
``nn.SiLU`` keeps only ``x``) and attention as an explicit softmax over an HW × HW matrix,
where vaegan uses fused SDPA; the memory comparison against the reference uses both, as the
reference's peak was measured with them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor, nn

from vaegan.core.module import VAEGAN
from vaegan.models.autoencoder import ACTIVATION_CHECKPOINTING, AttnBlock


class Swish(nn.Module):
    """LDM's ``nonlinearity``: the same function as ``nn.SiLU``, saving two tensors."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(x)


def softmax_attention(block: AttnBlock, x: Tensor) -> Tensor:
    """LDM's ``AttnBlock.forward`` on vaegan's fused qkv weights."""
    batch, channels, height, width = x.shape
    query, key, value = block.qkv(block.norm(x)).reshape(
        batch, 3, channels, height * width).unbind(dim=1)  # each [B, C, HW]
    weights = torch.softmax(torch.bmm(query.transpose(1, 2), key) * channels**-0.5, dim=2)
    out = torch.bmm(value, weights.transpose(1, 2)).reshape(batch, channels, height, width)
    return x + block.proj_out(out)


def plain_attention(module: VAEGAN) -> None:
    """LDM's softmax attention in every attention block instead of SDPA."""
    for block in module.autoencoder.modules():
        if isinstance(block, AttnBlock):
            block.forward = functools.partial(softmax_attention, block)


def ldm_ops(module: VAEGAN) -> None:
    """LDM's swish and attention, and none of vaegan's activation checkpointing."""
    module.autoencoder.set_activation_checkpointing("none")
    for parent in module.autoencoder.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.SiLU):
                setattr(parent, name, Swish())
    plain_attention(module)


def channels_last(module: VAEGAN) -> None:
    """NHWC weights: every conv then computes in channels_last, whatever the input's layout."""
    for network in (module.autoencoder, module.discriminator, module.objective):
        network.to(memory_format=torch.channels_last)


def compile_networks(module: VAEGAN) -> None:
    module.autoencoder.compile()
    module.discriminator.compile()


def activation_checkpointing(mode: str) -> Callable[[VAEGAN], None]:
    """``model.activation_checkpointing=mode`` on an already-built module."""

    def change(module: VAEGAN) -> None:
        module.autoencoder.set_activation_checkpointing(mode)

    return change


CHANGES: dict[str, Callable[[VAEGAN], None]] = {
    "channels_last": channels_last,
    "compile": compile_networks,
    **{f"ac_{mode}": activation_checkpointing(mode) for mode in ACTIVATION_CHECKPOINTING},
    "ldm_ops": ldm_ops,
    "plain_attention": plain_attention,
}


def apply_changes(module: VAEGAN, names: str | None) -> None:
    """Apply ``CHANGES[name]`` for each name of ``"a+b"``, in order (none for ``None``)."""
    for name in (names or "").split("+"):
        if name:
            CHANGES[name](module)
