"""Run dirs with known KL behaviour, written without training, for the analysis tests.

A run is ``N`` generator steps logged every ``EVERY`` steps (``T``), validated every 200
(``VAL_T``), with the GAN switched on at ``GS``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import yaml

N, EVERY, GS = 2000, 10, 1000
T = np.arange(0, N + 1, EVERY, dtype=float)
VAL_T = np.arange(200, N + 1, 200, dtype=float)
RNG = np.random.default_rng(0)


def noisy(y: np.ndarray, rel: float = 0.01) -> np.ndarray:
    return y * (1 + rel * RNG.standard_normal(len(y)))


def const(v: float) -> np.ndarray:
    return np.full(len(T), v)


def val_of(y_of_t: np.ndarray) -> np.ndarray:
    return np.interp(VAL_T, T, y_of_t)


def make_run(
    root: Path,
    train: dict[str, np.ndarray],
    val: dict[str, np.ndarray] | None = None,
    config: dict | None = None,
    overrides: list[str] | None = None,
    t: np.ndarray = T,
    val_has_gen_step: bool = True,
) -> Path:
    """A run dir in the trainer's layout: sparse csv/metrics.csv (Lightning's `step` = 2 x
    gen_step, val rows interleaved with empty train cells) and .hydra/{config,overrides}.yaml."""
    val = val or {}
    cols = ["epoch", "gen_step", "step", *train, *val]
    rows = [
        {
            "epoch": 0,
            "gen_step": int(s),
            "step": int(2 * s),
            **{k: f"{v[i]:.8g}" for k, v in train.items()},
        }
        for i, s in enumerate(t)
    ]
    for j, s in enumerate(VAL_T[VAL_T <= t[-1]]):
        row = {"epoch": 0, "step": int(2 * s), **{k: f"{v[j]:.8g}" for k, v in val.items()}}
        if val_has_gen_step:
            row["gen_step"] = int(s)
        rows.append(row)
    rows.sort(key=lambda r: r["step"])
    (root / "csv").mkdir(parents=True)
    with open(root / "csv" / "metrics.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols)
        writer.writeheader()
        writer.writerows(rows)
    cfg = {
        "beta": 1e-4,
        "gan_start": GS,
        "seed": 0,
        "loss": {"rec_reduction": "mean"},
        "model": {"posterior": {"logvar_min": -30.0, "logvar_max": 20.0}},
        "data": {"image_size": 64, "channels": 3},
    }
    for key, value in (config or {}).items():
        node = cfg
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    (root / ".hydra").mkdir()
    (root / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (root / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides or []))
    return root
