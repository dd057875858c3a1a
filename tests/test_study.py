"""The KL study: its rules decide only on clear intervals, its config is checked, and the whole
study runs end to end at tiny scale with a verdict for every claim."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from vaegan.analysis.runs import Run, Series, load_run
from vaegan.study import measures
from vaegan.study.__main__ import main
from vaegan.study.config import StudyConfigError, Test, load_study
from vaegan.study.expressions import ExpressionError, evaluate_expr, expand
from vaegan.study.rules import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    REPORTED,
    SUPPORTED,
    Condition,
    claim_verdict,
    decide,
    judge,
)
from vaegan.study.runner import Job, run_jobs
from vaegan.study.stats import t_interval

# Every claim of ../shared/design/kl-claims.md.
CLAIMS = ["C1", "C2", "C3", "C4", "F1", "F2", "F3", "F4", "G1", "G2", "G3", "G4", "G5", "W1"]
VERDICTS = {SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE}


# ---------------------------------------------------------------- statistics and rules


def test_t_interval_uses_student_t_and_needs_two_seeds():
    iv = t_interval([1.0, 2.0, 3.0], 0.95)
    half = 4.302653 / math.sqrt(3)  # t_{0.975, 2} * sd / sqrt(n), sd = 1
    assert (iv.mean, iv.lo, iv.hi) == pytest.approx((2.0, 2.0 - half, 2.0 + half), rel=1e-5)
    one = t_interval([5.0])
    assert one.n == 1 and one.lo == -math.inf and one.hi == math.inf
    ratio = t_interval([2.0, 8.0], log=True)  # geometric mean for ratios
    assert ratio.mean == pytest.approx(4.0) and ratio.lo > 0


@pytest.mark.parametrize(
    "text, values, holds",
    [
        ("> 1.5", [2.0, 2.1, 2.2], True),
        ("> 1.5", [1.0, 2.0, 3.0], False),  # interval reaches below 1.5
        ("< 1", [0.5, 0.6, 0.55], True),
        ("within -0.1 0.1", [0.01, -0.01, 0.0], True),
        ("within -0.1 0.1", [0.01, 0.2, 0.1], False),
        ("outside -0.1 0.1", [0.5, 0.6, 0.55], True),
        ("outside -0.1 0.1", [0.05, 0.6, 0.3], False),
        ("> 0", [3.0], False),  # one seed: no interval, never decides
    ],
)
def test_condition_holds_only_for_the_whole_interval(text, values, holds):
    assert Condition.parse(text).holds(t_interval(values)) is holds


@pytest.mark.parametrize("bad", [">", "> x", "within 2 1", "about 3", "== 1"])
def test_bad_condition_is_rejected(bad):
    with pytest.raises(ValueError, match="condition"):
        Condition.parse(bad)


def test_verdicts_from_intervals_and_tests():
    sup, ref = Condition.parse("> 2"), Condition.parse("< 1")
    assert decide(t_interval([3, 3.1, 2.9]), sup, ref) == SUPPORTED
    assert decide(t_interval([0.5, 0.4, 0.6]), sup, ref) == NOT_SUPPORTED
    assert decide(t_interval([0.5, 3.0, 1.5]), sup, ref) == INCONCLUSIVE
    assert decide(t_interval([3.0]), sup, ref) == INCONCLUSIVE
    assert decide(t_interval([3, 3.1]), None, None) == REPORTED
    assert claim_verdict([SUPPORTED, SUPPORTED, REPORTED]) == SUPPORTED
    assert claim_verdict([SUPPORTED, NOT_SUPPORTED]) == NOT_SUPPORTED
    assert claim_verdict([SUPPORTED, INCONCLUSIVE]) == INCONCLUSIVE
    assert claim_verdict([REPORTED]) == INCONCLUSIVE


def test_judge_pairs_arms_by_seed():
    values = {"a": {0: 4.0, 1: 4.4, 2: 3.6, 3: None}, "b": {0: 1.0, 1: 1.1, 2: 0.9, 3: 1.0}}
    test = Test("a twice b", "a", "mean", {}, vs="b", op="ratio",
                supported=Condition.parse("> 2"), refuted=Condition.parse("< 1"))
    result = judge(lambda arm, args: values[arm], test, 0.95)
    assert result.values == pytest.approx({0: 4.0, 1: 4.0, 2: 4.0})  # seed 3 has no pair
    assert result.verdict == SUPPORTED
    flipped = Test("b twice a", "b", "mean", {}, vs="a", op="ratio",
                   supported=Condition.parse("> 2"), refuted=Condition.parse("< 1"))
    assert judge(lambda arm, args: values[arm], flipped, 0.95).verdict == NOT_SUPPORTED
    missing = judge(lambda arm, args: {0: None}, test, 0.95)
    assert missing.verdict == INCONCLUSIVE and "no value" in missing.missing


# ---------------------------------------------------------------- measures


def fake_run(series: dict[str, tuple[np.ndarray, np.ndarray]], steps: int = 100,
             latent_dims: int | None = None) -> Run:
    s = {k: Series(np.asarray(x, float), np.asarray(y, float)) for k, (x, y) in series.items()}
    if latent_dims is not None:
        s["latent/total_dims"] = Series(np.array([1.0]), np.array([float(latent_dims)]))
    return Run(Path("fake"), Path("fake/metrics.csv"), "gen_step", s, info={"steps": steps})


def test_measures_read_the_right_window():
    x = np.arange(1, 101)
    kl = 10 + x  # rises by 1 per step
    run = fake_run({"train/kl": (x, kl), "train/kl_var": (x, 0.75 * x),
                    "grad/adv/encoder": (x, np.full(100, 1.0)),
                    "grad/adv/decoder": (x, np.full(100, 9.0)),
                    "grad/rec/encoder": (x, np.full(100, 5.0)),
                    "grad/rec/decoder": (x, np.full(100, 5.0)),
                    "grad/kl/encoder": (x, np.full(100, 4.0)),
                    "grad/kl/decoder": (x, np.full(100, 0.0))}, latent_dims=10)
    assert measures.mean(run, "train/kl", (0.9, 1.0)) == pytest.approx(105)
    assert measures.ratio(run, "train/kl", (0.9, 1.0), (0.0, 0.1)) == pytest.approx(105 / 15.5)
    # slope 1 over a 20-step window whose mean level is 70: 20 / 70
    assert measures.change(run, "train/kl", (0.5, 0.7)) == pytest.approx(20 / 70)
    assert measures.per_dim(run, "train/kl", (0.9, 1.0)) == pytest.approx(10.5)
    assert measures.part_of_rise(run, "train/kl_var", "train/kl", (0.9, 1.0), (0.0, 0.1)) \
        == pytest.approx(0.75)
    assert measures.encoder_share(run, "adv", (0.5, 0.7)) == pytest.approx(0.1)
    assert measures.encoder_share(run, ["adv", "rec"], (0.5, 0.7)) == pytest.approx(6 / 20)
    assert measures.encoder_share_of(run, "kl", (0.5, 0.7)) == pytest.approx(0.4)
    assert measures.mean(run, "latent/clamp_frac", (0.9, 1.0)) is None  # not logged
    assert measures.mean(run, "train/kl", (0.0, 0.001)) is None  # no point in the window


# ---------------------------------------------------------------- the study definition


def test_study_definition_is_complete_and_checked():
    study = load_study([])
    assert set(CLAIMS) <= set(study.claims)
    for arm in study.arms.values():  # every intervention has a control of its own family
        if arm.control is not None:
            assert study.arms[arm.control].family == arm.family
    assert {j.arm for j in study.jobs()} == set(study.arms)
    assert len(study.seeds) >= 3  # verdicts rest on an interval over seeds


@pytest.mark.parametrize(
    "override, message",
    [
        ("arms.vae_z1.control=nope", "control"),
        ("claims.C1.tests.0.measure=median", "unknown measure"),
        ("claims.C1.tests.0.arm=nope", "unknown arm"),
        ("claims.C1.tests.0.supported='>> 2'", "condition"),
        ("windows.after_gan=[0.6,0.8]", "gan_start_frac"),
        ("only=[Z9]", "unknown claim"),
    ],
)
def test_broken_study_definition_names_the_problem(override, message):
    with pytest.raises(StudyConfigError, match=message):
        load_study([override])


def test_override_expressions():
    names = {"steps": 400, "beta": 1e-4, "pixels": 3072.0, "gan_start_frac": 0.5}
    assert expand("gan_start={gan_start_frac*steps}", names) == "gan_start=200"
    assert expand("schedule.warmup_steps={0.1*steps}", names) == "schedule.warmup_steps=40"
    assert float(expand("beta={beta*pixels}", names)[5:]) == pytest.approx(0.3072)
    assert expand("beta={100*beta}", names) == "beta=0.01"
    for bad in ("__import__('os').getcwd()", "steps ** 2", "steps +"):
        with pytest.raises(ExpressionError):
            evaluate_expr(bad, names)


# ---------------------------------------------------------------- running


def test_a_failing_run_is_reported_and_the_others_go_on(tmp_path):
    jobs = [Job(arm, 0, (), tmp_path / arm) for arm in ("a", "b", "c")]

    def train(job: Job) -> None:
        if job.arm == "b":
            raise RuntimeError("boom")

    results = run_jobs(jobs, train=train, say=lambda _: None)
    assert [r.ok for r in results] == [True, False, True]
    assert "boom" in results[1].error and (tmp_path / "b" / "study_error.txt").is_file()


def test_tiny_study_end_to_end(tmp_path):
    """The whole study at tiny scale: real runs, a report with a verdict for every claim."""
    args = ["scale=tiny", f"runs_dir={tmp_path}/runs", f"out_dir={tmp_path}/out"]
    assert main(args) == 0
    report = (tmp_path / "out" / "REPORT.md").read_text()
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    for cid in CLAIMS:
        assert results[cid]["verdict"] in VERDICTS, cid
        assert f"## {cid}:" in report and f"| {cid} | **" in report, cid
    assert (tmp_path / "out" / "plots" / "C1.png").is_file()
    run = load_run(tmp_path / "runs" / "gan" / "seed0")  # a normal run dir
    assert (run.path / ".hydra" / "config.yaml").is_file()
    assert run.gan_start == 5 and run.get("probe/hf_ratio") is not None
    assert load_run(tmp_path / "runs" / "ae_clamp" / "seed0").cfg(
        "model.posterior.logvar_min") == -10
    # A second invocation keeps the finished runs and only rewrites the report.
    assert main([*args, "only=[C1]"]) == 0
    assert "kept" in (tmp_path / "out" / "REPORT.md").read_text()
