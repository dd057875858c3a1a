"""LPIPS perceptual loss with the backbone's weights checked against their published hash.

``lpips`` ships its linear calibration layers, but the AlexNet/VGG backbone comes from
torchvision's checkpoint. vaegan builds the backbone uninitialised and loads that checkpoint
from the torch hub cache (or ``weights_path``) itself: when the file is not there it fetches
it into the cache if the network allows (a compute node without internet gets one clear
message before training instead), and either way it checks the file's SHA-256 against the
prefix in torchvision's file name before loading it (``weights_only``).
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
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


def sha256_prefix(net: str) -> str:
    """The SHA-256 prefix torchvision puts in its checkpoint names (``alexnet-owt-7be5be79``)."""
    return BACKBONE_FILES[net].rsplit("-", 1)[1].split(".")[0]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, path: Path, timeout: float = 30.0) -> None:
    """``url`` to ``path`` through a temp file in the same dir, renamed when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, tmp.open("wb") as f:
            while chunk := response.read(1 << 20):
                f.write(chunk)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_backbone(net: str, weights_path: str | None = None, download: bool = True) -> Path:
    """The backbone checkpoint: on disk, or fetched into the torch hub cache when ``download``
    and the network allow; PretrainedWeightsMissing (one line) otherwise. A file with
    torchvision's name (the cache's) must match the SHA-256 prefix that name carries."""
    path = backbone_path(net, weights_path)
    url = BACKBONE_URLS[net]
    if not path.is_file():
        failed = ""
        if download and not weights_path:
            try:
                _download(url, path)
            except OSError as err:  # offline (URLError), refused, timed out, disk full
                failed = f" (fetching it failed: {str(err).splitlines()[0][:120]})"
        if not path.is_file():
            raise PretrainedWeightsMissing(
                f"LPIPS {net} backbone weights not found at {path}{failed}. Download {url} "
                f"on a networked machine and place it there (or set "
                f"loss.objective.perceptual.weights_path), or train without them: "
                f"loss.objective.perceptual.pretrained=false (random backbone, "
                f"for tests only) or loss.objective.perceptual_weight=0."
            )
    if path.name != BACKBONE_FILES[net]:  # a file of the user's own naming: their choice
        return path
    actual, expected = _sha256(path), sha256_prefix(net)
    if not actual.startswith(expected):
        raise PretrainedWeightsMissing(
            f"LPIPS backbone file {path} is not torchvision's {BACKBONE_FILES[net]} (SHA-256 "
            f"{actual[:8]}..., expected {expected}...); delete it and download {url} again."
        )
    return path


def _load_backbone(model: nn.Module, net: str, path: Path) -> None:
    """Copy torchvision's ``features.N`` weights into lpips's ``sliceK.N`` modules."""
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
        self, net: str = "alex", pretrained: bool = True, weights_path: str | None = None,
        download: bool = True,
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
            _load_backbone(self.lpips, net, ensure_backbone(net, weights_path, download))
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


# Smallest image each LPIPS backbone runs on (its pooling stack; lpips 0.1.4).
MIN_IMAGE_SIZE = {"alex": 32, "vgg": 16, "squeeze": 24}


def min_image_size(net: str) -> int:
    return MIN_IMAGE_SIZE.get(net, 32)


def validation_lpips(
    perceptual: dict | None, perceptual_weight: float, image_size: int
) -> Perceptual | None:
    """val/lpips for a loss without an LPIPS term (same package and weights as the loss
    would use); None where the loss's own LPIPS serves, or below the backbone's minimum size."""
    perceptual = dict(perceptual or {})
    if perceptual_weight > 0 or image_size < min_image_size(perceptual.get("net", "alex")):
        return None
    return Perceptual(**perceptual)
