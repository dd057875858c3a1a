"""Write `diagnosis.md` (+ `diagnosis.json` and `plots/*.png`) into a run directory."""

from __future__ import annotations

import json
from pathlib import Path

from vaegan.analysis.diagnose import Diagnosis, DiagnosisThresholds, diagnose, fmt
from vaegan.analysis.paired import GanEffect
from vaegan.analysis.plots import write_plots
from vaegan.analysis.runs import Run, load_run
from vaegan.vocab.layout import RunLayout


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(
    run: Run, diagnosis: Diagnosis, thresholds: DiagnosisThresholds, plots: list[Path]
) -> str:
    x0, x1 = run.x_range
    meta = [
        ["run", f"`{run.path}`"],
        ["metrics", f"`{run.metrics_path}`"],
        ["x-axis", f"{run.x_name} {fmt(x0)}..{fmt(x1)}"],
        ["gan_start", fmt(run.gan_start)],
        ["β (final)", fmt(run.beta)],
        ["schedule", str(run.schedule)],
        ["recon reduction", str(run.rec_reduction)],
        ["overrides", " ".join(run.overrides) or "-"],
    ]
    if run.control is not None:
        meta.append(["no-GAN control", f"`{run.control.path}` (forked at {fmt(run.fork_step)})"])
    parts = [
        f"# KL diagnosis: {diagnosis.verdict}",
        "",
        f"Flags: {', '.join(diagnosis.flags) or 'none'}",
        "",
    ]
    if diagnosis.gan_headline:
        parts += [f"**{diagnosis.gan_headline}**", ""]
    parts += [md_table(["field", "value"], meta), "", "## Explanation", ""]
    parts += [f"- {sentence}" for sentence in diagnosis.explanation]
    if diagnosis.gan_effect is not None:
        parts += ["", "## Is the plateau the GAN's doing?", ""]
        parts += [f"- {sentence}" for sentence in diagnosis.gan_effect.explanation]
        parts += paired_table(diagnosis.gan_effect)
    if diagnosis.causes:
        parts += ["", "## Likely causes", ""] + [f"- {c}" for c in diagnosis.causes]
    parts += [
        "",
        "## Evidence",
        "",
        md_table(["name", "value"], [[k, fmt(v)] for k, v in diagnosis.evidence.items()]),
    ]
    parts += ["", "## Plots", ""]
    parts += [f"![{p.stem}]({p.relative_to(run.path).as_posix()})" for p in plots] or ["(none)"]
    parts += [
        "",
        "## Thresholds used",
        "",
        "Rules: see `vaegan.analysis.diagnose.DiagnosisThresholds`; override with"
        " `vaegan-diagnose RUN_DIR --threshold name=value`.",
        "",
        md_table(["name", "value"], [[k, fmt(v)] for k, v in thresholds.as_dict().items()]),
    ]
    return "\n".join(parts) + "\n"


def paired_table(effect: GanEffect) -> list[str]:
    """GAN branch vs no-GAN control per metric and window (markdown lines; none without rows)."""
    if not effect.rows:
        return []
    rows = [
        [
            r.name, f"{fmt(r.lo)}–{fmt(r.hi)}", fmt(r.gan), fmt(r.control),
            fmt(r.diff) + ("" if r.ci95 is None else f" ± {fmt(r.ci95)}"), fmt(r.rel),
            str(r.pairs),
        ]
        for r in effect.rows
    ]
    header = ["metric", "steps", "GAN", "no-GAN", "GAN − no-GAN (±95 %)", "relative", "pairs"]
    return [
        "",
        "Means over each window after the fork; the difference is the mean of per-step "
        "differences (same batches in both branches). Its interval treats neighbouring steps "
        "as independent, so it is too narrow: read it as a within-run check, not a seed interval.",
        "",
        md_table(header, rows),
    ]


def render_report(run: Run, diagnosis: Diagnosis, thresholds: DiagnosisThresholds) -> list[Path]:
    """Write plots, diagnosis.md and diagnosis.json into the run dir; returns the paths."""
    layout = RunLayout(run.path)
    plots = write_plots(run, layout.plots)
    md, js = layout.diagnosis, layout.diagnosis_json
    md.write_text(render_markdown(run, diagnosis, thresholds, plots))
    js.write_text(json.dumps({**diagnosis.as_dict(), "thresholds": thresholds.as_dict()}, indent=2))
    return [md, js, *plots]


def write_report(run_dir: str | Path, thresholds: DiagnosisThresholds | None = None) -> Diagnosis:
    """Diagnose the run in `run_dir` and write its report and plots there."""
    thresholds = thresholds or DiagnosisThresholds()
    run = load_run(run_dir)
    diagnosis = diagnose(run, thresholds)
    render_report(run, diagnosis, thresholds)
    return diagnosis
