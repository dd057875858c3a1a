"""Overlay several runs (e.g. the jobs of a sweep) in one figure and one markdown table."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vaegan.analysis.diagnose import (
    SMOOTH_FRAC,
    Diagnosis,
    DiagnosisThresholds,
    diagnose,
    fmt,
    smooth,
)
from vaegan.analysis.plots import helps_log, log_y, new_figure, save
from vaegan.analysis.report import md_table
from vaegan.analysis.runs import Run, RunDirError, load_runs_skipping
from vaegan.vocab import metric_names as metric

PANELS = (
    (metric.TRAIN_KL, "KL (nats/sample)"),
    (metric.TRAIN_BETA, "β"),
    (metric.TRAIN_REC, "reconstruction"),
    (metric.TRAIN_G_ADV, "generator adversarial term"),
    (metric.grad(metric.REC, metric.KL_PUSH), "KL push of the reconstruction (> 0: up)"),
    (metric.grad(metric.ADV, metric.KL_PUSH), "KL push of the adversarial term (> 0: up)"),
)


@dataclass
class Comparison:
    runs: list[Run]
    labels: list[str]
    diagnoses: list[Diagnosis]
    figure: Path
    table: Path
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # unreadable runs, why


def parse_overrides(overrides: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.lstrip("+~")
        if sep and not key.startswith("hydra."):
            out[key] = value
    return out


def run_labels(runs: Sequence[Run]) -> list[str]:
    """`key=value` of the overrides that differ between runs; the dir name when none do."""
    parsed = [parse_overrides(run.overrides) for run in runs]
    keys = list(dict.fromkeys(key for overrides in parsed for key in overrides))
    differing = [key for key in keys if len({overrides.get(key) for overrides in parsed}) > 1]
    labels = [
        " ".join(f"{key}={overrides[key]}" for key in differing if key in overrides) or run.name
        for run, overrides in zip(runs, parsed, strict=True)
    ]
    if len(set(labels)) < len(labels):
        labels = [
            f"{lab} ({r.name})" if lab != r.name else lab
            for lab, r in zip(labels, runs, strict=True)
        ]
    return labels


def plot_compare(runs: Sequence[Run], labels: Sequence[str], path: Path) -> Path:
    fig, axes = new_figure(3, 2, (12, 11))
    for ax, (name, title) in zip(axes, PANELS, strict=True):
        ys = []
        for i, (run, label) in enumerate(zip(runs, labels, strict=True)):
            color = f"C{i % 10}"
            series = run.get(name)
            if series is None:
                continue
            smoothed = smooth(series, SMOOTH_FRAC)
            ax.plot(smoothed.x, smoothed.y, color=color, lw=1.3, label=label)
            ys.append(smoothed.y)
            control = run.control.get(name) if run.control is not None else None
            if control is not None:  # its no-GAN branch, dotted in the same colour
                control_smoothed = smooth(control, SMOOTH_FRAC)
                ax.plot(control_smoothed.x, control_smoothed.y, color=color, lw=1.3, ls=":")
                ys.append(control_smoothed.y)
            if run.gan_start is not None:
                ax.axvline(run.gan_start, color=color, ls="--", lw=0.8, alpha=0.7)
        if helps_log(ys):
            log_y(ax)
        ax.set_title(title + ("" if ys else " (not logged)"), fontsize=10)
        ax.set_xlabel(runs[0].x_name if runs else metric.GEN_STEP)
        ax.grid(alpha=0.3)
    axes[0].legend(
        fontsize=7, title="dashed: gan_start; dotted: no-GAN control", title_fontsize=7
    )
    fig.suptitle(f"{len(runs)} runs")
    return save(fig, path)


def _row(run: Run, label: str, diagnosis: Diagnosis) -> list[str]:
    evidence = diagnosis.evidence
    last = {
        name: (series.last if (series := run.get(name)) is not None else None)
        for name in (metric.TRAIN_KL, metric.VAL_PSNR, metric.VAL_LPIPS)
    }
    return [
        label,
        f"`{run.path}`",
        fmt(evidence.get("kl_final", last[metric.TRAIN_KL])),
        fmt(evidence.get("kl_slope_after_gan")),
        fmt(evidence.get("kl_rel_slope_after_gan")),
        fmt(last[metric.VAL_PSNR]),
        fmt(last[metric.VAL_LPIPS]),
        " / ".join(fmt(evidence.get(f"kl_push_median_{term}_after_gan"))
                   for term in (metric.REC, metric.PERCEPTUAL, metric.ADV)),
        diagnosis.headline,
        diagnosis.gan_effect.verdict if diagnosis.gan_effect is not None else "-",
    ]


def compare_runs(
    paths: Sequence[str | Path],
    out_dir: str | Path | None = None,
    thresholds: DiagnosisThresholds | None = None,
) -> Comparison:
    """Load runs (or one multirun dir), diagnose each, write compare.png + compare.md."""
    runs, skipped = load_runs_skipping(paths)  # a broken run is listed, not fatal
    if not runs:
        raise RunDirError("no readable run: " + "; ".join(f"{p}: {why}" for p, why in skipped))
    if out_dir is None:
        out_dir = (
            Path(paths[0])
            if len(paths) == 1
            else Path(os.path.commonpath([r.path.resolve() for r in runs]))
        )
    out = Path(out_dir)
    labels = run_labels(runs)
    diagnoses = [diagnose(r, thresholds) for r in runs]
    figure = plot_compare(runs, labels, out / "compare.png")
    header = [
        "run",
        "dir",
        "final KL",
        "KL slope after gan_start (nats/step)",
        "relative",
        "final val PSNR",
        "final val LPIPS",
        "KL push after gan_start (median): rec / LPIPS / adv",
        "verdict",
        "GAN effect (paired no-GAN control)",
    ]
    rows = [_row(run, label, diagnosis)
            for run, label, diagnosis in zip(runs, labels, diagnoses, strict=True)]
    table = out / "compare.md"
    table.write_text(
        f"# Comparison of {len(runs)} runs\n\n![compare](compare.png)\n\n"
        + md_table(header, rows)
        + "\n\nThe relative slope is the KL change over the"
        " window after gan_start as a fraction of the KL level at gan_start. The KL push is"
        " each term's first-order change of KL along its Adam step (nats per unit lr, median"
        " of the measurements from gan_start to the end; > 0 pushes KL up).\n"
        + "".join(f"\n- skipped {p}: {why}" for p, why in skipped)
    )
    return Comparison(runs, labels, diagnoses, figure, table, skipped)
