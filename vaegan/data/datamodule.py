"""One LightningDataModule for every data set, chosen by name.

Flat keyword arguments (rather than a nested dataset config) keep Hydra overrides short:
`data.batch_size=64`, `data.image_size=64`, `data.root=/path`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from vaegan.data.errors import DataError
from vaegan.data.folder import folder_splits
from vaegan.data.patches import patch_splits
from vaegan.data.resumable import ResumableLoader, training_seed
from vaegan.data.torchvision_sets import celeba_splits, cifar10_splits
from vaegan.vocab.checks import choice, must, require

# name -> fn(image_size, augment, **settings) -> (train, val)
BUILDERS: dict[str, Callable[..., tuple[Dataset, Dataset]]] = {
    "patches": patch_splits,
    "folder": folder_splits,
    "cifar10": cifar10_splits,
    "celeba": celeba_splits,
}
COMMON = ("image_size", "augment")  # passed by the DataModule itself


def check_settings(dataset: str, settings: dict) -> None:
    """Fail at construction, naming the key, on an unknown data set or a wrong setting."""
    choice("data.dataset", dataset, sorted(BUILDERS))
    params = inspect.signature(BUILDERS[dataset]).parameters
    allowed = [name for name in params if name not in COMMON]
    for key in settings:
        if key not in allowed:
            raise ValueError(must(f"data.{key}", settings[key],
                                  f"be a setting of data.dataset={dataset}", allowed))
    for name in allowed:
        if params[name].default is inspect.Parameter.empty and name not in settings:
            raise ValueError(must(f"data.{name}", None, f"be set for data.dataset={dataset}"))


class ImageDataModule(L.LightningDataModule):
    """Float images [3, image_size, image_size] in [-1, 1]; batches are plain tensors.

    `settings` go to the data set's builder (see BUILDERS), e.g. `root`, `stride`,
    `val_sources`. Training batches are shuffled and drop the last partial batch (so
    every generator step sees batch_size images); under DDP each rank serves its share of
    the same seeded permutation (``EpochSampler``, a DistributedSampler).
    """

    def __init__(
        self,
        dataset: str = "patches",
        image_size: int = 32,
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = True,
        augment: bool = True,
        **settings,
    ) -> None:
        super().__init__()
        require(not isinstance(image_size, bool) and image_size > 0 and image_size % 8 == 0,
                "data.image_size", image_size, "be a positive multiple of 8")
        require(batch_size >= 1, "data.batch_size", batch_size, "be >= 1")
        require(num_workers >= 0, "data.num_workers", num_workers, "be >= 0")
        check_settings(dataset, settings)
        self.save_hyperparameters()
        self.dataset = dataset
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.augment = augment
        self.settings = settings
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Build both splits once; later calls (fit, then validate) reuse them."""
        if self.train_set is not None:
            return
        build = BUILDERS[self.dataset]
        train, val = build(self.image_size, self.augment, **self.settings)
        if len(train) < self.batch_size:  # type: ignore[arg-type]
            raise DataError(
                f"the {self.dataset} training set has {len(train)} images, fewer than "  # type: ignore[arg-type]
                f"data.batch_size={self.batch_size}; add data or lower data.batch_size"
            )
        self.train_set, self.val_set = train, val

    def _loader(self, dataset: Dataset, train: bool) -> DataLoader:
        """Training: seeded by (seed, epoch) and resumable mid-epoch (see data/resumable.py).
        Validation: in order, with its own generator so that iterating it leaves the global
        RNG (posterior noise) untouched."""
        common = dict(
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
        )
        if train:
            return ResumableLoader(dataset, seed=training_seed(), **common)
        return DataLoader(dataset, generator=torch.Generator().manual_seed(0), **common)

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        self.setup("fit")
        return self._loader(self.val_set, train=False)

    def val_batch(self, n: int) -> Tensor:
        """A fixed batch [min(n, len(val)), 3, H, W] of validation images, the same every call.

        The images are spread evenly over the validation set rather than taken from its
        start, so that grids and active-unit counts cover every source, not one photo.
        """
        if n < 1:
            raise ValueError(f"val_batch needs n >= 1, got {n}")
        self.setup("fit")
        count = min(n, len(self.val_set))  # type: ignore[arg-type]
        indices = torch.linspace(0, len(self.val_set) - 1, count).round().long()  # type: ignore[arg-type]
        return torch.stack([self.val_set[int(i)] for i in indices])
