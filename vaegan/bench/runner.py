"""Run every section, print the markdown table and write it to a file."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from vaegan.bench.context import Context
from vaegan.bench.designs import designs
from vaegan.bench.external import external_rows
from vaegan.bench.flags import flags
from vaegan.bench.memory_rows import memory
from vaegan.bench.overhead import diagnostics, framework
from vaegan.bench.peers import peers
from vaegan.bench.profiles import Profile
from vaegan.bench.scaling import scaling
from vaegan.bench.table import Row, failed_row, render


def ddp(ctx: Context) -> list[Row]:
    """``ddp_cost.measure`` (the scale-out work) when present."""
    p = ctx.profile
    title = "DDP: 2 processes / 1 process, same global batch"
    rows = external_rows(
        "DDP", title, "ddp_cost", None,
        steps=p.steps, repeats=p.external_repeats, warmup=p.warmup, overrides=p.size,
    )
    return rows or [Row("DDP", title, "not run", "`vaegan.bench.ddp_cost` is not present")]


SECTIONS: dict[str, Callable[[Context], list[Row]]] = {
    "framework": framework,  # rows 1 and 6
    "diagnostics": diagnostics,  # row 2
    "designs": designs,  # row 3
    "memory": memory,  # row 4
    "scaling": scaling,  # row 5
    "flags": flags,  # row 7
    "ddp": ddp,
    "peers": peers,  # vaegan's sd_kl_f8 vs diffusers' AutoencoderKL
}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, {_cpu_name()}"
    return f"{os.cpu_count()} × {_cpu_name()} ({torch.get_num_threads()} torch threads)"


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def run(
    profile: Profile, device: torch.device, command: str, only: list[str] | None = None,
    partial: Callable[[str], None] | None = None,
) -> str:
    """The whole report as markdown; progress goes to stderr, and the report so far to
    ``partial`` after every section (a long run that dies keeps what it measured)."""
    started, load_before = time.perf_counter(), _load()
    rows: list[Row] = []

    def report() -> str:
        minutes = (time.perf_counter() - started) / 60
        header = _header(profile, device, command, minutes, load_before)
        return "\n".join([*header, render(rows), ""])

    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(profile, device, Path(tmp))
        for name, section in SECTIONS.items():
            if only and name not in only:
                continue
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            try:
                rows += section(ctx)
            except Exception as err:  # noqa: BLE001 - report it in the table, keep going
                rows.append(failed_row(name, f"section `{name}`", err))
            print(f"[bench] {name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
            if partial is not None:
                partial(report())
    return report()


def _header(
    profile: Profile, device: torch.device, command: str, minutes: float, load_before: str
) -> list[str]:
    return [
        f"`{command}` — {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, {_machine(device)}, "
        f"torch {torch.__version__}; {minutes:.1f} min; load average (1/5/15 min) "
        f"{load_before} before, {_load()} after.",
        "",
        f"Ratios: median of {profile.repeats} interleaved, paired repeats [min–max]; each repeat "
        f"times {profile.steps} batches after {profile.warmup} warm-up batches.",
        "",
    ]
