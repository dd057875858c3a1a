"""LPIPS perceptual loss with backbone weights loaded from disk, never from the network.

``lpips`` ships its linear calibration layers, but the AlexNet/VGG backbone comes from
torchvision, which downloads it on first use. vaegan builds the backbone uninitialised and
loads the torchvision checkpoint from the torch hub cache (or ``weights_path``) itself, so a
machine without internet either has the file or gets one clear message before training.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

# torchvision's ImageNet checkpoints for the LPIPS backbones (names as torch hub saves them).
BACKBONE_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}
BACKBONE_URLS = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "squeeze": "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
}


class PretrainedWeightsMissing(FileNotFoundError):
    """The LPIPS backbone checkpoint is not on disk; the message says where to put it."""


def backbone_path(net: str, weights_path: str | None = None) -> Path:
    """Where the backbone checkpoint must be: ``weights_path`` or the torch hub cache."""
    if weights_path:
        return Path(os.path.expanduser(weights_path))
    return Path(torch.hub.get_dir()) / "checkpoints" / BACKBONE_FILES[net]


def _load_backbone(model: nn.Module, net: str, path: Path) -> None:
    """Copy torchvision's ``features.N`` weights into lpips's ``sliceK.N`` modules."""
    if not path.is_file():
        raise PretrainedWeightsMissing(
            f"LPIPS {net} backbone weights not found at {path}. Download {BACKBONE_URLS[net]} "
            f"on a networked machine and place it there (or set "
            f"loss.objective.perceptual.weights_path), or train without them: "
            f"loss.objective.perceptual.pretrained=false (random backbone, "
            f"for tests only) or loss.objective.perceptual_weight=0."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated download or a non-checkpoint file
        raise PretrainedWeightsMissing(
            f"LPIPS backbone file {path} could not be read ({err}); download it again."
        ) from err
    features = {k.removeprefix("features."): v for k, v in state.items() if "features." in k}
    for slice_module in model.net.children():
        for name, layer in slice_module.named_children():
            own = {k: features[f"{name}.{k}"] for k in layer.state_dict()}
            layer.load_state_dict(own)


class Perceptual(nn.Module):
    """Frozen LPIPS distance per image, inputs in [-1, 1].

    ``pretrained=False`` keeps the calibration layers that ``lpips`` ships (non-negative, so
    the distance stays >= 0) on a randomly initialised backbone: a random-feature perceptual
    distance, not LPIPS, with the same code path and cost (tests, offline quickstart).
    """

    def __init__(
        self, net: str = "alex", pretrained: bool = True, weights_path: str | None = None
    ) -> None:
        super().__init__()
        import lpips  # imported here: it pulls in torchvision models

        if net not in BACKBONE_FILES:
            raise ValueError(
                f"loss.objective.perceptual.net={net!r} is unknown; "
                f"allowed: {tuple(BACKBONE_FILES)}"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.lpips = lpips.LPIPS(pretrained=True, net=net, pnet_rand=True, verbose=False)
        if pretrained:
            _load_backbone(self.lpips, net, backbone_path(net, weights_path))
        self.net_name = net
        self.pretrained = pretrained
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> Perceptual:
        """Stay in eval mode: LPIPS's dropout must not fire during training."""
        return super().train(False)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """LPIPS distance, shape [B, 1, 1, 1]."""
        return self.lpips(x.contiguous(), y.contiguous())
