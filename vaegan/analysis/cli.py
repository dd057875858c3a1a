"""Console scripts `vaegan-diagnose` and `vaegan-compare`: errors are one line, no traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from vaegan.analysis.compare import compare_runs
from vaegan.analysis.diagnose import DiagnosisThresholds, diagnose
from vaegan.analysis.report import render_report
from vaegan.analysis.runs import load_run


def _threshold_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threshold",
        "-t",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a diagnosis threshold (repeatable); names and rules: "
        "vaegan.analysis.diagnose.DiagnosisThresholds",
    )


def _guarded(prog: str, body: Callable[[], int]) -> int:
    try:
        return body()
    except (ValueError, OSError) as err:  # bad input (RunDirError is both): one line, exit 2
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2


def diagnose_main(argv: Sequence[str] | None = None) -> int:
    """`vaegan-diagnose RUN_DIR [--threshold k=v ...]`: diagnosis.md + plots, prints verdict."""
    parser = argparse.ArgumentParser(
        prog="vaegan-diagnose",
        description=(
            "Classify a run's KL trajectory (benign rise / malignant explosion / posterior"
            " collapse) and write diagnosis.md and plots/ into the run directory."
        ),
    )
    parser.add_argument("run_dir", type=Path, help="run directory (or its metrics.csv)")
    _threshold_arg(parser)
    args = parser.parse_args(argv)

    def body() -> int:
        thresholds = DiagnosisThresholds.from_overrides(args.threshold)
        run = load_run(args.run_dir)
        diagnosis = diagnose(run, thresholds)
        paths = render_report(run, diagnosis, thresholds)
        print(f"verdict: {diagnosis.headline}")
        if diagnosis.gan_headline:
            print(diagnosis.gan_headline)
        for path in paths:
            print(f"wrote {path}")
        return 0

    return _guarded(parser.prog, body)


def compare_main(argv: Sequence[str] | None = None) -> int:
    """`vaegan-compare RUN_DIR... | MULTIRUN_DIR [--out DIR]`: compare.png + compare.md."""
    parser = argparse.ArgumentParser(
        prog="vaegan-compare",
        description=(
            "Overlay KL, β, recon and adversarial curves of several runs (or every job of a"
            " multirun dir) and tabulate final KL, KL slope after gan_start, val PSNR/LPIPS and"
            " verdicts."
        ),
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run dirs, or one multirun dir")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output dir (default: the multirun dir / the runs' common parent)",
    )
    _threshold_arg(parser)
    args = parser.parse_args(argv)

    def body() -> int:
        thresholds = DiagnosisThresholds.from_overrides(args.threshold)
        result = compare_runs(args.runs, args.out, thresholds)
        for label, d in zip(result.labels, result.diagnoses, strict=True):
            print(f"{label}: {d.headline}" + (f"; {d.gan_headline}" if d.gan_headline else ""))
        for path, why in result.skipped:
            print(f"skipped {path}: {why}")
        print(f"wrote {result.figure}\nwrote {result.table}")
        return 0

    return _guarded(parser.prog, body)
