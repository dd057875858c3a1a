"""``val/rfid``: FID between the validation images and their reconstructions (torchmetrics).

Costly (an InceptionV3 forward of every validation image and its reconstruction at 299 px),
so it runs every ``every_n_val``-th validation. The Inception weights are torch-fidelity's
``weights-inception-2015-12-05-6726825d.pth`` (what torchmetrics' FID uses), read from
``weights_path`` or the torch hub cache, never downloaded; when missing, training stops before
it starts with one message saying where to put the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from vaegan.callbacks.diagnostic import Diagnostic
from vaegan.losses.perceptual import PretrainedWeightsMissing
from vaegan.vocab.checks import choice
from vaegan.vocab.metric_names import VAL_RFID

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE
)


def inception_path(weights_path: str | None = None) -> Path:
    """``weights_path``, or the file in the torch hub cache where torch-fidelity keeps it."""
    if weights_path:
        return Path(os.path.expanduser(weights_path))
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


class RandomFeatures(nn.Module):
    """A small randomly initialised conv net (fixed seed): for tests and offline smoke runs.

    The Fréchet distance of its features is NOT FID: it is not comparable with published
    numbers or across feature extractors, only between runs that use this same extractor.
    """

    def __init__(self, num_features: int = 32, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.num_features = num_features
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(),
            nn.Conv2d(16, num_features, 3, stride=2), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        for p in self.net.parameters():
            p.data.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        self.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.float())


class ReconstructionFID(Diagnostic):
    """Logs ``val/rfid`` every ``every_n_val`` validations (0: off; sanity checks not counted).

    ``feature``: ``inception`` (FID proper with ``dims=2048``, the pool features every
    published FID uses; torchmetrics also offers 64, 192, 768) or ``random``
    (``RandomFeatures``: not FID, see there). Runs on what validation runs on, so on the EMA
    weights when ``callbacks.ema`` is on.
    """

    name = "rfid"

    def __init__(
        self, every_n_val: int = 0, feature: str = "inception", weights_path: str | None = None,
        dims: int = 2048,
    ) -> None:
        self.every_n_val = self.interval("every_n_val", every_n_val, off=True)
        self.feature = choice("callbacks.rfid.feature", feature, ("inception", "random"))
        self.weights_path = weights_path
        self.dims = dims
        self.validations = 0  # completed (non-sanity) validations, saved in checkpoints
        self.fid: Any = None
        self._active = False

    def _metric(self) -> Any:
        from torchmetrics.image.fid import FrechetInceptionDistance

        if self.feature == "random":
            L.pytorch.utilities.rank_zero_warn(
                f"{VAL_RFID} uses callbacks.rfid.feature=random: a Fréchet distance of random "
                "features, NOT FID (comparable only between runs with the same extractor)"
            )
            return FrechetInceptionDistance(feature=RandomFeatures(), normalize=True)
        path = inception_path(self.weights_path)
        if not path.is_file():
            raise PretrainedWeightsMissing(
                f"{VAL_RFID}: Inception weights not found at {path}. Download {INCEPTION_URL} on "
                "a networked machine and place it there (or set callbacks.rfid.weights_path), "
                f"or switch {VAL_RFID} off: callbacks.rfid.every_n_val=0."
            )
        try:  # torch-fidelity loads it with weights_only=False: refuse anything but tensors
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise PretrainedWeightsMissing(
                f"{VAL_RFID}: {path} is not a plain weights file "
                f"({str(err).splitlines()[0][:120]}); download {INCEPTION_URL} again"
            ) from None
        return FrechetInceptionDistance(
            feature=self.dims, normalize=True, feature_extractor_weights_path=str(path)
        )

    def setup(self, trainer: L.Trainer, pl_module: Any, stage: str) -> None:
        if self.every_n_val and self.fid is None:
            self.fid = self._metric()

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._active = False
        if not self.every_n_val or trainer.sanity_checking:
            return
        self.validations += 1
        self._active = self.validations % self.every_n_val == 0
        if self._active:
            self.fid.to(pl_module.device)
            self.fid.reset()

    def on_validation_reconstruction(
        self, trainer: L.Trainer, pl_module: Any, images: Tensor, reconstructions: Tensor
    ) -> None:
        """Images and reconstructions in [0, 1] (``VAEGAN.validation_step``)."""
        if self._active:
            self.fid.update(images.float(), real=True)
            self.fid.update(reconstructions.float(), real=False)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self._active:
            pl_module.log(VAL_RFID, self.fid.compute(), on_epoch=True)
            self.fid.reset()
            self._active = False

    def state_dict(self) -> dict[str, Any]:
        return {"validations": self.validations}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.validations = int(state_dict.get("validations", 0))
