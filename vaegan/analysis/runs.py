"""Load run directories written by `vaegan-train` (or any Lightning CSVLogger run).

Works on a run from yesterday or from a cluster: only files are read (metrics.csv, the Hydra
config, run_info.json); nothing from the trainer or Lightning is imported.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vaegan.vocab import metric_names as metric
from vaegan.vocab.layout import (
    CONTROL_DIR,
    HYDRA_DIR,
    METRICS_FILE,
    RUN_INFO,
    RunDirError,
    RunLayout,
)

# RUN_DIR/control (CONTROL_DIR) is the no-GAN branch of a `gan_control=true` run: a run dir of
# its own that belongs to its parent (Run.control), not a separate run of a sweep.

# Directory names a logger puts between the run dir and metrics.csv (not runs themselves).
_LOGGER_DIRS = re.compile(r"^(csv|logs?|lightning_logs|version_\d+)$")
_KL_DIM = re.compile("^" + re.escape(metric.LATENT_KL_DIM) + r"(\d+)$")


@dataclass(frozen=True)
class Series:
    """One metric over generator steps: `x` sorted and unique, `y` finite."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.x)

    def between(self, lo: float, hi: float) -> Series:
        """Points with lo <= x <= hi."""
        keep = (self.x >= lo) & (self.x <= hi)
        return Series(self.x[keep], self.y[keep])

    @property
    def last(self) -> float:
        return float(self.y[-1])


@dataclass
class Run:
    """A parsed run directory: metric series plus whatever config the run left behind."""

    path: Path
    metrics_path: Path
    x_name: str
    series: dict[str, Series]
    config: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    control: Run | None = None  # the no-GAN branch forked at gan_start (gan_control=true)

    @property
    def name(self) -> str:
        return self.path.name

    def get(self, name: str) -> Series | None:
        """The series `name`, or None when it was never logged."""
        series = self.series.get(name)
        return series if series is not None and len(series) else None

    def cfg(self, dotted: str, default: Any = None) -> Any:
        """A value from the Hydra config by dotted key (`loss.rec_reduction`)."""
        node: Any = self.config
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node

    @property
    def x_range(self) -> tuple[float, float]:
        xs = [s.x for s in self.series.values() if len(s)]
        return (min(float(x[0]) for x in xs), max(float(x[-1]) for x in xs))

    @property
    def gan_start(self) -> float | None:
        return _as_float(self.info.get("gan_start", self.cfg("gan_start")))

    @property
    def fork_step(self) -> float | None:
        """Where the control branches off the GAN run: its `fork_step`, else `gan_start`."""
        if self.control is None:
            return None
        return _as_float(self.control.info.get("fork_step")) or self.gan_start

    @property
    def beta(self) -> float | None:
        """Final logged β, else the configured peak β."""
        logged = self.get(metric.TRAIN_BETA)
        if logged is not None:
            return logged.last
        return _as_float(self.info.get("beta", self.cfg("beta")))

    @property
    def schedule(self) -> str | None:
        sched = self.info.get("schedule", self.cfg("schedule"))
        if isinstance(sched, dict):
            sched = sched.get("kind") or sched.get("name") or sched.get("_target_")
        return None if sched is None else str(sched)

    @property
    def rec_reduction(self) -> str | None:
        """`sum` or `mean`: how the reconstruction term is reduced over pixels."""
        red = self.info.get("rec_reduction") or _first(
            self, "loss.rec_reduction", "loss.objective.rec_reduction"
        )
        return None if red is None else str(red)

    @property
    def logvar_bounds(self) -> tuple[float | None, float | None]:
        """The log σ² clamp bounds; (None, None) when the variance is not clamped."""
        if self.cfg("model.posterior.parameterization", "clamp") != "clamp":
            return (None, None)
        return (
            _as_float(self.cfg("model.posterior.logvar_min")),
            _as_float(self.cfg("model.posterior.logvar_max")),
        )

    @property
    def latent_dims(self) -> int | None:
        """Latent dims per sample: `latent/total_dims` if logged, else derived from the config."""
        logged = self.get(metric.LATENT_TOTAL_DIMS)
        if logged is not None and logged.last > 0:
            return int(logged.last)
        return _latent_dims_from_config(self)

    @property
    def pixels(self) -> int | None:
        """Values per image (C*H*W), the scale of a `sum`-reduced reconstruction term."""
        size = _first(self, "data.image_size", "data.size", "data.resolution")
        chans = _first(self, "data.channels", "data.in_channels", "model.in_channels") or 3
        if size is None:
            return None
        return int(chans) * int(size) ** 2

    def kl_dims(self) -> list[tuple[int, Series]]:
        """Per-channel KL series (`latent/kl_dim/<i>`), ordered by channel."""
        found = [
            (int(match.group(1)), series)
            for name, series in self.series.items()
            if (match := _KL_DIM.match(name)) and len(series)
        ]
        return sorted(found, key=lambda channel_series: channel_series[0])


def _as_float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _first(run: Run, *keys: str) -> Any:
    for key in keys:
        value = run.cfg(key)
        if value is not None:
            return value
    return None


def _latent_dims_from_config(run: Run) -> int | None:
    explicit = _first(run, "model.latent_dims", "model.total_latent_dims")
    if explicit is not None:
        return int(explicit)
    chans = _first(run, "model.embed_dim", "model.z_channels", "model.latent_channels")
    size = _first(run, "data.image_size", "data.size", "data.resolution")
    mult = _first(run, "model.ch_mult", "model.channel_mult")
    if chans is None or size is None or not isinstance(mult, list | tuple):
        return None
    side = int(size) // 2 ** (len(mult) - 1)
    return int(chans) * side * side


# ---------------------------------------------------------------- metrics.csv


def find_metrics(path: Path) -> Path:
    """The metrics.csv below `path` (the newest when a run was restarted into new versions)."""
    path = Path(path)
    if path.is_file() and path.name == METRICS_FILE:
        return path
    if not path.is_dir():
        raise RunDirError(f"{path}: no such run directory")
    found = sorted(
        (p for p in path.rglob(METRICS_FILE) if CONTROL_DIR not in p.relative_to(path).parts),
        key=lambda p: p.stat().st_mtime,
    )
    if not found:
        raise RunDirError(f"{path}: no {METRICS_FILE} below it (not a run directory?)")
    return found[-1]


def _float(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        return math.nan


def read_metrics(csv_path: Path) -> tuple[str, dict[str, Series]]:
    """Parse a sparse CSVLogger file into per-metric series on `gen_step` (else `step`).

    Rows that lack `gen_step` (e.g. validation rows) get it interpolated from Lightning's `step`
    using the rows that carry both. Duplicate x values are averaged. `name_step` columns (from
    `on_step=True, on_epoch=True` logging) also answer to `name`.
    """
    with open(csv_path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        cells: list[tuple[list[int], list[float]]] = [([], []) for _ in header]
        n_rows = 0
        for row in reader:  # sparse: keep only the filled cells
            for j, cell in enumerate(row[: len(header)]):
                if cell:
                    cells[j][0].append(n_rows)
                    cells[j][1].append(_float(cell))
            n_rows += 1
    columns = {}
    for name, (idx, vals) in zip(header, cells, strict=True):
        col = np.full(n_rows, math.nan)
        col[idx] = vals
        columns[name] = col
    if not n_rows:
        raise RunDirError(f"{csv_path}: metrics file has no rows")
    x_name = metric.GEN_STEP if metric.GEN_STEP in columns else "step"
    x = _x_column(columns, x_name)
    series = {
        name: _collapse(x, y)
        for name, y in columns.items()
        if name and name not in ("epoch", "step", metric.GEN_STEP)
    }
    for name in list(series):
        if name.endswith("_step") and name[:-5] not in series:
            series[name[:-5]] = series[name]
    series = {k: v for k, v in series.items() if len(v)}
    if not series:
        raise RunDirError(f"{csv_path}: metrics file has no metric values")
    return x_name, series


def _x_column(columns: dict[str, np.ndarray], x_name: str) -> np.ndarray:
    x = columns[x_name].copy()
    step = columns.get("step", np.full(len(x), math.nan))
    both = np.isfinite(x) & np.isfinite(step)
    fill = ~np.isfinite(x) & np.isfinite(step)
    if fill.any() and both.any():
        order = np.argsort(step[both])
        x[fill] = np.interp(step[fill], step[both][order], x[both][order])
    return x


def _collapse(x: np.ndarray, y: np.ndarray) -> Series:
    ok = np.isfinite(x) & np.isfinite(y)
    xs, ys = x[ok], y[ok]
    if not len(xs):
        return Series(np.empty(0), np.empty(0))
    ux, inverse = np.unique(xs, return_inverse=True)
    sums = np.bincount(inverse, weights=ys)
    counts = np.bincount(inverse)
    return Series(ux.astype(float), sums / counts)


# ---------------------------------------------------------------- run directories


def _load_yaml(path: Path) -> Any:
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(path)
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # unresolvable interpolations (e.g. ${hydra:...}) outside Hydra
        return OmegaConf.to_container(cfg, resolve=False)


def load_run(path: str | Path) -> Run:
    """Read a run directory (or a metrics.csv file) into a `Run`."""
    path = Path(path)
    if path.is_dir():
        roots = find_runs(path)
        if len(roots) > 1:
            raise RunDirError(
                f"{path}: holds {len(roots)} runs ({roots[0].name}, ...); pass one of them,"
                " or compare them with vaegan-compare"
            )
        path = roots[0]
    metrics = find_metrics(path)
    run_dir = path if path.is_dir() else _run_root(metrics)
    x_name, series = read_metrics(metrics)
    layout = RunLayout(run_dir)
    config: Any = {}
    overrides: Any = []
    if layout.hydra_config.is_file():
        config = _load_yaml(layout.hydra_config)
    if layout.hydra_overrides.is_file():
        overrides = _load_yaml(layout.hydra_overrides)
    info: Any = {}
    if layout.run_info.is_file():
        info = json.loads(layout.run_info.read_text())
    if not overrides and isinstance(info, dict):
        overrides = info.get("overrides") or []
    control = None
    if run_dir.is_dir() and (run_dir / CONTROL_DIR).is_dir():
        try:
            control = load_run(run_dir / CONTROL_DIR)
        except RunDirError:  # a control that has not logged yet: the run alone
            control = None
    return Run(
        path=run_dir,
        metrics_path=metrics,
        x_name=x_name,
        series=series,
        config=config if isinstance(config, dict) else {},
        overrides=[str(o) for o in overrides or []],
        info=info if isinstance(info, dict) else {},
        control=control,
    )


def _run_root(metrics: Path, top: Path | None = None) -> Path:
    """The run a metrics.csv belongs to: nearest ancestor (up to `top`) with Hydra files, else
    the job dir directly below `top`, else the nearest ancestor that is not a logger dir."""
    for parent in metrics.parents:
        if (parent / HYDRA_DIR).is_dir() or (parent / RUN_INFO).is_file():
            return parent
        if parent == top:
            break
    if top is not None:
        parts = metrics.relative_to(top).parts[:-1]
        return top if not parts or _LOGGER_DIRS.match(parts[0]) else top / parts[0]
    return next(parent for parent in metrics.parents if not _LOGGER_DIRS.match(parent.name))


def natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def find_runs(path: str | Path) -> list[Path]:
    """Run directories below `path`: every job of a multirun dir, or `path` itself."""
    top = Path(path)
    if not top.is_dir():
        raise RunDirError(f"{top}: no such directory")
    roots = {_run_root(m, top) for m in top.rglob(METRICS_FILE)}
    roots -= {r for r in roots if r.name == CONTROL_DIR and r.parent in roots}  # Run.control
    if not roots:
        raise RunDirError(f"{top}: no {METRICS_FILE} below it (not a run directory?)")
    return sorted(roots, key=natural_key)


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Load runs; a single multirun dir expands to all of its jobs."""
    paths = [Path(p) for p in paths]
    if len(paths) == 1:
        paths = find_runs(paths[0])
    return [load_run(p) for p in paths]


def load_runs_skipping(paths: Iterable[str | Path]) -> tuple[list[Run], list[tuple[Path, str]]]:
    """Like ``load_runs``, but a run that cannot be read is skipped, with the reason.

    One broken dir among several (a crashed job, an empty metrics.csv) used to stop a whole
    comparison. A multirun dir's jobs that never logged (failed at start) are listed too,
    with the error their ``run_info.json`` recorded.
    """
    paths = [Path(p) for p in paths]
    skipped: list[tuple[Path, str]] = []
    if len(paths) == 1 and paths[0].is_dir():
        top = paths[0]
        try:
            paths = find_runs(top)
        except RunDirError as err:
            paths, skipped = [], [(top, str(err))]
        found = {p.resolve() for p in paths}
        for job in sorted((d for d in top.iterdir() if d.is_dir()), key=natural_key):
            if (job / HYDRA_DIR).is_dir() and job.resolve() not in found and not any(
                f.is_relative_to(job.resolve()) for f in found
            ):
                skipped.append((job, _why_no_metrics(job)))
    runs = []
    for path in paths:
        try:
            runs.append(load_run(path))
        except (RunDirError, OSError, ValueError) as err:
            skipped.append((path, str(err).removeprefix(f"{path}: ")))
    return runs, skipped


def _why_no_metrics(job: Path) -> str:
    info = job / RUN_INFO
    status = json.loads(info.read_text()) if info.is_file() else {}
    if isinstance(status, dict) and status.get("status") == "failed":
        return f"failed before logging: {status.get('error', 'no error recorded')}"
    return f"no {METRICS_FILE} (never logged)"


def first_nonfinite(run: Run, name: str) -> tuple[float, int, int] | None:
    """(first x where ``name`` was logged as NaN/inf, non-finite count, logged count), or None.

    The series drop non-finite values, so a diverged KL looks like "no data"; this reads the
    raw cells again to tell the two apart.
    """
    with open(run.metrics_path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or name not in reader.fieldnames:
            return None
        first, bad, logged = math.inf, 0, 0
        for row in reader:
            cell = row.get(name) or ""
            if not cell:
                continue
            logged += 1
            if not math.isfinite(_float(cell)):
                bad += 1
                x = _float(row.get(run.x_name) or "")
                if math.isfinite(x):
                    first = min(first, x)
    return (first, bad, logged) if bad else None


def nonfinite_note(run: Run, name: str) -> str | None:
    """One sentence on a metric that went non-finite, for a report; None when it did not."""
    found = first_nonfinite(run, name)
    if found is None:
        return None
    first, bad, logged = found
    where = f"from {run.x_name} {first:g} on" if math.isfinite(first) else "(step unknown)"
    return (
        f"{name} is non-finite (NaN/inf) {where}: {bad} of {logged} logged values; the run "
        "diverged, no verdict (see docs/robustness.md: faults.max_consecutive_nonfinite)."
    )
