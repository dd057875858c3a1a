"""What REPORT.md must say about how its numbers came to be: commits, clock and machine load."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def commit_of(*paths: str) -> str:
    """Short hash of the last commit that touched `paths` (+ "-dirty" when they have
    uncommitted changes); "unknown" outside a git checkout."""
    commit = _git("log", "-1", "--format=%h", "--", *paths)
    if not commit:
        return "unknown"
    return commit + ("-dirty" if _git("status", "--porcelain", "--", *paths) else "")


def code_commit() -> str:
    """The commit of the code that trains: HEAD, "-dirty" if vaegan/ or conf/ differ from it."""
    head = _git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("-dirty" if _git("status", "--porcelain", "--", "vaegan", "conf") else "")


def rules_commit() -> str:
    return commit_of("conf/study/study.yaml")


@dataclass
class Clock:
    """Wall clock and 1-minute load average over the study, sampled in the background."""

    every_s: float = 30.0
    start: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    end: datetime | None = None
    loads: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._t0 = time.perf_counter()
        self.loads.append(os.getloadavg()[0])
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.every_s):
            self.loads.append(os.getloadavg()[0])

    def stop(self) -> Clock:
        self._stop.set()
        self.loads.append(os.getloadavg()[0])
        self.end = datetime.now(timezone.utc)
        self.wall_s = time.perf_counter() - self._t0
        return self

    def text(self) -> str:
        end = self.end or datetime.now(timezone.utc)
        wall = (end - self.start).total_seconds()
        return (f"started {self.start:%Y-%m-%d %H:%M:%S} UTC, ended {end:%H:%M:%S} UTC:"
                f" {wall / 60:.1f} min wall on {os.cpu_count()} CPU cores; 1-min load average"
                f" {self.loads[0]:.2f} at the start, {self.loads[-1]:.2f} at the end, mean"
                f" {sum(self.loads) / len(self.loads):.2f} and max {max(self.loads):.2f} over"
                f" {len(self.loads)} samples")
