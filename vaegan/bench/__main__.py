"""``python -m vaegan.bench`` (``make bench ARGS=...``): every section's rows as one markdown
table, written to ``--out`` after each section (a long run that dies keeps what it measured)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from vaegan.bench import (
    callbacks_cost,
    ddp_cost,
    designs,
    flags,
    memory_rows,
    overhead,
    peers,
    scaling,
)
from vaegan.bench.config import FULL, QUICK, Profile, tiny
from vaegan.bench.context import Context
from vaegan.bench.table import Row, failed_row, render

SECTIONS: dict[str, Callable[[Context], list[Row]]] = {
    "framework": overhead.measure,  # rows 1 and 6
    "diagnostics": callbacks_cost.measure,  # row 2
    "designs": designs.measure,  # row 3
    "memory": memory_rows.measure,  # row 4
    "scaling": scaling.measure,  # row 5
    "flags": flags.measure,  # row 7
    "ddp": ddp_cost.measure,
    "peers": peers.measure,  # vaegan's sd_kl_f8 vs diffusers' AutoencoderKL
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m vaegan.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats, smaller sizes, no torch.compile: minutes, not ~10")
    parser.add_argument("--tiny", action="store_true", help="tiny networks (the test suite)")
    parser.add_argument("--out", type=Path, default=Path("bench/RESULTS.md"),
                        help="the markdown table's file (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, help="override the profile's repeats")
    parser.add_argument("--steps", type=int, help="override the profile's timed batches")
    parser.add_argument("--only", type=lambda names: names.split(","),
                        help=f"comma list of sections: {', '.join(SECTIONS)}")
    return parser.parse_args(argv)


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
    return "/".join(f"{load:.1f}" for load in os.getloadavg())


def run(
    profile: Profile, device: torch.device, command: str, only: list[str] | None = None,
    partial: Callable[[str], None] | None = None,
) -> str:
    """The whole report as markdown; progress goes to stderr, and the report so far to
    ``partial`` after every section."""
    started, load_before = time.perf_counter(), _load()
    rows: list[Row] = []

    def report() -> str:
        minutes = (time.perf_counter() - started) / 60
        header = [
            f"`{command}` — {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, "
            f"{_machine(device)}, torch {torch.__version__}; {minutes:.1f} min; load average "
            f"(1/5/15 min) {load_before} before, {_load()} after.",
            "",
            f"Ratios: median of {profile.repeats} interleaved, paired repeats [min–max]; each "
            f"repeat times {profile.steps} batches after {profile.warmup} warm-up batches.",
            "",
        ]
        return "\n".join([*header, render(rows), ""])

    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(profile, device, Path(tmp))
        for name, section in SECTIONS.items():
            if only and name not in only:
                continue
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            start = time.perf_counter()
            try:
                rows += section(ctx)
            except Exception as err:  # noqa: BLE001 - report it in the table, keep going
                rows.append(failed_row(name, f"section `{name}`", err))
            print(f"[bench] {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr,
                  flush=True)
            if partial is not None:
                partial(report())
    return report()


def main(argv: list[str] | None = None) -> str:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    unknown = set(args.only or ()) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"error: --only {','.join(sorted(unknown))}: no such section; "
                         f"allowed: {', '.join(SECTIONS)}")
    profile = QUICK if args.quick else FULL
    profile = tiny(profile) if args.tiny else profile
    overrides = {"repeats": args.repeats, "steps": args.steps}
    profile = replace(profile, **{key: value for key, value in overrides.items() if value})
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "-m", "vaegan.bench", *argv])
    report = run(profile, device, command, args.only, partial=args.out.write_text)
    print(report)
    args.out.write_text(report)
    print(f"written to {args.out}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
