"""The log of a scale's invocations (``out_dir/invocations.json``): what each trained, and
its clock, so a report judged after several invocations (the `long` scale's parts) still says
how long each one took and under what load."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vaegan.study.config import Study
from vaegan.study.plan import makespan, plan
from vaegan.study.provenance import Clock, code_commit
from vaegan.study.runner import JobResult

LOG_FILE = "invocations.json"


def load(out_dir: Path) -> list[dict[str, Any]]:
    path = out_dir / LOG_FILE
    return json.loads(path.read_text()) if path.is_file() else []


def record(study: Study, results: Sequence[JobResult], clock: Clock) -> dict[str, Any]:
    """Append this invocation to the log (only when it trained something: a re-judge that
    kept every run is not an invocation of the study's training)."""
    trained = [result for result in results if not result.cached]
    entry = {
        "part": study.part, "started": f"{clock.start:%Y-%m-%d %H:%M:%S}",
        "ended": f"{clock.end:%H:%M:%S}" if clock.end else None,
        "wall_min": round(clock.wall_s / 60, 1) if clock.end else None,
        "load": {"start": clock.loads[0], "end": clock.loads[-1],
                 "mean": round(sum(clock.loads) / len(clock.loads), 2), "max": max(clock.loads)},
        "planned_min": round(makespan([p.cost_s for p in plan(study)], study.workers) / 60, 1),
        "workers": study.workers, "threads": study.threads, "code_commit": code_commit(),
        "runs": {str(result.job.run_dir): {"wall_s": round(result.seconds, 1),
                                           "cpu_s": round(result.cpu_seconds, 1),
                                           "ok": result.ok} for result in trained},
    }
    if trained:
        log = [*load(study.out_dir), entry]
        study.out_dir.mkdir(parents=True, exist_ok=True)
        (study.out_dir / LOG_FILE).write_text(json.dumps(log, indent=2))
    return entry


def lines(out_dir: Path) -> list[str]:
    """One report line per logged invocation."""
    out = []
    for entry in load(out_dir):
        part = f"part `{entry['part']}`" if entry.get("part") else "the study"
        load_ = entry["load"]
        cpu = sum(run["cpu_s"] for run in entry["runs"].values()) / 60
        out.append(
            f"- Invocation, {part}: started {entry['started']} UTC, ended {entry['ended']} UTC:"
            f" **{entry['wall_min']} min wall** (planned ~{entry['planned_min']:.0f}),"
            f" {len(entry['runs'])} runs trained ({cpu:.1f} CPU min), {entry['workers']}"
            f" workers x {entry['threads']} thread(s); 1-min load average {load_['start']:.2f}"
            f" at the start, mean {load_['mean']:.2f}, max {load_['max']:.2f}; code"
            f" `{entry['code_commit']}`.")
    return out
