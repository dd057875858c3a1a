"""Read a run's ``csv/metrics.csv`` on the generator-step clock, and the names it must carry."""

from __future__ import annotations

import csv
from pathlib import Path

from vaegan.vocab import metric_names as metric

# The metric contract (docs/INTERFACES.md): every run logs these names. The names are spelled
# once, in tests/test_metric_contract.py, which checks them against these constants.
CONTRACT_TRAIN = [
    metric.TRAIN_LOSS, metric.TRAIN_REC, metric.TRAIN_PERCEPTUAL, metric.TRAIN_NLL,
    metric.TRAIN_KL, metric.TRAIN_KL_WEIGHTED, metric.TRAIN_BETA, metric.TRAIN_KL_MU,
    metric.TRAIN_KL_VAR, metric.TRAIN_G_ADV, metric.TRAIN_ADV_WEIGHT,
    metric.TRAIN_D_LOSS, metric.TRAIN_D_REAL, metric.TRAIN_D_FAKE,
]
CONTRACT_VAL = [metric.VAL_REC, metric.VAL_KL, metric.VAL_PSNR, metric.VAL_SSIM, metric.VAL_LPIPS]


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def column(rows: list[dict[str, str]], name: str) -> dict[int, float]:
    """gen_step -> value for the rows that carry ``name``."""
    return {
        int(float(r["gen_step"])): float(r[name]) for r in rows if r.get(name) not in (None, "")
    }
