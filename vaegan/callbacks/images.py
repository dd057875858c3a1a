"""Image grids: inputs, reconstructions and samples from the prior, side by side.

Prior samples are the cheapest evidence of claim C4: when KL has exploded, decoding
z ~ N(0, I) gives garbage even though reconstructions look fine.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor
from torchvision.utils import make_grid, save_image

from vaegan.callbacks.diagnostic import Diagnostic
from vaegan.callbacks.emit import fixed_val_images, log_image
from vaegan.vocab.checks import require
from vaegan.vocab.layout import RunLayout

CAPTION = "rows: inputs, reconstructions (posterior mean), decoded prior samples z ~ N(0, I)"


class ImageGrids(Diagnostic):
    """Every ``every_n_steps`` generator steps and at the end: a PNG in ``RUN_DIR/images``
    plus the same grid to every logger that takes images (TensorBoard, wandb)."""

    name = "images"

    def __init__(self, every_n_steps: int = 500, num_images: int = 16, seed: int = 0) -> None:
        self.every_n_steps = self.interval("every_n_steps", every_n_steps)
        require(num_images >= 1, "callbacks.images.num_images", num_images, "be >= 1")
        self.num_images = num_images
        self.seed = seed
        self._fixed: Tensor | None = None

    def _inputs(self, trainer: L.Trainer) -> Tensor:
        """A fixed validation batch, so grids over time show the same images."""
        if self._fixed is None:
            self._fixed = fixed_val_images(trainer, self.num_images)
        return self._fixed

    @torch.no_grad()
    def grid(self, trainer: L.Trainer, pl_module: Any) -> Tensor:
        x = self._inputs(trainer).to(pl_module.device)
        was_training = pl_module.training
        pl_module.eval()
        xrec, _ = pl_module.autoencoder(x, sample_posterior=False)
        gen = torch.Generator().manual_seed(self.seed)
        samples = pl_module.sample_prior(x.shape[0], x.shape[-1], generator=gen)
        pl_module.train(was_training)
        rows = torch.cat([x, xrec, samples]).clamp(-1, 1)
        return make_grid((rows + 1) / 2, nrow=x.shape[0])

    @rank_zero_only
    def _emit(self, trainer: L.Trainer, pl_module: Any, tag: str) -> None:
        grid = self.grid(trainer, pl_module)
        out = RunLayout(trainer.default_root_dir).images
        out.mkdir(parents=True, exist_ok=True)
        save_image(grid, out / f"{tag}_step{pl_module.gen_step:07d}.png")
        log_image(trainer, "images/inputs_recs_prior", grid, pl_module.gen_step, CAPTION)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.due(pl_module, self.every_n_steps):
            self._emit(trainer, pl_module, "train")

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._emit(trainer, pl_module, "final")
