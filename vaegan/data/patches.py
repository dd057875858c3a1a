"""The embedded default data set: RGB patches cut from the images scikit-image ships.

It needs no network and no disk beyond the installed package, so the quickstart and the
tests run anywhere. Train and validation are split by *source image*: a validation patch
never overlaps a training photograph, so validation measures generalisation rather than
memorisation of neighbouring pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from vaegan.data.errors import DataError
from vaegan.vocab.checks import require

# Natural photographs and textures that load offline from skimage 0.26 (the others need a
# pooch download). Left out: `cat` (the same photo as `chelsea`, it would leak across the
# split) and `moon`, `clock`, `cell` (mostly flat, they would add near-constant patches).
SOURCES: tuple[str, ...] = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "retina",
    "hubble_deep_field",
    "brick",
    "grass",
    "gravel",
    "camera",
    "coins",
    "page",
    "text",
)
DEFAULT_VAL_SOURCES: tuple[str, ...] = ("chelsea", "gravel")  # one photo, one texture
MAX_SIDE = 512  # larger sources are downscaled so that no single image dominates the set


@cache
def load_source(name: str) -> Tensor:
    """One source image as uint8 [3, H, W]; cached, as every build reads the same files."""
    image = np.asarray(getattr(skimage.data, name)())
    if image.dtype != np.uint8:  # bool masks or float images
        image = (image.astype(np.float64) / image.max() * 255).round().astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    x = torch.from_numpy(np.ascontiguousarray(image[..., :3])).permute(2, 0, 1)
    scale = MAX_SIDE / max(x.shape[1:])
    if scale < 1:
        small = F.interpolate(x[None].float(), scale_factor=scale, mode="bilinear", antialias=True)
        x = small[0].round().clamp(0, 255).to(torch.uint8)
    return x.contiguous()


def grid_positions(image: Tensor, size: int, stride: int, min_std: float) -> Tensor:
    """Top-left corners [N, 2] of the size x size grid patches whose pixel std >= min_std.

    Flat patches (black borders of retina, sky of camera) teach the autoencoder nothing
    and would inflate the reconstruction score, so they are dropped.
    """
    if size > min(image.shape[1:]):
        return torch.zeros(0, 2, dtype=torch.long)
    windows = image.float().div(255).unfold(1, size, stride).unfold(2, size, stride)
    n_y, n_x = windows.shape[1:3]
    std = windows.permute(1, 2, 0, 3, 4).reshape(n_y, n_x, -1).std(dim=-1)
    ys, xs = torch.nonzero(std >= min_std, as_tuple=True)
    return torch.stack([ys * stride, xs * stride], dim=1)


def jittered(
    position: int, jitter: int, limit: int, generator: torch.Generator | None = None
) -> int:
    """A random position within +-jitter of `position`, kept inside [0, limit]."""
    low, high = max(0, position - jitter), min(limit, position + jitter) + 1
    return int(torch.randint(low, high, (), generator=generator))


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The augmentation randomness of one sample in one epoch (a resume replays it)."""
    mixed = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index) % (1 << 63)
    return torch.Generator().manual_seed(mixed)


class PatchDataset(Dataset):
    """Patches of cached source images, addressed by (source, top, left).

    Only the sources and an index tensor live in memory, so any image size costs the same.
    With `augment`, each patch moves by up to half a stride and flips horizontally at
    random, so an epoch shows new crops while staying inside the same source images. The
    randomness is drawn from (seed, epoch, index), set by the training loader through
    `set_epoch`, never from the global RNG: a resumed run sees the same crops.
    """

    def __init__(
        self,
        names: Sequence[str],
        index: Tensor,
        size: int,
        jitter: int = 0,
        flip: bool = False,
    ) -> None:
        self.names = list(names)
        self.sources = [load_source(name) for name in self.names]
        self.index = index
        self.size = size
        self.jitter = jitter
        self.flip = flip
        self.seed, self.epoch = 0, 0

    def set_epoch(self, epoch: int, seed: int = 0) -> None:
        """Which epoch's augmentation to draw (called by ``ResumableLoader``)."""
        self.seed, self.epoch = seed, epoch

    def __len__(self) -> int:
        return len(self.index)

    def source_of(self, i: int) -> str:
        """The name of the source image that patch i was cut from."""
        return self.names[int(self.index[i, 0])]

    def __getitem__(self, i: int) -> Tensor:
        src, top, left = (int(v) for v in self.index[i])
        image = self.sources[src]
        gen = sample_generator(self.seed, self.epoch, i) if self.jitter or self.flip else None
        if self.jitter:
            top = jittered(top, self.jitter, image.shape[1] - self.size, gen)
            left = jittered(left, self.jitter, image.shape[2] - self.size, gen)
        patch = image[:, top : top + self.size, left : left + self.size]
        if self.flip and torch.rand((), generator=gen) < 0.5:
            patch = patch.flip(-1)
        return patch.float().div(127.5).sub(1.0)


def build_index(names: Sequence[str], size: int, stride: int, min_std: float) -> Tensor:
    """The (source, top, left) rows of every kept grid patch of the named sources."""
    rows = []
    for src, name in enumerate(names):
        positions = grid_positions(load_source(name), size, stride, min_std)
        rows.append(torch.cat([torch.full((len(positions), 1), src), positions], dim=1))
    return torch.cat(rows) if rows else torch.zeros(0, 3, dtype=torch.long)


def patch_splits(
    image_size: int,
    augment: bool,
    stride: int | None = None,
    val_sources: Sequence[str] = DEFAULT_VAL_SOURCES,
    num_patches: int | None = None,
    min_std: float = 0.02,
    seed: int = 0,
) -> tuple[PatchDataset, PatchDataset]:
    """Train and validation patch sets; deterministic for a given set of arguments.

    `stride` defaults to image_size // 2. `num_patches` caps the training set with a
    seeded random subset (the validation set stays whole, so scores remain comparable).
    """
    stride = image_size // 2 if stride is None else stride
    require(stride >= 1, "data.stride", stride, "be >= 1")
    require(num_patches is None or num_patches >= 1, "data.num_patches", num_patches,
            "be >= 1", "null for all patches")
    unknown = sorted(set(val_sources) - set(SOURCES))
    if unknown:
        raise DataError(
            f"data.val_sources has unknown images {unknown}; choose from {list(SOURCES)}"
        )
    train_names = [name for name in SOURCES if name not in set(val_sources)]
    val_names = [name for name in SOURCES if name in set(val_sources)]
    if not train_names or not val_names:
        raise DataError(
            f"data.val_sources={list(val_sources)} leaves no "
            f"{'training' if not train_names else 'validation'} image; hold out some, not all"
        )
    train_index = build_index(train_names, image_size, stride, min_std)
    val_index = build_index(val_names, image_size, stride, min_std)
    if num_patches is not None and num_patches < len(train_index):
        generator = torch.Generator().manual_seed(seed)
        keep = torch.randperm(len(train_index), generator=generator)[:num_patches]
        train_index = train_index[keep.sort().values]
    if len(train_index) == 0 or len(val_index) == 0:
        raise DataError(
            f"no {image_size}px patch passes data.min_std={min_std}; lower it or data.image_size"
        )
    jitter = stride // 2 if augment else 0
    train = PatchDataset(train_names, train_index, image_size, jitter=jitter, flip=augment)
    return train, PatchDataset(val_names, val_index, image_size)
