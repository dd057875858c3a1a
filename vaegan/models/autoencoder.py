"""SD-style convolutional KL autoencoder (the "first stage" of Stable Diffusion).

Layout follows LDM's Encoder/Decoder so that `ch=128, ch_mult=(1, 2, 4, 4),
num_res_blocks=2, use_mid_attn=True` reproduces the kl-f8 model (~83.65 M parameters),
while the defaults are small enough to train on a CPU at 32x32.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from vaegan.models.distributions import (
    DiagonalGaussian,
    check_posterior_args,
    posterior_from_moments,
)
from vaegan.vocab.checks import choice, require


def num_groups(channels: int, max_groups: int = 32) -> int:
    """Largest divisor of `channels` that is <= max_groups (32 for SD-sized layers)."""
    return next(g for g in range(min(max_groups, channels), 0, -1) if channels % g == 0)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups(channels), channels, eps=1e-6, affine=True)


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)


ACTIVATION_CHECKPOINTING = ("none", "norm_act", "blocks")
"""`model.activation_checkpointing`: what the autoencoder recomputes in backward to save memory.

- ``none``: keep every activation (fastest).
- ``norm_act``: recompute each GroupNorm -> SiLU from the norm's input, so SiLU's input is not
  kept: one of the three tensors each norm-act-conv saves.
- ``blocks``: keep only each ResNet/attention/resampling block's input and rerun the block in
  backward: the least memory, the most recomputation.

What each costs and saves is measured by ``make bench`` (bench/RESULTS.md).
"""


def _grad_needed(x: Tensor) -> bool:
    """Recompute only when a graph is being built (not in eval, validation or no_grad)."""
    return torch.is_grad_enabled() and x.requires_grad


class NormActConv(nn.Sequential):
    """GroupNorm -> SiLU -> [Dropout] -> conv3x3 (pre-activation); index -1 is the conv.

    A Sequential (its state-dict keys are those of the plain Sequential it replaced) whose
    norm -> SiLU pair can be recomputed in backward (`recompute_norm_act`) instead of keeping
    the norm's output.
    """

    recompute_norm_act: bool = False

    def _norm_act(self, x: Tensor) -> Tensor:
        return self[1](self[0](x))

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        if self.recompute_norm_act and _grad_needed(x):
            h = checkpoint(self._norm_act, x, use_reentrant=False)
        else:
            h = self._norm_act(x)
        for layer in list(self)[2:]:
            h = layer(h)
        return h


class CheckpointedBlocks(nn.Sequential):
    """A chain of blocks; with `recompute_blocks` only each block's input is kept for backward."""

    recompute_blocks: bool = False

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        for block in self:
            if self.recompute_blocks and _grad_needed(x):
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


def norm_act_conv(in_channels: int, out_channels: int, dropout: float | None = None) -> NormActConv:
    """GroupNorm -> SiLU -> (Dropout, when given) -> conv3x3."""
    drop = [] if dropout is None else [nn.Dropout(dropout)]
    return NormActConv(
        group_norm(in_channels), nn.SiLU(), *drop, conv3x3(in_channels, out_channels)
    )


class ResnetBlock(nn.Module):
    """Two norm-SiLU-conv layers with a residual; a 1x1 conv matches channels if they change."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.block1 = norm_act_conv(in_channels, out_channels)
        self.block2 = norm_act_conv(out_channels, out_channels, dropout)
        self.shortcut = (
            nn.Identity() if in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, kernel_size=1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.block2(self.block1(x))


class AttnBlock(nn.Module):
    """Single-head self-attention over spatial positions, via fused SDPA (no HW x HW matrix)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, kernel_size=1)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2)  # [B, 3, HW, C]
        q, k, v = (t.unsqueeze(1) for t in qkv.unbind(dim=1))  # each [B, 1, HW, C]
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.squeeze(1).transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Stride-2 3x3 conv with LDM's asymmetric (right/bottom) padding."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 conv (avoids transposed-conv checkerboards)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = conv3x3(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def res_stage(
    in_channels: int, out_channels: int, n_blocks: int, with_attn: bool, dropout: float
) -> list[nn.Module]:
    """n_blocks ResnetBlocks at one resolution, each followed by attention if requested."""
    layers: list[nn.Module] = []
    for i in range(n_blocks):
        layers.append(ResnetBlock(in_channels if i == 0 else out_channels, out_channels, dropout))
        if with_attn:
            layers.append(AttnBlock(out_channels))
    return layers


def mid_block(channels: int, dropout: float, use_attn: bool) -> CheckpointedBlocks:
    return CheckpointedBlocks(
        ResnetBlock(channels, channels, dropout),
        AttnBlock(channels) if use_attn else nn.Identity(),
        ResnetBlock(channels, channels, dropout),
    )


class Encoder(nn.Module):
    """Image [B, in, H, W] -> moments [B, 2*z_channels, H/f, W/f]."""

    def __init__(
        self, *, in_channels: int, ch: int, ch_mult: Sequence[int], num_res_blocks: int,
        z_channels: int, attn_resolutions: Iterable[int], resolution: int, dropout: float,
        use_mid_attn: bool,
    ) -> None:
        super().__init__()
        attn_at = set(attn_resolutions)
        layers: list[nn.Module] = [conv3x3(in_channels, ch)]
        channels, res = ch, resolution
        for level, mult in enumerate(ch_mult):
            layers += res_stage(channels, ch * mult, num_res_blocks, res in attn_at, dropout)
            channels = ch * mult
            if level != len(ch_mult) - 1:
                layers.append(Downsample(channels))
                res //= 2
        self.down = CheckpointedBlocks(*layers)
        self.mid = mid_block(channels, dropout, use_mid_attn)
        self.out = norm_act_conv(channels, 2 * z_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.mid(self.down(x)))


class Decoder(nn.Module):
    """Latent [B, z_channels, h, w] -> image [B, out, h*f, w*f] (no output activation)."""

    def __init__(
        self, *, out_channels: int, ch: int, ch_mult: Sequence[int], num_res_blocks: int,
        z_channels: int, attn_resolutions: Iterable[int], resolution: int, dropout: float,
        use_mid_attn: bool,
    ) -> None:
        super().__init__()
        attn_at = set(attn_resolutions)
        channels = ch * ch_mult[-1]
        res = resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = conv3x3(z_channels, channels)
        self.mid = mid_block(channels, dropout, use_mid_attn)
        layers: list[nn.Module] = []
        for level in reversed(range(len(ch_mult))):
            out = ch * ch_mult[level]
            layers += res_stage(channels, out, num_res_blocks + 1, res in attn_at, dropout)
            channels = out
            if level != 0:
                layers.append(Upsample(channels))
                res *= 2
        self.up = CheckpointedBlocks(*layers)
        self.out = norm_act_conv(channels, out_channels)

    @property
    def conv_out(self) -> nn.Conv2d:
        return self.out[-1]

    def forward(self, z: Tensor) -> Tensor:
        return self.out(self.up(self.mid(self.conv_in(z))))


class AutoencoderKL(nn.Module):
    """Encoder -> 1x1 quant conv -> DiagonalGaussian -> 1x1 post-quant conv -> Decoder.

    Constructor keywords are the `model:` config keys; `posterior` holds the keyword
    arguments of `posterior_from_moments` (parameterization, logvar_min, logvar_max, min_var).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ch: int = 32,
        ch_mult: Sequence[int] = (1, 2),
        num_res_blocks: int = 1,
        z_channels: int = 4,
        embed_dim: int = 4,
        attn_resolutions: Sequence[int] = (),
        resolution: int = 32,
        dropout: float = 0.0,
        use_mid_attn: bool = False,
        posterior: dict[str, Any] | None = None,
        activation_checkpointing: str = "none",
    ) -> None:
        super().__init__()
        ch_mult = tuple(int(m) for m in ch_mult)
        self.posterior_kwargs = dict(posterior or {})
        _validate(
            in_channels=in_channels, out_channels=out_channels, ch=ch, ch_mult=ch_mult,
            num_res_blocks=num_res_blocks, z_channels=z_channels, embed_dim=embed_dim,
            resolution=resolution, dropout=dropout, posterior=self.posterior_kwargs,
        )
        self.embed_dim = embed_dim
        self.resolution = resolution
        self._downsample_factor = 2 ** (len(ch_mult) - 1)
        shared = dict(
            ch=ch, ch_mult=ch_mult, num_res_blocks=num_res_blocks, z_channels=z_channels,
            attn_resolutions=tuple(int(r) for r in attn_resolutions), resolution=resolution,
            dropout=dropout, use_mid_attn=use_mid_attn,
        )
        self.encoder = Encoder(in_channels=in_channels, **shared)
        self.decoder = Decoder(out_channels=out_channels, **shared)
        self.quant_conv = nn.Conv2d(2 * z_channels, 2 * embed_dim, kernel_size=1)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, kernel_size=1)
        self.set_activation_checkpointing(activation_checkpointing)

    def set_activation_checkpointing(self, mode: str) -> None:
        """Trade recomputation for activation memory (see ACTIVATION_CHECKPOINTING); the
        parameters, and so the results up to float rounding, do not change."""
        choice("model.activation_checkpointing", mode, ACTIVATION_CHECKPOINTING)
        self.activation_checkpointing = mode
        for module in self.modules():
            if isinstance(module, NormActConv):
                module.recompute_norm_act = mode == "norm_act"
            elif isinstance(module, CheckpointedBlocks):
                module.recompute_blocks = mode == "blocks"

    def encode(self, x: Tensor) -> DiagonalGaussian:
        return posterior_from_moments(self.quant_conv(self.encoder(x)), **self.posterior_kwargs)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(self.post_quant_conv(z))

    def forward(self, x: Tensor, sample_posterior: bool = True) -> tuple[Tensor, DiagonalGaussian]:
        posterior = self.encode(x)
        z = posterior.sample() if sample_posterior else posterior.mode()
        return self.decode(z), posterior

    @property
    def last_layer(self) -> nn.Parameter:
        """Decoder's final conv weight: LDM's adaptive GAN weight compares gradients here."""
        return self.decoder.conv_out.weight

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Everything upstream of the posterior (encoder + quant_conv)."""
        return [*self.encoder.parameters(), *self.quant_conv.parameters()]

    def decoder_parameters(self) -> list[nn.Parameter]:
        """Everything downstream of z (post_quant_conv + decoder)."""
        return [*self.post_quant_conv.parameters(), *self.decoder.parameters()]

    @property
    def downsample_factor(self) -> int:
        return self._downsample_factor

    def latent_shape(self, image_size: int | tuple[int, int]) -> tuple[int, int, int]:
        """(embed_dim, h, w) of the latent for an image of `image_size` (int or (H, W))."""
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        f = self._downsample_factor
        if height % f or width % f:
            raise ValueError(f"image_size {image_size} is not divisible by downsample factor {f}")
        return self.embed_dim, height // f, width // f


def _validate(
    *, ch_mult: tuple[int, ...], resolution: int, dropout: float, posterior: dict[str, Any],
    **positive: int,
) -> None:
    """One-line ValueErrors that name the offending model key."""
    for key, value in positive.items():
        require(value >= 1, f"model.{key}", value, "be >= 1")
    require(bool(ch_mult) and min(ch_mult) >= 1, "model.ch_mult", list(ch_mult),
            "be a non-empty list of ints >= 1")
    require(0.0 <= dropout < 1.0, "model.dropout", dropout, "be in [0, 1)")
    factor = 2 ** (len(ch_mult) - 1)
    require(resolution >= 1 and resolution % factor == 0, "model.resolution", resolution,
            f"be divisible by the model's downsampling factor {factor} "
            "(2^(len(model.ch_mult)-1))", f"a data.image_size that is a multiple of {factor}")
    try:
        check_posterior_args(**posterior)
    except TypeError as err:  # a key the posterior does not take
        raise ValueError(f"model.posterior: {err}") from None
