"""Data sets and the DataModule: shapes, ranges, splits, and the errors users will meet."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from tests.helpers.run import compose_config
from vaegan.data import DataError, ImageDataModule, cifar10_splits, folder_splits, patch_splits
from vaegan.data.folder import ImageFolder, find_images, split_files
from vaegan.data.patches import DEFAULT_VAL_SOURCES, PatchDataset, load_source

SIZE = 32


def stack(dataset) -> torch.Tensor:
    return torch.stack([dataset[i] for i in range(len(dataset))])


def assert_images(x: torch.Tensor, size: int = SIZE, varied: bool = True) -> None:
    assert x.dtype == torch.float32
    assert x.shape[-3:] == (3, size, size)
    assert x.min() >= -1.0 and x.max() <= 1.0
    if varied:
        assert x.std() > 0.01  # not a constant (e.g. all-black) image


# --- embedded patches -------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_patches():
    return patch_splits(SIZE, augment=False)


def test_patches_shapes_range_and_counts(plain_patches):
    train, val = plain_patches
    assert len(train) > 1000 and len(val) > 100
    assert_images(stack(train))
    assert_images(stack(val))


def test_patches_are_the_source_pixels(plain_patches):
    val = plain_patches[1]
    i = len(val) - 1
    _, top, left = (int(v) for v in val.index[i])
    photo = getattr(skimage.data, val.source_of(i))()  # both held-out sources are <= 512 px
    crop = photo[top : top + SIZE, left : left + SIZE]
    expected = torch.from_numpy(np.ascontiguousarray(crop)).float().div(127.5).sub(1)
    if expected.ndim == 2:
        expected = expected.expand(3, -1, -1)
    else:
        expected = expected.permute(2, 0, 1)
    assert torch.equal(val[i], expected)


def test_patches_are_deterministic_across_builds(plain_patches):
    load_source.cache_clear()  # rebuild from the files, not from the cached tensors
    train, val = patch_splits(SIZE, augment=False)
    assert torch.equal(train.index, plain_patches[0].index)
    assert torch.equal(stack(val), stack(plain_patches[1]))


def test_no_val_source_contributes_to_train(plain_patches):
    train, val = plain_patches
    assert {train.source_of(i) for i in range(len(train))}.isdisjoint(DEFAULT_VAL_SOURCES)
    assert {val.source_of(i) for i in range(len(val))} == set(DEFAULT_VAL_SOURCES)
    train_pixels = {p.numpy().tobytes() for p in stack(train)}
    assert not any(p.numpy().tobytes() in train_pixels for p in stack(val))


def test_patch_augmentation_is_on_in_train_only(plain_patches):
    train, val = patch_splits(SIZE, augment=True)
    assert train.flip and train.jitter > 0 and not val.flip and val.jitter == 0
    grid = plain_patches[0][5]

    def per_epoch(dataset: PatchDataset) -> list[torch.Tensor]:
        """Patch 5 in 16 epochs: augmentation is drawn from (seed, epoch, index)."""
        return [dataset.set_epoch(epoch, seed=1) or dataset[5] for epoch in range(16)]

    flips = PatchDataset(train.names, train.index, SIZE, flip=True)
    draws = per_epoch(flips)
    assert {torch.equal(d, grid) for d in draws} == {True, False}
    assert all(torch.equal(d, grid) or torch.equal(d, grid.flip(-1)) for d in draws)
    shifts = PatchDataset(train.names, train.index, SIZE, jitter=train.jitter)
    draws = torch.stack(per_epoch(shifts))
    assert_images(draws)
    assert sum(not torch.equal(d, grid) for d in draws) > 8
    # the same (seed, epoch, index) gives the same patch, whatever the global RNG did
    torch.manual_seed(123)
    assert torch.equal(torch.stack(per_epoch(shifts)), draws)


def test_patch_cap_and_settings_checks():
    train, _ = patch_splits(SIZE, augment=False, num_patches=100, seed=3)
    assert len(train) == 100
    again, _ = patch_splits(SIZE, augment=False, num_patches=100, seed=3)
    assert torch.equal(train.index, again.index)
    with pytest.raises(DataError, match="nosuchimage"):
        patch_splits(SIZE, augment=False, val_sources=["nosuchimage"])


# --- folder -------------------------------------------------------------------------------


def make_images(root: Path) -> dict[str, Path]:
    """Mixed modes and sizes, one smaller than the crop, one nested, one upper-case suffix."""
    rng = np.random.default_rng(0)

    def noise(h: int, w: int, c: int) -> np.ndarray:
        return rng.integers(0, 256, (h, w, c), dtype=np.uint8).squeeze()

    (root / "nested" / "deeper").mkdir(parents=True)
    images = {
        "rgb.jpg": Image.fromarray(noise(60, 80, 3), "RGB"),
        "rgba.png": Image.fromarray(noise(64, 64, 4), "RGBA"),
        "gray.bmp": Image.fromarray(noise(70, 50, 1), "L"),
        "palette.png": Image.fromarray(noise(40, 100, 3), "RGB").convert("P"),
        "tiny.webp": Image.fromarray(noise(12, 10, 3), "RGB"),
        "nested/deeper/upper.PNG": Image.fromarray(noise(48, 48, 3), "RGB"),
        "transparent.tiff": Image.new("RGBA", (40, 40), (0, 0, 0, 0)),
    }
    paths = {}
    for name, image in images.items():
        image.save(root / name)
        paths[name] = root / name
    (root / "notes.txt").write_text("not an image")
    return paths


def test_folder_loads_every_mode_as_rgb(tmp_path):
    paths = make_images(tmp_path)
    found = find_images(tmp_path)
    assert sorted(found) == sorted(paths.values())
    train, val = folder_splits(SIZE, augment=True, root=tmp_path, val_fraction=0.3)
    assert len(train) + len(val) == len(paths)
    assert set(train.files).isdisjoint(val.files)
    for dataset in (train, val):
        for path, image in zip(dataset.files, stack(dataset), strict=True):
            assert_images(image, varied=path.stem != "transparent")
    white = ImageFolder([paths["transparent.tiff"]], SIZE)[0]
    assert torch.equal(white, torch.ones_like(white))  # composited onto white, not black


def test_small_images_are_upscaled_not_padded(tmp_path):
    Image.new("RGB", (10, 12), (255, 0, 0)).save(tmp_path / "tiny.png")
    image = ImageFolder([tmp_path / "tiny.png"], SIZE)[0]
    expected = torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1).expand_as(image)
    assert torch.allclose(image, expected)


def test_folder_split_is_stable_when_files_are_added(tmp_path):
    files = [tmp_path / f"{i:03d}.png" for i in range(200)]
    train, val = split_files(files, tmp_path, 0.1, seed=0)
    assert len(val) == 20 and set(train) | set(val) == set(files)
    assert split_files(files, tmp_path, 0.1, seed=0) == (train, val)
    _, val_more = split_files(files + [tmp_path / "new.png"], tmp_path, 0.1, seed=0)
    assert len(set(val) - set(val_more)) <= 1
    assert split_files(files, tmp_path, 0.1, seed=1)[1] != val


@pytest.mark.parametrize("case", ["missing", "empty", "unsupported"])
def test_folder_without_images_raises_naming_the_path(tmp_path, case):
    root = tmp_path / "images"
    if case != "missing":
        root.mkdir()
    if case == "unsupported":
        (root / "notes.txt").write_text("x")
        Image.new("RGB", (8, 8)).save(root / "anim.gif")
    with pytest.raises(DataError, match=re.escape(str(root))) as info:
        folder_splits(SIZE, False, root)
    if case != "missing":
        assert ".png" in str(info.value) and ".webp" in str(info.value)


def test_corrupt_image_raises_or_is_skipped(tmp_path):
    make_images(tmp_path)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(np.random.default_rng(1).bytes(500))
    files = find_images(tmp_path)
    with pytest.raises(DataError, match="corrupt.png"):
        stack(ImageFolder(files, SIZE, on_bad_image="raise"))

    lenient = ImageFolder(files, SIZE, on_bad_image="skip")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert_images(torch.stack([lenient[i] for i in range(len(files)) for _ in range(2)]))
    assert lenient.skipped_files == {corrupt}
    assert sum("corrupt.png" in str(w.message) for w in caught) == 1


# --- torchvision sets ---------------------------------------------------------------------


def test_cifar10_missing_files_raise_a_data_error(tmp_path):
    with pytest.raises(DataError, match="download") as info:
        cifar10_splits(SIZE, False, tmp_path, download=False)
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


# --- DataModule ---------------------------------------------------------------------------


def test_datamodule_patches_batches():
    dm = ImageDataModule(batch_size=16)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert_images(batch)
    assert batch.shape[0] == 16
    assert len(dm.train_dataloader()) == len(dm.train_set) // 16  # drop_last
    first = next(iter(dm.val_dataloader()))
    assert torch.equal(first, next(iter(dm.val_dataloader())))  # not shuffled
    fixed = dm.val_batch(8)
    assert fixed.shape == (8, 3, SIZE, SIZE) and torch.equal(fixed, dm.val_batch(8))


def test_datamodule_folder_batches(tmp_path):
    make_images(tmp_path)
    dm = ImageDataModule(
        "folder", image_size=24, batch_size=3, root=str(tmp_path), val_fraction=0.3
    )
    batch = next(iter(dm.train_dataloader()))
    assert_images(batch, size=24)
    assert batch.shape[0] == 3
    assert dm.val_batch(100).shape[0] == len(dm.val_set)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"image_size": 30}, "image_size"),
        ({"image_size": 0}, "image_size"),
        ({"image_size": -8}, "image_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"num_workers": -1}, "num_workers"),
        ({"dataset": "imagenet"}, "dataset"),
        ({"root": "/data"}, "root"),
        ({"dataset": "folder"}, "root"),
    ],
)
def test_datamodule_rejects_bad_settings_naming_the_key(kwargs, key):
    with pytest.raises(ValueError, match=f"data.{key}"):
        ImageDataModule(**kwargs)


# --- checks before training (issue 17) ---------------------------------------------------------


def test_bad_files_are_all_named_before_training_or_skipped_and_counted(tmp_path, monkeypatch):
    """A truncated JPEG and a decompression bomb used to fail mid-epoch, one at a time, after
    a DataLoader worker traceback; a macOS ``._`` file is not an image at all."""
    make_images(tmp_path)
    whole = (tmp_path / "rgb.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "._rgb.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble resource fork")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6000)  # the test images are below it
    Image.new("RGB", (200, 200)).save(tmp_path / "bomb.png")
    with pytest.raises(DataError) as info:
        folder_splits(SIZE, False, tmp_path)
    message = str(info.value)
    assert message.startswith("2 unreadable images: ") and "\n" not in message
    assert "cut.jpg (truncated" in message and "bomb.png (decompression bomb" in message
    assert "._rgb.png" not in message and message.endswith("or set data.on_bad_image=skip")

    with pytest.warns(UserWarning, match="skipping 2 unreadable images"):
        train, val = folder_splits(SIZE, False, tmp_path, on_bad_image="skip")
    names = {p.name for p in [*train.files, *val.files]}
    assert names.isdisjoint({"cut.jpg", "bomb.png", "._rgb.png"}) and len(names) == 7
    assert {p.name for p in train.skipped_files} == {"cut.jpg", "bomb.png"}


def test_directory_symlinks_are_followed_once(tmp_path):
    real = tmp_path / "real"
    make_images(real)
    (real / "nested" / "loop").symlink_to(real, target_is_directory=True)  # no endless walk
    root = tmp_path / "root"
    root.mkdir()
    (root / "linked").symlink_to(real, target_is_directory=True)
    found = find_images(root)
    assert len(found) == 7 and all(p.is_relative_to(root / "linked") for p in found)


def test_small_folder_keeps_enough_validation_images_and_too_few_give_nan_not_zero():
    """With 20 images the default split kept 1 validation image: variance NaN, 0 active
    units, and a "posterior collapse" verdict."""
    from vaegan.callbacks.latent import unit_activity
    from vaegan.models.autoencoder import AutoencoderKL

    files = [Path(f"/d/{i:02d}.png") for i in range(20)]
    assert len(split_files(files, Path("/d"), 0.05, seed=0)[1]) == 5
    assert len(split_files(files * 10, Path("/d"), 0.05, seed=0)[1]) == 10
    model = AutoencoderKL(ch=8, ch_mult=(1, 2), embed_dim=4, resolution=SIZE)
    few = unit_activity(model, torch.randn(1, 3, SIZE, SIZE), 8, 0.01)
    assert all(torch.isnan(v) for v in few.values()), few
    enough = unit_activity(model, torch.randn(8, 3, SIZE, SIZE), 8, 0.01)
    assert all(torch.isfinite(v) for v in enough.values()), enough


@pytest.mark.parametrize("debug", ["tiny", "fdr"])
@pytest.mark.parametrize("data", ["patches", "folder", "cifar10", "celeba"])
def test_debug_presets_compose_with_every_data_set(tmp_path, debug, data):
    """``debug=tiny data=folder`` was refused: tiny set data.num_patches for every data set."""
    from hydra.utils import instantiate

    root = [f"data.root={tmp_path}"] if data != "patches" else []
    cfg = compose_config(tmp_path, f"data={data}", *root, debug=debug)
    module = instantiate(cfg.data, _convert_="all")  # checks the settings, loads nothing
    assert module.batch_size == 8
