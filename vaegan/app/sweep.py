"""Hydra multirun sweeps that survive a failing job and end with a summary over the swept values.

Hydra 1.3 runs every job of a batch even when one raises, but then re-raises the first failure
at the end of the batch: ``on_multirun_end`` never runs (no summary), the other failures are
not reported, and with ``hydra.sweeper.max_batch_size`` set the later batches never start.
So in a multirun ``record_job`` catches a job's exception, logs it with the run dir, and marks
the run ``failed`` in ``run_info.json`` (plus a ``FAILED`` file with the traceback). The
``SweepSummary`` callback (conf/hydra/default.yaml) then tables every job, writes
``SWEEP_DIR/summary.md`` and exits non-zero when any job failed. A single run still raises.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from vaegan.vocab.layout import FAILED, RUN_INFO
from vaegan.vocab.metric_names import GEN_STEP, TRAIN_KL, VAL_REC

log = logging.getLogger("vaegan.app.sweep")

SUMMARY = "summary.md"
METRICS = (TRAIN_KL, VAL_REC)  # the summary's columns


def _rank() -> int:
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0))


def _hydra_job() -> tuple[Path, bool] | None:
    """(run dir, in a multirun) of the current Hydra job; None outside one."""
    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    output_dir = OmegaConf.select(hc, "runtime.output_dir")
    if output_dir is None:
        return None
    return Path(output_dir), hc.mode == RunMode.MULTIRUN


def mark_run(run_dir: Path, status: str, error: str | None = None, keep: bool = False) -> None:
    """Merge ``status`` (and ``error``) into RUN_DIR/run_info.json; ``keep``: unless the run
    already set one (``requeued``, ``stopped``: RequeueOnSignal)."""
    path = run_dir / RUN_INFO
    info = json.loads(path.read_text()) if path.is_file() else {}
    if keep and "status" in info:
        return
    info["status"] = status
    if error is not None:
        info["error"] = error
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2))
    tmp.replace(path)


def record_job(main: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Wrap a Hydra task: status into run_info.json; in a multirun a failure is recorded, not
    raised (the task returns None, which a sweeper such as Optuna counts as a failed trial)."""

    @functools.wraps(main)
    def wrapper(cfg: DictConfig) -> Any:
        job = _hydra_job()
        if job is None or _rank() != 0:
            return main(cfg)
        run_dir, multirun = job
        try:
            result = main(cfg)
        except Exception as err:
            from vaegan.app.errors import printable  # a file name may not be UTF-8

            error = printable(f"{type(err).__name__}: {err}".splitlines()[0])
            mark_run(run_dir, "failed", error)
            (run_dir / FAILED).write_text(printable(traceback.format_exc()))
            if not multirun:
                raise
            log.exception("job failed: %s (run dir %s)", error, run_dir)
            return None
        mark_run(run_dir, "completed", keep=True)
        return result

    return wrapper


# ----------------------------------------------------------------------------- summary


def _job_overrides(job_dir: Path) -> list[str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    return [str(o) for o in OmegaConf.load(path)] if path.is_file() else []


def _last_values(job_dir: Path) -> dict[str, float | None]:
    from vaegan.analysis.runs import RunDirError, load_run

    try:
        run = load_run(job_dir)
    except (RunDirError, OSError):
        return dict.fromkeys((GEN_STEP, *METRICS))
    values: dict[str, float | None] = {
        name: (s.last if (s := run.get(name)) is not None else None) for name in METRICS
    }
    values["gen_step"] = run.x_range[1]
    return values


def sweep_jobs(sweep_dir: Path, since: float = 0.0) -> list[Path]:
    """The job dirs of a sweep (those with Hydra output written at or after ``since``)."""
    from vaegan.analysis.runs import natural_key

    def written(job: Path) -> float:  # files, not the dir: a rerun overwrites them in place
        return max((p.stat().st_mtime for p in (job / ".hydra").iterdir()), default=0.0)

    jobs = [d for d in sweep_dir.iterdir() if (d / ".hydra").is_dir() and written(d) >= since]
    return sorted(jobs, key=natural_key)


def summarize(sweep_dir: Path, since: float = 0.0) -> tuple[str, int]:
    """The markdown summary of a sweep dir and its number of failed jobs."""
    from vaegan.analysis.compare import parse_overrides
    from vaegan.analysis.diagnose import fmt
    from vaegan.analysis.report import md_table

    jobs = sweep_jobs(sweep_dir, since)
    swept = [parse_overrides(_job_overrides(j)) for j in jobs]
    keys = list(dict.fromkeys(k for s in swept for k in s))
    keys = [k for k in keys if len({s.get(k) for s in swept}) > 1] or keys
    rows, failed = [], 0
    for job, values in zip(jobs, swept, strict=True):
        info_path = job / RUN_INFO
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        status = str(info.get("status", "unknown"))
        failed += status not in ("completed", "requeued")
        last = _last_values(job)
        rows.append(
            [job.name, *(values.get(k, "") for k in keys), status]
            + [fmt(last[n]) for n in (GEN_STEP, *METRICS)]
            + [info.get("error", "") or f"`{job}`"]
        )
    header = [
        "job", *keys, "status", "gen_step", "final train/kl", "final val/rec", "run dir or error"
    ]
    text = (
        f"# Sweep {sweep_dir}\n\n{len(jobs)} jobs, {failed} failed.\n\n"
        + md_table(header, rows)
        + "\n"
    )
    return text, failed


class SweepSummary(Callback):
    """After a multirun: print the summary table, write SWEEP_DIR/summary.md, and exit 1 when
    a job failed (Hydra itself would exit 0, as ``record_job`` caught the failure)."""

    def __init__(self, fail_exit_code: int = 1) -> None:
        self.fail_exit_code = fail_exit_code
        self._started = 0.0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._started = time.time() - 1.0  # file-system timestamps are coarse

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        text, failed = summarize(sweep_dir, self._started)
        (sweep_dir / SUMMARY).write_text(text)
        print(text + f"\nsweep summary: {sweep_dir / SUMMARY}", flush=True)
        if failed and self.fail_exit_code:
            # SystemExit passes Hydra's callback guard (it catches Exception only).
            sys.exit(self.fail_exit_code)
