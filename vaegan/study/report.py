"""``REPORT.md`` (+ ``plots/``, ``results.json``): the regimes, then every claim per regime.

It opens with the regime table (read from the composed configs, not from the study file),
then how the numbers came to be (commits of the rules and of the code, clock, load), then per
claim and regime: the verdict, and per test the rule's bands, its gates with their per-seed
values, the per-seed numbers and their interval, and a mean ± CI plot titled with the regime.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from vaegan.analysis.report import md_table
from vaegan.study import invocations
from vaegan.study.config import Study
from vaegan.study.evaluate import ClaimResult, RunTable, evaluate
from vaegan.study.plan import makespan, plan
from vaegan.study.plots import plot_claim
from vaegan.study.provenance import Clock, code_commit, rules_commit
from vaegan.study.regimes import regime_table
from vaegan.study.rules import (
    INCONCLUSIVE,
    NOT_RUN,
    NOT_SUPPORTED,
    REPORTED,
    SUPPORTED,
    Test,
    TestResult,
)
from vaegan.study.runner import JobResult, done_marker

REPORT_FILE = "REPORT.md"
def summary_markers(scale: str) -> tuple[str, str]:
    """Where a scale's summary table sits in its ``readme`` (each scale has its own markers,
    so the small and the long study's summaries stand side by side)."""
    tag = "study-summary" if scale == "small" else f"study-summary-{scale}"
    return f"<!-- {tag}:start -->", f"<!-- {tag}:end -->"
# P2, G3 and G2 (paired KL difference and level) together answer the question behind the
# claims (docs/claims.md): is the plateau the GAN's doing? (claim, test index, label)
QUESTION = (("P2", 0, "KL's change over the GAN phase, GAN branch"),
            ("G3", 0, "the same steps, no-GAN branch"),
            ("G2", 2, "paired difference of the changes, GAN − no-GAN"),
            ("G2", 3, "paired level at the end, GAN / no-GAN"))


def _num(x: float) -> str:
    return f"{x:.3g}"


def test_numbers(result: TestResult) -> str:
    """Per-seed values and the interval, e.g. ``1.8, 2.1, 2.4 → 2.1 [1.6, 2.7] (n=3)``."""
    if not result.values:
        return f"– ({result.missing})"
    values = ", ".join(_num(value) for value in result.values.values())
    return f"{values} → {result.interval.text()}"


def rule_text(test: Test) -> str:
    if test.supported is None:
        return "reported only"
    return f"supported if {test.supported}; refuted if {test.refuted}"


def gate_text(result: TestResult) -> str:
    return "<br>".join(gate.text() for gate in result.gates) or "–"


def subject(test: Test) -> str:
    """Which arm(s) and how: ``gan / nogan``, ``gan − nogan``, or the arm."""
    if test.op == "value":
        return f"`{test.arm}`"
    sign = "/" if test.op == "ratio" else "−"
    other = f"`{test.vs or test.arm}`" + (f" {test.vs_args}" if test.vs_args else "")
    return f"`{test.arm}` {sign} {other}"


def plain_words(res: ClaimResult, study: Study) -> str:
    """The verdict in a sentence, saying so plainly when the claim fails at this scale."""
    where = (f"at this scale ({study.scale}: {study.steps} steps, GAN from {study.gan_start},"
             f" {len(study.seeds)} seeds)")
    decisive = [(test, result) for test, result in res.tests
                if result.verdict not in (REPORTED, NOT_RUN)]
    if res.marginal:
        close = [test.what for test, result in decisive if result.marginal]
        return (f"**Marginal** {where}: {res.verdict}, but decided by less than the resolution"
                f" ({study.raw.get('resolution')}, relative) on: " + "; ".join(close) + ".")
    if res.verdict == SUPPORTED:
        return f"Supported {where}: every decisive test's interval lies in its supporting band."
    if res.verdict == NOT_SUPPORTED:
        failed = [test.what for test, result in decisive if result.verdict == NOT_SUPPORTED]
        return f"**The claim does not hold {where}.** Refuted: " + "; ".join(failed) + "."
    if res.verdict == NOT_RUN:
        return "Not run in this regime (it has none of the arms the decisive tests read)."
    open_ = [f"{test.what} ({result.missing})"
             for test, result in decisive if result.verdict == INCONCLUSIVE]
    return f"Inconclusive {where}; undecided: " + "; ".join(open_) + "."


def horizon_text(study: Study, results: Sequence[ClaimResult]) -> str:
    """The horizon a verdict belongs to: scale, steps, gan_start and, per regime, how much
    KL was still moving before the GAN (e.g. ``small: 800 steps, GAN from 400; KL's change
    before gan_start: ldm +0.265, mean +0.0531``)."""
    moving = {}
    for res in results:
        if res.horizon is not None:
            moving.setdefault(res.regime, res.horizon)
    text = f"{study.scale}: {study.steps} steps, GAN from {study.gan_start}"
    if moving:
        text += "; KL's change before gan_start: " + ", ".join(
            f"{regime} {value:+.3g}" for regime, value in moving.items())
    return text


def summary_table(study: Study, results: Sequence[ClaimResult]) -> str:
    """Claim × regime verdicts, each row with the horizon that produced it."""
    by_claim: dict[str, dict[str, ClaimResult]] = {}
    for res in results:
        by_claim.setdefault(res.claim.id, {})[res.regime] = res
    horizon = horizon_text(study, results)
    rows = []
    for cid, per in by_claim.items():
        cells = [f"**{per[regime].shown}**" if regime in per else ""
                 for regime in study.regimes]
        rows.append([cid, *cells, horizon, next(iter(per.values())).claim.text])
    head = [f"claim ({study.scale}, {study.steps} steps, GAN from {study.gan_start})",
            *[f"{regime} regime" for regime in study.regimes], "horizon", "claim (short)"]
    return md_table(head, rows)


def question_section(study: Study, results: Sequence[ClaimResult]) -> list[str]:
    """Is the plateau the GAN's doing? P2, G3 and the paired difference of G2, per regime."""
    found = {(result.claim.id, result.regime): result for result in results}
    rows = []
    for regime in study.regimes:
        for cid, i, what in QUESTION:
            res = found.get((cid, regime))
            if res is None or len(res.tests) <= i:
                continue
            test, result = res.tests[i]
            why = f" ({result.missing})" if result.verdict == INCONCLUSIVE and result.values else ""
            rows.append([regime, f"{cid}: {what}", test_numbers(result), rule_text(test),
                         result.shown + why])
    if not rows:
        return []
    return ["## The question: is the plateau the GAN's doing?", "",
            "KL's relative change over the GAN phase (window"
            f" {study.windows.get('gan_phase')} of the run; {horizon_text(study, results)}),"
            " in the GAN branch, in its no-GAN branch forked at gan_start (same seed, same"
            " batches), their paired difference, and the paired ratio of their final levels."
            " The GAN flattens KL if the branch keeps moving and the difference is clear; KL"
            " flattens on its own if both are flat; a GAN that knocks KL down once shows in"
            " the level.", "",
            md_table(["regime", "what", "per seed → mean [CI]", "rule", "result"], rows), ""]


def claim_section(res: ClaimResult, study: Study, plot: Path | None) -> list[str]:
    regime = study.regimes[res.regime]
    lines = [f"### {res.claim.id} in the {regime.name} regime: **{res.shown}**", "",
             plain_words(res, study), ""]
    if plot is not None:
        lines += [f"![{res.claim.id} {res.regime}](plots/{plot.name})", ""]
    rows = [[test.what, subject(test), test_numbers(result), rule_text(test), gate_text(result),
             result.shown]
            for test, result in res.tests if result.verdict != NOT_RUN]
    if rows:
        lines += [md_table(["test", "arms", "per seed → mean [CI]", "rule", "gates", "result"],
                           rows), ""]
    return lines


def regimes_section(study: Study) -> list[str]:
    rows, shared, problems = regime_table(study)
    lines = ["## Regimes", ""]
    lines += [f"- **{regime.name}** ({regime.label}): {regime.about}"
              for regime in study.regimes.values()]
    lines += ["", f"Every arm at this scale: {shared}.", "",
              "Each row is read from the arm's composed `vaegan-train` config and its real β"
              " schedule (`vaegan.study.regimes`), not from the study file; every arm is"
              " composed from an explicit study base, nothing comes from `conf/train.yaml`'s"
              " defaults.", ""]
    if rows:
        lines += [md_table(list(rows[0]), [list(row.values()) for row in rows]), ""]
    if problems:
        lines += ["**Declared and composed regimes differ:**", "",
                  *[f"- {p}" for p in problems], ""]
    return lines


def provenance_section(study: Study, jobs: Sequence[JobResult], clock: Clock | None) -> list[str]:
    trained = [result for result in jobs if not result.cached]
    commits = sorted({done_marker(result.job).get("code_commit", "unknown")
                      for result in jobs if result.ok})
    planned = plan(study)
    estimate = makespan([p.cost_s for p in planned], study.workers)
    cpu = sum(result.cpu_seconds for result in trained)
    lines = [
        "## How these numbers came to be", "",
        f"- Command: `python -m vaegan.study scale={study.scale}` (`make study"
        f"{'' if study.scale == 'small' else ' SCALE=' + study.scale}`)"
        + (f", part `{study.part}`." if study.part else "."),
        f"- Rules, arms and regimes: `conf/study/study.yaml` at commit `{rules_commit()}`;"
        f" code that trained the runs: `{', '.join(commits) or 'unknown'}`; code that judged"
        f" them: `{code_commit()}`.",
        f"- {len(jobs)} runs ({len(trained)} trained in this invocation, {len(jobs) - len(trained)}"
        f" kept from before), {sum(p.control_steps > 0 for p in planned)} of them with a paired"
        f" no-GAN branch; {cpu / 60:.1f} CPU min of training in this invocation.",
        f"- Planned (scale config's per-step costs): ~{estimate / 60:.0f} min wall with"
        f" {study.workers} workers.",
    ]
    if clock is not None:
        lines.append(f"- Measured (this invocation): {clock.text()}.")
    lines += invocations.lines(study.out_dir)
    lines += ["- Claims: docs/claims.md (C, F: why KL rises; G, P, W: why it flattens under a"
              f" GAN). Each test is one number per seed and a {study.confidence:.0%} t-interval"
              " over seeds (ratios on a log scale); it decides only when the whole interval lies"
              " in its supporting or its refuting band, and only when its gates hold on every"
              " seed. A claim is supported when all its decisive tests are, not supported when"
              " any is refuted, inconclusive otherwise.", ""]
    return lines


def runs_table(results: Sequence[JobResult]) -> str:
    rows = [[result.job.arm, str(result.job.seed),
             "kept" if result.cached else f"{result.seconds:.0f}",
             "" if result.cached else f"{result.cpu_seconds:.0f}",
             "ok" if result.ok else f"FAILED: {result.error}",
             f"`{result.job.run_dir}`"] for result in results]
    return md_table(["arm", "seed", "wall s", "CPU s", "status", "run dir"], rows)


def caveats(study: Study, claims: Sequence[ClaimResult]) -> list[str]:
    lines = ["## What this scale can and cannot show", "",
             *[f"- {line}" for line in study.raw["scale"].get("caveats", [])]]
    settings = next(iter(study.arms.values())).settings if study.arms else {}
    if settings.get("loss.objective.perceptual.pretrained") is False:
        lines.append(f"- The perceptual loss ran on a randomly initialised"
                     f" {settings.get('loss.objective.perceptual.net')} backbone (its ImageNet"
                     " weights were not on disk): a random-feature distance, not LPIPS.")
    for res in claims:
        for test, result in res.tests:
            for gate in result.gates:
                if not gate.met:
                    lines.append(f"- {res.claim.id} ({res.regime}): cannot speak on \"{test.what}\""
                                 f" — gate not met: {gate.text()}.")
    return [*lines, ""]


def render(study: Study, claims: Sequence[ClaimResult], jobs: Sequence[JobResult],
           plots: dict[tuple[str, str], Path | None], clock: Clock | None = None) -> str:
    lines = [f"# The KL study (scale={study.scale})", "", *regimes_section(study),
             *provenance_section(study, jobs, clock),
             "## Summary", "", summary_table(study, claims), "",
             *question_section(study, claims), *caveats(study, claims)]
    by_claim: dict[str, list[ClaimResult]] = {}
    for res in claims:
        by_claim.setdefault(res.claim.id, []).append(res)
    for cid, results in by_claim.items():
        lines += [f"## {cid}: {results[0].claim.text}", ""]
        for res in results:
            lines += claim_section(res, study, plots.get((cid, res.regime)))
    lines += ["## Runs", "", runs_table(jobs), ""]
    return "\n".join(lines)


def results_json(claims: Sequence[ClaimResult]) -> dict:
    out: dict = {}
    for res in claims:
        out.setdefault(res.claim.id, {})[res.regime] = {
            "verdict": res.verdict, "marginal": res.marginal, "horizon": res.horizon,
            "tests": [{"what": test.what, "verdict": result.verdict,
                       "marginal": result.marginal, "values": result.values,
                       "mean": result.interval.mean, "lo": result.interval.lo,
                       "hi": result.interval.hi,
                       "missing": result.missing,
                       "gates": [{"what": gate.gate.what, "met": gate.met, "values": gate.values}
                                 for gate in result.gates]} for test, result in res.tests]}
    return out


def update_readme(readme: Path, summary: str, scale: str = "small") -> None:
    """Replace the summary between the scale's study markers of ``readme`` (the scale
    config's ``readme``: docs/study.md), if it has them."""
    if not readme.is_file():
        return
    text = readme.read_text()
    start, end = summary_markers(scale)
    if start not in text or end not in text:
        return
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{summary}\n{end}{tail}")


def rules_section(study: Study) -> list[str]:
    """Every claim's tests with their bands and gates, as fixed before any run."""
    lines = ["## Claims and rules", ""]
    for claim in study.claims.values():
        rows = []
        for test in claim.tests:
            gates = "<br>".join(f"{gate.what} (`{gate.arm}`, {gate.holds} on every seed)"
                                for gate in test.gates) or "–"
            rows.append([test.what, subject(test), rule_text(test), gates])
        lines += [f"### {claim.id}: {claim.text}", "",
                  md_table(["test", "arms", "rule", "gates"], rows), ""]
    return lines


def write_plan_report(study: Study, plan_lines: str) -> Path:
    """REPORT.md before the study has run: regimes, plan and rules, marked NOT YET RUN."""
    study.out_dir.mkdir(parents=True, exist_ok=True)
    text = "\n".join([
        f"# The KL study (scale={study.scale}): NOT YET RUN", "",
        "**No run of this study has been judged yet: this file holds the regimes, the plan and"
        " the rules, fixed before the runs.** `make study"
        f"{'' if study.scale == 'small' else ' SCALE=' + study.scale}` replaces it with the"
        " report.", "",
        f"Rules, arms and regimes: `conf/study/study.yaml` at commit `{rules_commit()}`.", "",
        *regimes_section(study), "## Plan", "", "```", plan_lines, "```", "",
        *rules_section(study)])
    report = study.out_dir / REPORT_FILE
    report.write_text(text)
    return report


def write_study_report(study: Study, jobs: Sequence[JobResult], clock: Clock | None = None,
                       table: RunTable | None = None) -> Path:
    """Judge the claims on the finished runs and write the report; returns REPORT.md's path."""
    failed = {(result.job.arm, result.job.seed) for result in jobs if not result.ok}
    table = table or RunTable(study, failed)
    claims = evaluate(study, table)
    out = study.out_dir
    (out / "plots").mkdir(parents=True, exist_ok=True)
    plots = {}
    for res in claims:
        runs = {ref: rs for ref in res.claim.plot_arms
                if study.arm(res.regime, ref.split("@")[0]) and (rs := table.runs(res.regime, ref))}
        path = out / "plots" / f"{res.claim.id}_{res.regime}.png"
        plots[(res.claim.id, res.regime)] = plot_claim(
            res.claim, study.regimes[res.regime].label, runs, path, study.confidence)
    report = out / REPORT_FILE
    report.write_text(render(study, claims, jobs, plots, clock))
    (out / "results.json").write_text(json.dumps(results_json(claims), indent=2))
    readme = study.raw["scale"].get("readme")
    if readme and study.out_dir == Path(study.raw["scale"]["out_dir"]):  # the committed report
        update_readme(Path(readme), summary_table(study, claims), study.scale)
    return report
