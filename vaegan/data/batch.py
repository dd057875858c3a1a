"""What a batch is to the step: the images, whatever the data set yields with them."""

from __future__ import annotations

from typing import Any

from torch import Tensor


def batch_images(batch: Any) -> Tensor:
    """Images from a batch that is a tensor or an (images, labels) pair."""
    return batch[0] if isinstance(batch, (list, tuple)) else batch
