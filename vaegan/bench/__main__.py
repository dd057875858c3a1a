"""``python -m vaegan.bench [--quick] [--tiny] [--out PATH]`` (``make bench ARGS=...``)."""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import torch

from vaegan.bench.profiles import FULL, QUICK, tiny
from vaegan.bench.runner import SECTIONS, run


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m vaegan.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="about a minute: fewer, smaller")
    parser.add_argument("--tiny", action="store_true", help="tiny networks (the test suite)")
    parser.add_argument("--out", type=Path, default=Path("bench/RESULTS.md"))
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, help="override the profile's repeats")
    parser.add_argument("--steps", type=int, help="override the profile's timed batches")
    parser.add_argument(
        "--only", type=lambda s: s.split(","), help=f"comma list of {', '.join(SECTIONS)}"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    profile = QUICK if args.quick else FULL
    profile = tiny(profile) if args.tiny else profile
    overrides = {"repeats": args.repeats, "steps": args.steps}
    profile = replace(profile, **{k: v for k, v in overrides.items() if v})
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
