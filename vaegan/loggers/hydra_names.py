"""Names for a run taken from the Hydra job: its sweep (a wandb group) and the overrides that
vary across that sweep (a wandb run name such as ``beta=1e-4 gan_start=2000``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import OmegaConf

from vaegan.vocab.redact import redact_overrides


def _hydra() -> Any | None:
    return HydraConfig.get() if HydraConfig.initialized() else None


def _sweep_dir(hc: Any) -> Path | None:
    if hc is None or hc.mode != RunMode.MULTIRUN:
        return None
    try:
        return Path(str(hc.sweep.dir))
    except Exception:  # an unresolvable sweep dir: no group rather than no run
        return None


def sweep_group() -> str | None:
    """``<parent>-<sweep dir>`` (e.g. ``quickstart-2025-01-31_12-00-00``) in a multirun job."""
    sweep = _sweep_dir(_hydra())
    return None if sweep is None else f"{sweep.parent.name}-{sweep.name}"


def swept_keys(sweep_dir: Path) -> set[str] | None:
    """Keys the sweep varies, from the ``multirun.yaml`` Hydra's sweeper writes before the jobs
    (``beta=1e-6,1e-4`` style overrides and ``hydra.sweeper.params``); None if unknown."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return None
    cfg = OmegaConf.load(path)
    task = OmegaConf.select(cfg, "hydra.overrides.task", throw_on_resolution_failure=False)
    overrides = OmegaConf.to_container(task, resolve=False) if task is not None else []
    keys = {
        o.key_or_group
        for o in OverridesParser.create().parse_overrides([str(s) for s in overrides])
        if o.is_sweep_override()
    }
    params = OmegaConf.select(cfg, "hydra.sweeper.params", throw_on_resolution_failure=False)
    keys.update(str(k) for k in (params or {}))
    return keys


def run_label(fallback: str | None = None) -> str | None:
    """This job's overrides that vary across its sweep (all of them for a single run, or when
    the sweep is unknown), space-separated; ``fallback`` when there are none."""
    hc = _hydra()
    if hc is None:
        return fallback
    overrides = redact_overrides([str(o) for o in hc.overrides.task])  # no tokens in names
    sweep = _sweep_dir(hc)
    keys = swept_keys(sweep) if sweep is not None else None
    if keys is not None:
        parsed = OverridesParser.create().parse_overrides(overrides)
        overrides = [s for s, o in zip(overrides, parsed, strict=True) if o.key_or_group in keys]
    return " ".join(overrides) or fallback
