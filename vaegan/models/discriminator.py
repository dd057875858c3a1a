"""PatchGAN discriminator (pix2pix / taming-transformers NLayerDiscriminator layout).

It scores overlapping patches rather than whole images, so the adversarial signal is
about local texture, the high-frequency detail that claim G1 attributes to the GAN.
"""

from __future__ import annotations

from torch import Tensor, nn

from vaegan.models.autoencoder import num_groups
from vaegan.vocab.checks import choice, require

NORMS = ("batch", "instance", "group", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(num_groups(channels), channels)
    return nn.Identity()


class PatchGANDiscriminator(nn.Module):
    """conv4x4/s2 + LeakyReLU, (n_layers - 1) x [conv/s2, norm, LeakyReLU],
    one stride-1 block, then a 1-channel conv: patch logits [B, 1, h, w]."""

    def __init__(
        self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "batch"
    ) -> None:
        super().__init__()
        choice("loss.discriminator.norm", norm, NORMS)
        for key, value in (("in_channels", in_channels), ("ndf", ndf), ("n_layers", n_layers)):
            require(value >= 1, f"loss.discriminator.{key}", value, "be >= 1")
        use_bias = norm == "none"  # a norm's shift makes a conv bias redundant
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        channels = ndf
        for n in range(1, n_layers + 1):
            out = ndf * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(channels, out, kernel_size=4, stride=stride, padding=1, bias=use_bias),
                _norm(norm, out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            channels = out
        layers.append(nn.Conv2d(channels, 1, kernel_size=4, stride=1, padding=1))
        self.main = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)


def _init_weights(module: nn.Module) -> None:
    """DCGAN init: conv weights N(0, 0.02), norm scales N(1, 0.02), all biases 0."""
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d | nn.InstanceNorm2d | nn.GroupNorm):
        nn.init.normal_(module.weight, 1.0, 0.02)
    else:
        return
    if module.bias is not None:
        nn.init.zeros_(module.bias)
