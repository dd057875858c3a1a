"""Image grids: inputs, reconstructions and samples from the prior, side by side.

Prior samples are the cheapest evidence of claim C4: when KL has exploded, decoding
z ~ N(0, I) gives garbage even though reconstructions look fine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor
from torchvision.utils import make_grid, save_image

from vaegan.module import batch_images


class ImageGrids(L.Callback):
    """Every ``every_n_steps`` generator steps and at the end: a PNG in ``RUN_DIR/images``
    plus the same grid to every logger that takes images (TensorBoard, wandb)."""

    def __init__(self, every_n_steps: int = 500, num_images: int = 16, seed: int = 0) -> None:
        if every_n_steps < 1 or num_images < 1:
            raise ValueError("callbacks.images.every_n_steps and num_images must be >= 1")
        self.every_n_steps = every_n_steps
        self.num_images = num_images
        self.seed = seed
        self._fixed: Tensor | None = None

    def _inputs(self, trainer: L.Trainer) -> Tensor:
        """A fixed validation batch, so grids over time show the same images."""
        if self._fixed is None:
            loader = trainer.datamodule.val_dataloader()
            images = []
            for batch in loader:
                images.append(batch_images(batch))
                if sum(len(b) for b in images) >= self.num_images:
                    break
            self._fixed = torch.cat(images)[: self.num_images]
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
        out = Path(trainer.default_root_dir) / "images"
        out.mkdir(parents=True, exist_ok=True)
        save_image(grid, out / f"{tag}_step{pl_module.gen_step:07d}.png")
        for logger in trainer.loggers:
            log_image = getattr(logger, "log_image", None)
            experiment = getattr(logger, "experiment", None)
            if log_image is not None:  # WandbLogger
                log_image(key="images/inputs_recs_prior", images=[grid])
            elif hasattr(experiment, "add_image"):  # TensorBoard
                experiment.add_image("images/inputs_recs_prior", grid, pl_module.gen_step)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if pl_module.gen_step % self.every_n_steps == 0:
            self._emit(trainer, pl_module, "train")

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._emit(trainer, pl_module, "final")
