"""Any folder of images (searched recursively) as a train/validation pair of data sets."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from vaegan.data.errors import DataError
from vaegan.vocab.checks import choice, require

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
BAD_IMAGE_POLICIES = ("raise", "skip")
MIN_VAL_IMAGES = 8  # the validation split's floor (see split_files)


def image_transform(image_size: int, augment: bool) -> Callable[[Image.Image], Tensor]:
    """PIL RGB image -> float [3, image_size, image_size] in [-1, 1].

    The shorter side is resized to image_size, so images smaller than the crop are
    *upscaled* (blurry, but every file yields a full-size sample). Resizing happens on the
    PIL image so that resampling overshoot is clipped to the uint8 range. Training crops at
    random and flips when `augment`; validation always takes the centre crop.
    """
    crop = v2.RandomCrop(image_size) if augment else v2.CenterCrop(image_size)
    steps = [v2.Resize(image_size, antialias=True), crop]
    if augment:
        steps.append(v2.RandomHorizontalFlip())
    steps += [
        v2.PILToTensor(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=[0.5] * 3, std=[0.5] * 3),
    ]
    return v2.Compose(steps)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode as RGB; transparency is composited onto white.

    Transparent pixels may hold arbitrary colour values, so dropping the alpha channel
    would show garbage; white is what an image viewer displays.
    """
    if image.mode == "RGB":
        return image
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def load_rgb(path: Path) -> Image.Image:
    """Decode one file fully (so truncation shows up here, not later) as RGB."""
    with Image.open(path) as image:
        image.load()
        return to_rgb(image)


def _walk_files(root: Path) -> list[Path]:
    """Every file below ``root``, following directory symlinks (each real dir once, so a link
    back up the tree does not loop)."""
    files, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        files += [Path(dirpath) / name for name in filenames]
    return sorted(p for p in files if p.is_file())


def is_metadata_file(path: Path) -> bool:
    """macOS AppleDouble ``._name.png`` files (resource forks copied to other file systems):
    never images, whatever their extension."""
    return path.name.startswith("._")


def find_images(root: str | Path) -> list[Path]:
    """All files below root with a supported extension, sorted; DataError if there are none.

    Directory symlinks are followed; macOS ``._*`` metadata files are left out.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"image folder {root} does not exist; set data.root to a folder of images")
    if not root.is_dir():
        raise DataError(f"data.root={root} is a file, not a folder; point it to a folder of images")
    files = _walk_files(root)
    images = [
        p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS and not is_metadata_file(p)
    ]
    if not images:
        raise DataError(
            f"no images in {root} ({len(files)} other files; looked recursively, following "
            f"directory symlinks, for {' '.join(IMAGE_EXTENSIONS)}); add images or point "
            "data.root elsewhere"
        )
    return images


# PNG ends with its IEND chunk: a truncated copy or download loses it, and the header alone
# does not show that. JPEG has no such reliable tail (trailing metadata is common), so it is
# decoded at 1/8 scale instead (``Image.draft``: fast, and truncation still fails).
_PNG_END = b"IEND\xaeB`\x82"


def check_image_file(path: Path) -> str | None:
    """Why ``path`` cannot be trained on (header, size, truncated data), or None.

    Reads the header, and the tail (PNG) or a reduced decode (JPEG): fast enough to run over a
    whole folder before training, so a bad file is reported then, not by a DataLoader worker
    mid-epoch.
    """
    suffix = path.suffix.lower()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if suffix in (".jpg", ".jpeg"):
                    image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                    image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return (f"decompression bomb: more than {Image.MAX_IMAGE_PIXELS} pixels "
                "(PIL.Image.MAX_IMAGE_PIXELS)")
    except (OSError, ValueError, SyntaxError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        return f"truncated: {reason}" if "truncated" in reason else reason
    if width < 1 or height < 1:
        return f"empty image ({width}x{height})"
    if suffix == ".png":
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 64))
            if _PNG_END not in f.read():
                return "truncated: the file ends before its IEND chunk"
    return None


def check_images(files: Sequence[Path], workers: int = 16) -> list[tuple[Path, str]]:
    """(file, reason) for every bad file, checked in parallel threads (I/O bound)."""
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(files)))) as pool:
        reasons = list(pool.map(check_image_file, files))
    return [(f, why) for f, why in zip(files, reasons, strict=True) if why is not None]


def bad_files_message(bad: Sequence[tuple[Path, str]], shown: int = 10) -> str:
    listed = "; ".join(f"{path} ({why})" for path, why in bad[:shown])
    more = f"; and {len(bad) - shown} more" if len(bad) > shown else ""
    return f"{len(bad)} unreadable images: {listed}{more}"


def split_files(
    files: Sequence[Path], root: Path, val_fraction: float, seed: int
) -> tuple[list[Path], list[Path]]:
    """Deterministic train/val split by file.

    Files are ordered by a seeded hash of their path relative to root, and the first
    ones go to validation: ``val_fraction`` of them, at least ``MIN_VAL_IMAGES`` (a quarter
    of a folder smaller than 32). Adding or removing files therefore moves at most a few others
    across the split, so runs on a growing folder stay comparable.
    """
    require(0 < val_fraction < 1, "data.val_fraction", val_fraction, "be in (0, 1)")
    if len(files) < 2:
        raise DataError(f"{root} holds {len(files)} image; a train/val split needs at least 2")

    def key(path: Path) -> str:
        return hashlib.sha1(f"{seed}:{path.relative_to(root).as_posix()}".encode()).hexdigest()

    ordered = sorted(files, key=key)
    # at least MIN_VAL_IMAGES (or a quarter of a small folder): one image gives validation
    # statistics such as active units nothing to vary over
    floor = max(1, min(MIN_VAL_IMAGES, len(files) // 4))
    n_val = min(len(files) - 1, max(floor, round(len(files) * val_fraction)))
    return sorted(ordered[n_val:]), sorted(ordered[:n_val])


class ImageFolder(Dataset):
    """Images from a list of files, decoded on access.

    With on_bad_image="skip", an unreadable file is replaced by the next readable one and
    recorded in `skipped_files` (its length is the count), warning once per file. With
    DataLoader workers, each worker process keeps its own record.
    """

    def __init__(
        self,
        files: Sequence[Path],
        image_size: int,
        augment: bool = False,
        on_bad_image: str = "raise",
    ) -> None:
        choice("data.on_bad_image", on_bad_image, BAD_IMAGE_POLICIES)
        self.files = list(files)
        self.transform = image_transform(image_size, augment)
        self.on_bad_image = on_bad_image
        self.skipped_files: set[Path] = set()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Tensor:
        for k in range(len(self.files)):
            path = self.files[(i + k) % len(self.files)]
            if path in self.skipped_files:
                continue
            try:
                image = load_rgb(path)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
                self._bad(path, err)
                continue
            return self.transform(image)
        raise DataError(f"none of the {len(self.files)} images could be read; see warnings above")

    def _bad(self, path: Path, err: Exception) -> None:
        """Raise for an unreadable file, or record it and warn once when skipping."""
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if self.on_bad_image == "raise":
            raise DataError(
                f"cannot read image {path} ({reason}); fix or delete it, "
                "or set data.on_bad_image=skip"
            ) from err
        self.skipped_files.add(path)
        warnings.warn(f"skipping unreadable image {path} ({reason})", stacklevel=3)


def folder_splits(
    image_size: int,
    augment: bool,
    root: str | Path,
    val_fraction: float = 0.05,
    on_bad_image: str = "raise",
    seed: int = 0,
    check_files: bool = True,
) -> tuple[ImageFolder, ImageFolder]:
    """Train and validation sets from every image below root (see `split_files`).

    ``check_files``: every file's header, size and tail are checked once, before training
    (``check_images``); with ``on_bad_image=raise`` all bad files are named in one error,
    with ``skip`` they are left out of both splits and counted as skipped.
    """
    require(on_bad_image in BAD_IMAGE_POLICIES, "data.on_bad_image", on_bad_image,
            "say what to do with an unreadable image", BAD_IMAGE_POLICIES)
    root = Path(root).expanduser()
    files = find_images(root)
    bad = check_images(files) if check_files else []
    if bad and on_bad_image == "raise":
        raise DataError(
            f"{bad_files_message(bad)}; fix or delete them, or set data.on_bad_image=skip"
        )
    if bad:
        warnings.warn(f"skipping {bad_files_message(bad)}", stacklevel=2)
        files = [f for f in files if f not in {path for path, _ in bad}]
    train_files, val_files = split_files(files, root, val_fraction, seed)
    train = ImageFolder(train_files, image_size, augment=augment, on_bad_image=on_bad_image)
    train.skipped_files.update(path for path, _ in bad)  # counted at the end of the run
    return train, ImageFolder(val_files, image_size, augment=False, on_bad_image=on_bad_image)
