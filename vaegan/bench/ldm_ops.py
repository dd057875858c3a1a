"""latent-diffusion's model code, emulated on vaegan's autoencoder (same weights, same function).

LDM computes swish as ``x * torch.sigmoid(x)`` (autograd keeps both ``x`` and ``σ(x)``, where
``nn.SiLU`` keeps only ``x``) and attention as an explicit softmax over an HW × HW matrix,
where vaegan uses fused SDPA. The memory comparison against the reference uses both, as the
reference's peak was measured with them; ``plain_attention`` alone is the SDPA flag's baseline.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn

from vaegan.core.module import VAEGAN
from vaegan.models.autoencoder import AttnBlock


class Swish(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(x)


def vanilla_attention(block: AttnBlock, x: Tensor) -> Tensor:
    """LDM's ``AttnBlock.forward`` on vaegan's fused qkv weights."""
    b, c, h, w = x.shape
    q, k, v = block.qkv(block.norm(x)).reshape(b, 3, c, h * w).unbind(dim=1)  # each [B, C, HW]
    weights = torch.softmax(torch.bmm(q.transpose(1, 2), k) * c**-0.5, dim=2)  # [B, HW, HW]
    out = torch.bmm(v, weights.transpose(1, 2)).reshape(b, c, h, w)
    return x + block.proj_out(out)


def plain_attention(m: VAEGAN) -> None:
    """LDM's softmax attention in every attention block instead of SDPA."""
    for module in m.autoencoder.modules():
        if isinstance(module, AttnBlock):
            module.forward = functools.partial(vanilla_attention, module)


def ldm_ops(m: VAEGAN) -> None:
    """LDM's swish and attention, and none of vaegan's activation checkpointing."""
    m.autoencoder.set_activation_checkpointing("none")
    for module in m.autoencoder.modules():
        for name, child in module.named_children():
            if isinstance(child, nn.SiLU):
                setattr(module, name, Swish())
    plain_attention(m)
