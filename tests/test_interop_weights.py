"""LPIPS backbone weights: fetched into the torch hub cache when the network allows, checked
against the SHA-256 prefix in torchvision's file name either way. The "network" here is a
``file://`` URL, so the test runs offline."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from vaegan.losses import perceptual
from vaegan.losses.perceptual import PretrainedWeightsMissing, ensure_backbone


@pytest.fixture
def published(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A stand-in "alex" checkpoint published at a file:// URL under its hash-carrying name."""
    blob = tmp_path / "server" / "weights.bin"
    blob.parent.mkdir()
    blob.write_bytes(b"backbone weights" * 1000)
    name = f"alexnet-owt-{hashlib.sha256(blob.read_bytes()).hexdigest()[:8]}.pth"
    monkeypatch.setitem(perceptual.BACKBONE_FILES, "alex", name)
    monkeypatch.setitem(perceptual.BACKBONE_URLS, "alex", blob.as_uri())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return blob, tmp_path / "torch_home" / "hub" / "checkpoints" / name


def test_missing_weights_are_fetched_into_the_cache_and_verified(published) -> None:
    blob, cached = published
    assert ensure_backbone("alex") == cached
    assert cached.read_bytes() == blob.read_bytes()
    assert not list(cached.parent.glob(".*.tmp"))


def test_a_cached_file_with_another_hash_is_refused(published) -> None:
    _, cached = published
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"tampered")
    with pytest.raises(PretrainedWeightsMissing, match="is not torchvision's .* delete it"):
        ensure_backbone("alex")


def test_offline_keeps_the_message_saying_where_to_put_the_file(published, monkeypatch) -> None:
    _, cached = published
    monkeypatch.setitem(perceptual.BACKBONE_URLS, "alex", (cached.parent / "gone").as_uri())
    with pytest.raises(PretrainedWeightsMissing) as err:
        ensure_backbone("alex")
    message = str(err.value)
    assert message.startswith(f"LPIPS alex backbone weights not found at {cached} (fetching")
    assert "loss.objective.perceptual.pretrained=false" in message and "\n" not in message
    with pytest.raises(PretrainedWeightsMissing, match=r"not found at \S+\. Download"):
        ensure_backbone("alex", download=False)  # no attempt, no "fetching it failed"
