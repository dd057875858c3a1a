"""CIFAR-10 and CelebA through torchvision's own download and integrity-check code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import Tensor
from torch.utils.data import Dataset
from torchvision import datasets
from torchvision.transforms import v2

from vaegan.data.errors import DataError
from vaegan.data.folder import image_transform


class ImagesOnly(Dataset):
    """Drops the labels, so every data set yields bare image tensors."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Tensor:
        return self.dataset[i][0]


def open_dataset(factory: Callable[..., Dataset], root: Path, download: bool, **kwargs) -> Dataset:
    """Build a torchvision data set, turning missing files or a failed download into DataError.

    torchvision raises RuntimeError for missing or corrupt files (and for a missing gdown),
    and URLError/OSError when the network is unreachable.
    """
    name = factory.__name__
    try:
        return ImagesOnly(factory(root=str(root), download=download, **kwargs))
    except (RuntimeError, OSError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        problem = "download failed" if download else "files not found (data.download=false)"
        raise DataError(
            f"{name} {problem} under {root.resolve()} ({reason}); set data.download=true on a "
            "networked machine, or point data.root to a folder that holds a copy"
        ) from err


def cifar10_splits(
    image_size: int, augment: bool, root: str | Path, download: bool = False
) -> tuple[Dataset, Dataset]:
    """CIFAR-10's 50k training images, and its 10k test images as validation."""
    train, val = (
        open_dataset(
            datasets.CIFAR10,
            Path(root).expanduser(),
            download,
            train=is_train,
            transform=image_transform(image_size, augment and is_train),
        )
        for is_train in (True, False)
    )
    return train, val


def celeba_splits(
    image_size: int,
    augment: bool,
    root: str | Path,
    download: bool = False,
    face_crop: int | None = 140,
) -> tuple[Dataset, Dataset]:
    """CelebA's official train/valid splits of the aligned 178x218 faces.

    `face_crop` first cuts the central square around the face (the usual VAE recipe), so
    that the face, not the background, fills the image after resizing; null skips it.
    """
    crop = [v2.CenterCrop(face_crop)] if face_crop else []
    train, val = (
        open_dataset(
            datasets.CelebA,
            Path(root).expanduser(),
            download,
            split=split,
            target_type=[],
            transform=v2.Compose(
                [*crop, image_transform(image_size, augment and split == "train")]
            ),
        )
        for split in ("train", "valid")
    )
    return train, val
