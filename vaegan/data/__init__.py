"""Data sets of float images [3, H, W] in [-1, 1], and the DataModule that serves them."""

from vaegan.data.datamodule import BUILDERS, ImageDataModule
from vaegan.data.errors import DataError
from vaegan.data.folder import IMAGE_EXTENSIONS, ImageFolder, folder_splits
from vaegan.data.patches import DEFAULT_VAL_SOURCES, SOURCES, PatchDataset, patch_splits
from vaegan.data.torchvision_sets import celeba_splits, cifar10_splits

__all__ = [
    "BUILDERS",
    "DEFAULT_VAL_SOURCES",
    "IMAGE_EXTENSIONS",
    "SOURCES",
    "DataError",
    "ImageDataModule",
    "ImageFolder",
    "PatchDataset",
    "celeba_splits",
    "cifar10_splits",
    "folder_splits",
    "patch_splits",
]
