"""The study's rules measure the right thing (issue 21): the GAN phase, KL-push measures, the
strict and bulk gates, marginal verdicts and the horizon every verdict is printed with."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from vaegan.analysis.runs import Run, Series
from vaegan.study import measures
from vaegan.study.config import StudyConfigError, load_study
from vaegan.study.evaluate import ClaimResult
from vaegan.study.report import summary_table
from vaegan.study.rules import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SUPPORTED,
    Condition,
    GateResult,
    Test,
    claim_marginal,
    judge,
)
from vaegan.study.stats import Interval, t_interval
from vaegan.vocab import metric_names as metric

STEPS = 100


@pytest.fixture(scope="module")
def study():
    return load_study([])


def fake_run(**series: np.ndarray) -> Run:
    """A run of STEPS steps, GAN from 50, with one point per step of each series."""
    x = np.arange(STEPS, dtype=float)
    return Run(Path("f"), Path("f/m.csv"), "gen_step",
               {name: Series(x, np.broadcast_to(np.asarray(y, float), x.shape))
                for name, y in series.items()},
               info={"steps": STEPS, "gan_start": 50})


def gate_of(study, cid: str, index: int = 0, gate: int = 0):
    return study.claims[cid].tests[index].gates[gate]


# ---------------------------------------------------------------- measures


def test_geometric_mean_of_variance_is_exp_of_mean_log_variance():
    run = fake_run(**{metric.LATENT_LOGVAR_MEAN: np.full(STEPS, math.log(0.1))})
    assert measures.exp_mean(run, metric.LATENT_LOGVAR_MEAN, (0.9, 1.0)) == pytest.approx(0.1)
    assert measures.exp_mean(run, metric.LATENT_VAR_MEAN, (0.9, 1.0)) is None  # not logged


@pytest.mark.parametrize(
    "kl, below_half",
    [
        (10 + 2 * np.minimum(np.arange(STEPS), 50), True),  # flat after 50: a plateau
        (10 + 2 * np.arange(STEPS, dtype=float), False),  # keeps its pace: none forming
        (np.full(STEPS, 10.0), True),  # flat throughout: the floor, not a 0/0
    ],
)
def test_slowdown_tells_a_forming_plateau_from_a_steady_climb(kl, below_half):
    value = measures.slowdown(fake_run(**{metric.TRAIN_KL: kl}), metric.TRAIN_KL, (0.55, 1.0),
                              (0.35, 0.5), floor=0.1)
    assert value is not None and (value < 0.5) is below_half


def test_pushes_read_the_kl_push_metrics_signed():
    run = fake_run(**{metric.grad(metric.ADV, metric.KL_PUSH): np.full(STEPS, -0.5),
                      metric.grad(metric.REC, metric.KL_PUSH): np.full(STEPS, 2.0),
                      metric.grad(metric.PERCEPTUAL, metric.KL_PUSH): np.full(STEPS, -0.5),
                      metric.grad(metric.ADV, metric.KL_PUSH_VAR): np.full(STEPS, 0.25)})
    window = (0.55, 1.0)
    assert measures.push(run, "adv", window) == pytest.approx(-0.5)
    assert measures.push_sum(run, ["rec", "perceptual"], window) == pytest.approx(1.5)
    # adv / (|rec| + |perceptual|): signed, against the magnitudes
    assert measures.push_share(run, "adv", ["rec", "perceptual"], window) == pytest.approx(-0.2)
    assert measures.push(run, "adv", window, part="kl_push_var") == pytest.approx(0.25)
    assert measures.push_sum(run, ["rec", "kl"], window) is None  # kl's push not logged
    assert measures.push_share(run, "kl", ["rec"], window) is None


# ---------------------------------------------------------------- the rules as configured


def test_gan_phase_starts_after_gan_start_and_is_checked(study):
    lo, hi = study.windows["gan_phase"]
    assert study.names["gan_start_frac"] < lo < hi == 1.0
    with pytest.raises(StudyConfigError, match="gan_phase"):
        load_study(["windows.gan_phase=[0.5,1.0]"])


def test_the_plateau_question_is_judged_over_the_gan_phase(study):
    def window(cid: str, index: int) -> str:
        return study.claims[cid].tests[index].args["window"]

    assert window("P2", 0) == window("G3", 0) == window("G2", 2) == window("W1", 1) \
        == "gan_phase"
    for cid, index in (("G2", 3), ("W1", 2)):  # the level test: final KL, paired ratio
        test = study.claims[cid].tests[index]
        assert test.decisive and test.op == "ratio" and test.args == {
            "metric": metric.TRAIN_KL, "window": "final"}
        assert test.supported.holds_value(1.0) and test.refuted.holds_value(0.83)  # 17 % down


def test_g5_decides_on_kl_pushes_not_on_gradient_shares(study):
    decisive = [t for t in study.claims["G5"].tests if t.decisive]
    assert decisive and all(t.measure.startswith("push") for t in decisive)
    shares = [t for t in study.claims["G5"].tests if t.measure.startswith("encoder_share")]
    assert shares and not any(t.decisive for t in shares)  # reported only
    g2 = [t for t in study.claims["G2"].tests if t.decisive]
    assert any(t.measure == "push_share" and t.args["term"] == "adv" for t in g2)


def test_unpinned_gate_is_strict(study):
    gate = gate_of(study, "G1")
    assert gate.measure == "count_frac"
    # small, ldm: seeds 0.055, 0, 0.223 of GAN steps at the clamp passed "< 0.5"
    assert not GateResult(gate, {0: 0.055, 1: 0.0, 2: 0.223}).met
    assert GateResult(gate, {0: 0.01, 1: 0.0, 2: 0.04}).met


def test_f3_gate_reads_the_bulk_not_the_tail(study):
    gate = gate_of(study, "F3")
    run = fake_run(**{metric.LATENT_LOGVAR_MEAN: np.full(STEPS, -7.0),
                      metric.LATENT_LOGVAR_MIN: np.full(STEPS, -28.0)})  # tail past, bulk not
    value = measures.MEASURES[gate.measure](
        run, **{**gate.args, "window": study.windows[gate.args["window"]]})
    assert value == pytest.approx(-7.0) and not gate.holds.holds_value(value)
    assert gate.holds.holds_value(-12.0)


def test_f4_is_per_dim_and_gated_on_beta_binding(study):
    test = study.claims["F4"].tests[0]
    assert test.decisive and test.measure == "per_dim"
    assert {g.arm for g in test.gates} == {"z1", "z16"}
    assert all(g.measure == "encoder_share_of" and not g.holds.holds_value(1e-5)
               for g in test.gates)  # ldm's KL share at β = 1e-6 never passes
    assert not study.claims["F4"].tests[1].decisive  # total KL: reported


# ---------------------------------------------------------------- marginal verdicts


def _test(supported: str, refuted: str, op: str = "value", resolution: float | None = None
          ) -> Test:
    return Test("t", "a", "mean", {}, vs="b" if op != "value" else None, op=op,
                supported=Condition.parse(supported), refuted=Condition.parse(refuted),
                resolution=resolution)


def _judge(test: Test, values: list[float], resolution: float):
    a = dict(enumerate(values))
    b = dict.fromkeys(a, 1.0)
    return judge(lambda arm, measure, args: a if arm == "a" else b, test, 0.95, resolution)


def test_a_verdict_decided_within_the_resolution_is_marginal():
    refuted = _test("< 0.8", "> 0.95")
    clear = _judge(refuted, [0.99, 1.0, 1.01], 0.02)  # lower bound 0.975: 2.6 % past 0.95
    assert clear.verdict == NOT_SUPPORTED and not clear.marginal and clear.shown == NOT_SUPPORTED
    # G4 (mean, small): [0.951, 1.09] against "> 0.95": 0.0014 past the line
    iv = Interval(1.02, 0.9514, 1.09, 3)
    assert Condition.parse("> 0.95").margin(iv) == pytest.approx(0.0014 / 0.95)
    edge = _judge(refuted, [0.982, 1.0, 1.018], 0.02)  # lower bound 0.955: 0.6 % past
    assert edge.verdict == NOT_SUPPORTED and 0.95 < edge.interval.lo < 0.95 * 1.02
    assert edge.marginal and edge.shown == "marginal (not supported)"
    assert not _judge(refuted, [0.982, 1.0, 1.018], 0.0).marginal  # resolution 0: never
    within = _test("within -0.05 0.05", "outside -0.1 0.1")
    assert _judge(within, [0.0475, 0.048, 0.0485], 0.02).marginal  # upper bound 0.0492


def test_marginal_on_a_log_scale_and_per_test_resolution():
    ratio = _test("> 2", "< 1.2", op="ratio")
    values = [2.15, 2.2, 2.25]  # geometric interval's lower bound 2.08: a factor 1.04 past 2
    assert t_interval(values, log=True).lo == pytest.approx(2.079, abs=0.002)
    result = _judge(ratio, values, 0.02)
    assert result.verdict == SUPPORTED and not result.marginal
    assert _judge(ratio, values, 0.05).marginal
    own = _test("> 2", "< 1.2", op="ratio", resolution=0.5)
    assert _judge(own, values, 0.0).marginal  # the test's own resolution wins
    assert _judge(own, values, 0.0).shown == "marginal (supported)"
    assert not _judge(own, [1.5, 1.6, 1.7], 0.0).marginal  # undecided: never marginal
    assert _judge(own, [1.5, 1.6, 1.7], 0.0).verdict == INCONCLUSIVE


def test_a_claim_resting_on_a_marginal_test_is_marginal():
    assert claim_marginal(SUPPORTED, [(SUPPORTED, False), (SUPPORTED, True)])
    assert not claim_marginal(SUPPORTED, [(SUPPORTED, False), (SUPPORTED, False)])
    assert claim_marginal(NOT_SUPPORTED, [(NOT_SUPPORTED, True), (SUPPORTED, False)])
    # a plain refutation is not made marginal by a second, marginal one
    assert not claim_marginal(NOT_SUPPORTED, [(NOT_SUPPORTED, True), (NOT_SUPPORTED, False)])
    assert not claim_marginal(INCONCLUSIVE, [(INCONCLUSIVE, False), (SUPPORTED, True)])


# ---------------------------------------------------------------- the summary's horizon


def test_every_summary_row_carries_its_horizon(study):
    claim = study.claims["C1"]
    results = [ClaimResult(claim, "ldm", [], SUPPORTED, marginal=True, horizon=0.265),
               ClaimResult(claim, "mean", [], INCONCLUSIVE, horizon=0.0531)]
    table = summary_table(study, results)
    head, _, row = table.splitlines()[:3]
    assert "small, 800 steps, GAN from 400" in head
    assert "**marginal (supported)**" in row and "**inconclusive**" in row
    assert "small: 800 steps, GAN from 400" in row
    assert "ldm +0.265" in row and "mean +0.0531" in row
    assert study.raw["horizon"]["args"] == {"metric": metric.TRAIN_KL, "window": "before_gan"}
