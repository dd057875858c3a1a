"""Read a run's ``csv/metrics.csv`` on the generator-step clock, and the names it must carry."""

from __future__ import annotations

import csv
from pathlib import Path

# The metric contract (docs/INTERFACES.md): every run logs these names.
CONTRACT_TRAIN = [
    "train/loss", "train/rec", "train/perceptual", "train/nll", "train/kl", "train/kl_weighted",
    "train/beta", "train/kl_mu", "train/kl_var", "train/g_adv", "train/adv_weight",
    "train/d_loss", "train/d_real", "train/d_fake",
]
CONTRACT_VAL = ["val/rec", "val/kl", "val/psnr", "val/ssim", "val/lpips"]


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def column(rows: list[dict[str, str]], name: str) -> dict[int, float]:
    """gen_step -> value for the rows that carry ``name``."""
    return {
        int(float(r["gen_step"])): float(r[name]) for r in rows if r.get(name) not in (None, "")
    }
