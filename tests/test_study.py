"""The KL study: every arm trains the regime it declares, every rule can come out each way on
synthetic curves (and an unmet gate never refutes), GAN runs pair with their no-GAN branch,
and the study runs end to end at tiny scale."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vaegan.analysis.runs import Run, Series, load_run
from vaegan.study import measures
from vaegan.study.__main__ import main
from vaegan.study.config import StudyConfigError, load_study
from vaegan.study.evaluate import RunTable, judge_claim
from vaegan.study.expressions import ExpressionError, evaluate_expr, expand
from vaegan.study.pairs import nogan_view
from vaegan.study.plan import makespan, plan
from vaegan.study.regimes import check_arm, expected_beta
from vaegan.study.rules import (
    INCONCLUSIVE,
    NOT_RUN,
    NOT_SUPPORTED,
    REPORTED,
    SUPPORTED,
    Condition,
    Gate,
    Test,
    claim_verdict,
    decide,
    judge,
)
from vaegan.study.runner import Job, run_jobs
from vaegan.study.stats import t_interval
from vaegan.vocab import metric_names as metric

# Every claim of docs/claims.md the study judges.
CLAIMS = ["C1", "C2", "C3", "C4", "F1", "F2", "F3", "F4", "P2", "G1", "G2", "G3", "G4", "G5",
          "W1"]
VERDICTS = {SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_RUN}


@pytest.fixture(scope="module")
def study():
    return load_study([])


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


@pytest.mark.parametrize(
    "a, b, overlap",
    [("> 1.5", "< 1.1", False), ("> 1", "< 1.1", True), ("within -0.05 0.05", "outside -0.1 0.1",
     False), ("within -0.1 0.1", "outside -0.05 0.05", True), ("< 0.5", "> 0.5", False)],
)
def test_band_overlap(a, b, overlap):
    assert Condition.parse(a).overlaps(Condition.parse(b)) is overlap


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
    assert claim_verdict([SUPPORTED, NOT_RUN]) == SUPPORTED
    assert claim_verdict([NOT_RUN, REPORTED]) == NOT_RUN


def test_judge_pairs_arms_by_seed_and_an_unmet_gate_never_refutes():
    values = {"a": {0: 4.0, 1: 4.4, 2: 3.6, 3: None}, "b": {0: 1.0, 1: 1.1, 2: 0.9, 3: 1.0},
              "g": {0: 1.0, 1: 1.0, 2: -1.0, 3: 1.0}}
    test = Test("a twice b", "a", "mean", {}, vs="b", op="ratio",
                supported=Condition.parse("> 2"), refuted=Condition.parse("< 1"))
    result = judge(lambda arm, m, args: values[arm], test, 0.95)
    assert result.values == pytest.approx({0: 4.0, 1: 4.0, 2: 4.0})  # seed 3 has no pair
    assert result.verdict == SUPPORTED
    flipped = dataclasses.replace(test, arm="b", vs="a")
    assert judge(lambda arm, m, args: values[arm], flipped, 0.95).verdict == NOT_SUPPORTED
    gated = dataclasses.replace(flipped, gates=(Gate("g positive", "g", "mean", {},
                                                     Condition.parse("> 0")),))
    result = judge(lambda arm, m, args: values[arm], gated, 0.95)  # seed 2 fails the gate
    assert result.verdict == INCONCLUSIVE and result.missing == "gate: g positive"
    missing = judge(lambda arm, m, args: {0: None}, test, 0.95)
    assert missing.verdict == INCONCLUSIVE and "no value" in missing.missing


# ---------------------------------------------------------------- synthetic runs

S, G = 100, 50  # synthetic runs: 100 steps, GAN (where on) from 50
X = np.arange(S, dtype=float)
SEEDS = (0, 1, 2)
Curves = dict[str, np.ndarray]


def ramp(t0: float, t1: float) -> np.ndarray:
    """0 before t0, 1 after t1, linear between."""
    return np.clip((X - t0) / (t1 - t0), 0.0, 1.0)


def synth_run(series: Curves, gan: bool, control: Curves | None = None, path: str = "fake") -> Run:
    """A run of S steps; a GAN run with `control` gets its no-GAN branch from step G."""
    def to_series(curves: Curves, lo: float) -> dict[str, Series]:
        keep = X >= lo
        return {k: Series(X[keep], np.broadcast_to(np.asarray(v, float), X.shape)[keep])
                for k, v in curves.items()}

    info = {"steps": S, "gan_start": G if gan else None}
    branch = None
    if gan and control is not None:
        branch = Run(Path(path) / "control", Path(path) / "control/m.csv", "gen_step",
                     to_series({**series, **control}, G), config={"loss": {"gan": False}},
                     info={"steps": S, "gan_start": None, "fork_step": G, "branch": "control"})
    return Run(Path(path), Path(path) / "m.csv", "gen_step", to_series(series, 0),
               config={"loss": {"gan": gan}}, info=info, control=branch)


def grads(**terms: tuple[float, float]) -> Curves:
    """Constant gradient norms of each term on the encoder and the decoder."""
    out = {}
    for term, (enc, dec) in terms.items():
        out[metric.grad(term, metric.ENCODER)] = np.full(S, enc)
        out[metric.grad(term, metric.DECODER)] = np.full(S, dec)
    return out


# Per claim: the arms' curves for one seed, from that seed's outcome: "sup" (the data the
# claim predicts), "ref" (the opposite), "gate" (refuting data with the claim's gate unmet).
# Each arm: (gan, main curves, no-GAN branch curves from G (GAN arms; defaults to main)).
def scenario_C1(o: str):
    rise = 4.0 if o == "sup" else 1.0
    kl = 10 * (1 + (rise - 1) * ramp(0, 10))
    rec = 1 - (0.5 if o == "sup" else 0.0) * ramp(0, 10)
    strong = 10 * (1 + (0.2 if o == "sup" else rise - 1) * ramp(0, 10))
    return {"base": (True, {metric.TRAIN_KL: kl, metric.TRAIN_REC: rec}, {}),
            "strong_kl": (False, {metric.TRAIN_KL: strong}, None)}


def scenario_C2(o: str):
    kl = 10 + 100 * ramp(0, 100)
    share = 0.8 if o == "sup" else 0.1
    logvar = -5.0 if o != "gate" else -1.0
    return {"base": (True, {metric.TRAIN_KL: kl, metric.TRAIN_KL_VAR: 2 + share * (kl - 10),
                            metric.LATENT_LOGVAR_MEAN: np.full(S, logvar)}, {})}


def _rec(o: str) -> np.ndarray:
    """Reconstruction settled in the last fifth, except for "gate" (still improving 18 %)."""
    return 1 - 0.5 * (ramp(0, 100) if o == "gate" else ramp(0, 50))


def scenario_C3(o: str):
    sup = o == "sup"  # refuting: KL still rising over the last fifth, nothing active
    return {"base": (True, {metric.TRAIN_KL: 10 + 40 * ramp(0, 50) if sup else 10 + X,
                            metric.TRAIN_REC: _rec(o) if o != "ref" else np.full(S, 1.0),
                            metric.LATENT_ACTIVE_UNITS: np.full(S, 800.0 if sup else 10.0),
                            metric.LATENT_TOTAL_DIMS: np.full(S, 1000.0)}, {})}


def scenario_C4(o: str):
    sup = o == "sup"
    return {"base": (True, {metric.TRAIN_KL: 10 + X if sup else np.full(S, 10.0),
                            metric.TRAIN_REC: _rec(o)}, {}),
            "strong_kl": (False, {metric.TRAIN_KL: np.full(S, 5.0 if sup else 10.0)}, None)}


def scenario_F1(o: str):
    base = np.full(S, 100.0) if o != "gate" else 10.0 * X  # still rising: not settled
    warm = np.full(S, 50.0) if o == "sup" else base
    return {"base": (True, {metric.TRAIN_KL: base}, {}),
            "warmup": (False, {metric.TRAIN_KL: warm}, None)}


def scenario_F2(o: str):
    return {"base": (True, {metric.TRAIN_KL: np.full(S, 100.0)}, {}),
            "mean": (False, {metric.TRAIN_KL: np.full(S, 20.0 if o == "sup" else 100.0)}, None)}


def scenario_F3(o: str):
    bulk = -5.0 if o == "gate" else -15.0  # "gate": only the tail went past -10
    return {"base": (True, {metric.TRAIN_KL: np.full(S, 100.0),
                            metric.LATENT_LOGVAR_MEAN: np.full(S, bulk),
                            metric.LATENT_LOGVAR_MIN: np.full(S, -25.0)}, {}),
            "clamp10": (False, {metric.TRAIN_KL: np.full(S, 50.0 if o == "sup" else 100.0)}, None)}


def scenario_F4(o: str):
    kl_grad = (1e-5 if o == "gate" else 1.0, 0.0)  # "gate": β does not bind (ldm's 1e-5)
    binds = grads(kl=kl_grad, rec=(9.0, 9.0))
    return {"z1": (False, {metric.TRAIN_KL: np.full(S, 200.0 if o == "sup" else 5.0), **binds,
                           metric.LATENT_TOTAL_DIMS: np.full(S, 256.0)}, None),
            "z16": (False, {metric.TRAIN_KL: np.full(S, 100.0), **binds,
                            metric.LATENT_TOTAL_DIMS: np.full(S, 4096.0)}, None)}


def scenario_P2(o: str):
    if o == "sup":  # rises, then flat once the GAN is on
        kl = 10 + 2 * np.minimum(X, G)
    elif o == "ref":  # keeps rising
        kl = 10 + 2 * X
    else:  # flat before gan_start (gate unmet), moving after
        kl = 100 + 3 * np.maximum(X - G, 0)
    return {"base": (True, {metric.TRAIN_KL: kl}, {})}


def _adv(o: str, hits: float) -> Curves:
    return {metric.TRAIN_ADAPTIVE_CLAMP_HITS: np.full(S, hits if o == "gate" else 0.0)}


def scenario_G1(o: str):
    after = X >= G
    hf = np.where(after, 0.6 if o == "sup" else 0.4, 0.4)
    low = np.where(after, 1.0 if o == "sup" else 0.5, 1.0)
    return {"base": (True, {metric.PROBE_HF_RATIO: hf, metric.PROBE_LOWPASS_L1: low, **_adv(o, 40)},
                     {metric.PROBE_HF_RATIO: np.full(S, 0.4),
                      metric.PROBE_LOWPASS_L1: np.full(S, 1.0)})}


FLAT_KL = 10 + 2 * np.minimum(X, G)  # rises, flat from G
SLOWING_KL = FLAT_KL + 0.5 * np.maximum(X - G, 0)  # a quarter of its pace after G: slows
RISING_KL = 10 + 2 * X  # keeps its pace: no plateau forms


def _control_kl(o: str) -> np.ndarray:
    """The no-GAN branch's KL: flat ("sup"), slowing but still moving ("ref"), or at its
    before-GAN pace ("gate": the plateau gate unmet)."""
    return {"sup": FLAT_KL, "ref": SLOWING_KL, "gate": RISING_KL}[o]


def pushes(part: str = metric.KL_PUSH, **terms: float) -> Curves:
    """Constant KL pushes, grad(<term>, <part>)."""
    return {metric.grad(term, part): np.full(S, value) for term, value in terms.items()}


def scenario_G2(o: str):
    adv = (1.0, 9.0) if o == "sup" else (5.0, 5.0)
    push = pushes(adv=0.01 if o == "sup" else -1.0, rec=1.0, perceptual=0.5)
    return {"base": (True, {metric.TRAIN_KL: FLAT_KL, **grads(adv=adv, rec=(5.0, 5.0)), **push,
                            **_adv(o, 40)}, {metric.TRAIN_KL: _control_kl(o)})}


def scenario_G3(o: str):
    return {"base": (True, {metric.TRAIN_KL: FLAT_KL}, {metric.TRAIN_KL: _control_kl(o)})}


def scenario_G4(o: str):
    perc = (1.0, 9.0) if o == "sup" else (5.0, 5.0)
    return {"base": (True, grads(perceptual=perc, rec=(5.0, 5.0)), {})}


def scenario_G5(o: str):
    nogan = pushes(rec=1.0, perceptual=0.5, kl=-1e-6)
    gan = pushes(rec=0.3, perceptual=0.1, kl=-1e-6, adv=0.2) if o == "sup" else \
        {**nogan, **pushes(adv=0.2)}
    return {"base": (True, {**gan, **_adv(o, 40)}, nogan)}


def scenario_W1(o: str):
    after = X >= G
    val = np.where(after, 2.0 if o == "sup" else 1.0, 1.0)
    return {"heavy": (True, {metric.VAL_REC: val, metric.TRAIN_KL: FLAT_KL, **_adv(o, 40)},
                      {metric.VAL_REC: np.full(S, 1.0), metric.TRAIN_KL: _control_kl(o)})}


SCENARIOS: dict[str, Callable[[str], dict]] = {
    cid: globals()[f"scenario_{cid}"] for cid in CLAIMS}


def synthetic_table(study, cid: str, outcomes: dict[int, str]) -> RunTable:
    """A RunTable over synthetic runs: seed k of each arm follows `outcomes[k]`."""
    arms = {seed: SCENARIOS[cid](o) for seed, o in outcomes.items()}

    def load(regime: str, role: str, seed: int) -> Run | None:
        spec = arms[seed].get(role)
        if spec is None:
            return None
        gan, main, control = spec
        return synth_run(main, gan, None if control is None else {**control})

    return RunTable(dataclasses.replace(study, seeds=tuple(outcomes)), load=load)


def gated(study, cid: str) -> bool:
    return any(t.gates for t in study.claims[cid].tests)


@pytest.mark.parametrize("cid", CLAIMS)
def test_every_rule_comes_out_each_way_on_synthetic_curves(study, cid):
    """Supported on the curves the claim predicts, not supported on the opposite ones,
    inconclusive when the seeds disagree, and inconclusive (never refuted) when a gate fails."""
    claim = study.claims[cid]

    def verdict(outcomes: dict[int, str]) -> tuple[str, list]:
        res = judge_claim(study, synthetic_table(study, cid, outcomes), claim, "ldm")
        return res.verdict, res.tests

    assert verdict({s: "sup" for s in SEEDS})[0] == SUPPORTED
    assert verdict({s: "ref" for s in SEEDS})[0] == NOT_SUPPORTED
    assert verdict({0: "sup", 1: "ref", 2: "sup"})[0] == INCONCLUSIVE
    if gated(study, cid):  # refuting data with the gate unmet: the gated tests stay open
        _, refuted = verdict({s: "ref" for s in SEEDS})
        _, tests = verdict({s: "gate" for s in SEEDS})
        for (t, r), (_, ref) in zip(tests, refuted, strict=True):
            if t.gates:
                assert ref.verdict == NOT_SUPPORTED
                assert r.verdict == INCONCLUSIVE and r.missing.startswith("gate:"), t.what


def test_every_decisive_rule_has_both_bands_and_a_gate_test(study):
    for claim in study.claims.values():
        for t in claim.tests:
            if t.decisive:
                assert t.supported is not None and t.refuted is not None
                assert not t.supported.overlaps(t.refuted)
    assert set(study.claims) == set(CLAIMS) == set(SCENARIOS)


# ---------------------------------------------------------------- measures and pairs


def test_measures_read_half_open_windows():
    x = np.arange(0, 100, dtype=float)
    run = Run(Path("f"), Path("f/m.csv"), "gen_step",
              {metric.TRAIN_KL: Series(x, 10 + x), metric.LATENT_LOGVAR_MIN: Series(x, -x / 10),
               metric.TRAIN_ADAPTIVE_CLAMP_HITS: Series(x, np.full(100, 10.0)),
               metric.LATENT_TOTAL_DIMS: Series(x[:1], np.array([10.0]))},
              info={"steps": 100, "gan_start": 50})
    assert measures.mean(run, metric.TRAIN_KL, (0.9, 1.0)) == pytest.approx(104.5)
    assert measures.mean(run, metric.TRAIN_KL, (0.4, 0.5)) == pytest.approx(54.5)  # 40..49, not 50
    assert measures.minimum(run, metric.LATENT_LOGVAR_MIN, (0.9, 1.0)) == pytest.approx(-9.9)
    assert measures.count_frac(run, metric.TRAIN_ADAPTIVE_CLAMP_HITS) == pytest.approx(10 / 50)
    assert measures.per_dim(run, metric.TRAIN_KL, (0.9, 1.0)) == pytest.approx(10.45)
    assert measures.mean(run, metric.LATENT_CLAMP_FRAC, (0.9, 1.0)) is None  # not logged


def write_run_dir(path: Path, rows: list[dict], info: dict, config: dict) -> None:
    (path / "csv").mkdir(parents=True)
    (path / ".hydra").mkdir()
    cols = sorted({k for r in rows for k in r})
    lines = [",".join(cols)] + [",".join(str(r.get(c, "")) for c in cols) for r in rows]
    (path / "csv" / "metrics.csv").write_text("\n".join(lines) + "\n")
    (path / "run_info.json").write_text(json.dumps(info))
    (path / ".hydra" / "config.yaml").write_text(json.dumps(config))


def test_a_gan_run_pairs_with_its_no_gan_branch_on_disk(tmp_path, study):
    """Synthetic run dirs as `gan_control=true` writes them: the no-GAN view is the GAN run
    before the fork and the branch after, and a paired rule reads the same steps of both."""
    steps, fork = 20, 10
    for seed in SEEDS:
        run_dir = tmp_path / "ldm" / "base" / f"seed{seed}"
        gan = [{"gen_step": t, metric.TRAIN_KL: 10 + t + (3 * (t - fork) if t >= fork else 0)}
               for t in range(steps)]
        control = [{"gen_step": t, metric.TRAIN_KL: 10 + t} for t in range(fork, steps)]
        write_run_dir(run_dir, gan, {"gan_start": fork, "steps": steps},
                      {"loss": {"gan": True}, "gan_control": True})
        write_run_dir(run_dir / "control", control, {"gan_start": None, "steps": steps,
                      "branch": "control", "fork_step": fork}, {"loss": {"gan": False}})
    s = dataclasses.replace(study, runs_dir=tmp_path, seeds=SEEDS)
    table = RunTable(s)
    view = table.get("ldm", "base@nogan", 0)
    assert view is not None and view.get(metric.TRAIN_KL).x.tolist() == list(range(steps))
    assert view.get(metric.TRAIN_KL).y.tolist() == [10 + t for t in range(steps)]
    run = table.get("ldm", "base", 0)
    assert run.get(metric.TRAIN_KL).y[-1] == 10 + 19 + 27 and run.control is not None
    assert nogan_view(load_run(tmp_path / "ldm" / "base" / "seed1")) is not None
    gan_change = table.per_seed("ldm", "base", "change", {"metric": metric.TRAIN_KL,
                                                         "window": "after_gan"})
    nogan_change = table.per_seed("ldm", "base@nogan", "change", {"metric": metric.TRAIN_KL,
                                                                 "window": "after_gan"})
    assert all(gan_change[s] > nogan_change[s] > 0 for s in SEEDS)
    level_test, level = judge_claim(s, table, s.claims["G2"], "ldm").tests[3]  # paired level
    assert level_test.op == "ratio" and level_test.args["window"] == "final"
    assert level.verdict == NOT_SUPPORTED and len(level.values) == 3


# ---------------------------------------------------------------- the study definition


def test_every_arm_trains_the_regime_it_declares(study):
    """Compose every arm as its runs are composed: β at a few steps (the real schedule), the
    reduction, the bounds and every other declared setting match the declaration."""
    problems = [p for arm in study.arms.values() for p in check_arm(study, arm)]
    assert problems == []
    warm = study.arm("ldm", "warmup")
    w, r = warm.settings["schedule.warmup_steps"], warm.settings["schedule.ramp_steps"]
    assert expected_beta(warm.settings, 0) == 0.0
    assert expected_beta(warm.settings, w + r // 2) == pytest.approx(0.5e-6)
    base = study.arm("ldm", "base").settings
    assert (base["loss.objective.rec_reduction"], base["beta"], base["schedule"]) == \
        ("sum", 1e-6, "constant")
    assert (base["model.posterior.logvar_min"], base["model.posterior.logvar_max"]) == (-30, 20)
    assert study.arm("ldm", "clamp10").changes == {
        "loss.gan": False, "model.posterior.logvar_min": -10, "model.posterior.logvar_max": 10}
    assert study.arm("mean", "base").settings["loss.objective.rec_reduction"] == "mean"


def test_a_forgotten_regime_setting_is_caught(study):
    """Without `schedule` the arm would inherit conf/train.yaml's linear warm-up."""
    arm = study.arm("ldm", "base")
    settings = {k: v for k, v in arm.settings.items() if k != "schedule"}
    problems = check_arm(study, dataclasses.replace(arm, settings=settings))
    assert any("β(0)" in p for p in problems)


@pytest.mark.parametrize(
    "override, message",
    [
        ("claims.C1.tests.0.measure=median", "unknown measure"),
        ("claims.C1.tests.0.arm=nope", "unknown arm"),
        ("claims.C1.tests.0.supported='>> 2'", "condition"),
        ("claims.C1.tests.0.refuted='> 1.2'", "bands overlap"),
        ("~claims.C1.tests.0.refuted", "both a supporting and a refuting band"),
        ("arms.base.set.gan_control=false", "needs a no-GAN branch"),
        ("claims.G1.tests.0.gates=[nope]", "unknown gate"),
        ("windows.after_gan=[0.6,0.8]", "gan_start_frac"),
        ("only=[Z9]", "unknown claim"),
        ("only_regimes=[sdxl]", "unknown"),
        ("extra=['beta=1']", "regime setting"),
        ("+scale.settings.beta=1", "regime settings"),
    ],
)
def test_broken_study_definition_names_the_problem(override, message):
    with pytest.raises(StudyConfigError, match=message):
        load_study([override])


def test_override_expressions():
    names = {"steps": 400, "gan_start_frac": 0.5}
    assert expand("gan_start={gan_start_frac*steps}", names) == "gan_start=200"
    assert expand("schedule.warmup_steps={0.1*steps}", names) == "schedule.warmup_steps=40"
    for bad in ("__import__('os').getcwd()", "steps ** 2", "steps +"):
        with pytest.raises(ExpressionError):
            evaluate_expr(bad, names)


def test_the_small_scale_fits_its_budget(study):
    """40 min of wall on 2 cores for every run and branch, by the scale's measured costs."""
    planned = plan(study)
    assert len(planned) == len(study.arms) * len(study.seeds) == 39
    assert makespan([p.cost_s for p in planned], study.workers) < 40 * 60
    assert sum(p.control_steps for p in planned) == 12 * (study.steps - study.gan_start)


# ---------------------------------------------------------------- running


def test_a_failing_run_is_reported_and_the_others_go_on(tmp_path):
    jobs = [Job(arm, 0, (), tmp_path / arm) for arm in ("a", "b", "c")]

    def train(job: Job) -> None:
        if job.arm == "b":
            raise RuntimeError("boom")

    results = run_jobs(jobs, train=train, say=lambda _: None)
    assert [r.ok for r in results] == [True, False, True]
    assert "boom" in results[1].error and (tmp_path / "b" / "study_error.txt").is_file()


@pytest.mark.slow
def test_full_scale_dry_run_prints_plan_estimate_and_what_is_missing(tmp_path, capsys):
    assert main(["scale=full", "dry_run=true", f"runs_dir={tmp_path}/runs",
                 f"extra=['data.root={tmp_path}/nodata']"]) == 0
    out = capsys.readouterr().out
    assert "plan: 39 runs" in out and "estimate:" in out and "LPIPS: vgg" in out
    assert "MISSING data" in out
    assert not (tmp_path / "runs").exists()  # trained nothing
    assert main(["scale=tiny", "dry_run=true", "stub=true", f"out_dir={tmp_path}/out"]) == 0
    stub = (tmp_path / "out" / "REPORT.md").read_text()
    assert "NOT YET RUN" in stub and "## Regimes" in stub and "### W1:" in stub


@pytest.mark.slow
def test_tiny_study_end_to_end(tmp_path):
    """Real runs at tiny scale, GAN arms with their no-GAN branch, a report per regime."""
    args = ["scale=tiny", f"runs_dir={tmp_path}/runs", f"out_dir={tmp_path}/out",
            "only=[C1,G2,W1]", "only_regimes=[ldm]"]
    assert main(args) == 0
    report = (tmp_path / "out" / "REPORT.md").read_text()
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert report.split("\n## ")[1].startswith("Regimes")  # opens with the regime table
    assert "| `ldm/base` | 1e-06, constant" in report and "paired no-GAN branch" in report
    assert "`conf/study/study.yaml` at commit `" in report
    assert "code that trained the runs" in report
    assert "1-min load average" in report and "started 20" in report
    for cid in ("C1", "G2", "W1"):
        assert results[cid]["ldm"]["verdict"] in VERDICTS, cid
        assert f"### {cid} in the ldm regime" in report
    assert (tmp_path / "out" / "plots" / "G2_ldm.png").is_file()
    run = load_run(tmp_path / "runs" / "ldm" / "base" / "seed0")
    assert run.control is not None and run.control.info["branch"] == "control"
    view = nogan_view(run)
    kl = view.get(metric.TRAIN_KL)
    assert kl.x.min() < run.gan_start <= kl.x.max()
    paired = results["G2"]["ldm"]["tests"][2]  # KL change, GAN − no-GAN, one value per seed
    assert len(paired["values"]) == 2
    assert load_run(tmp_path / "runs" / "ldm" / "heavy" / "seed1").cfg(
        "loss.objective.disc_weight") == 5.0
    # A second invocation keeps the finished runs and only rewrites the report.
    assert main([*args, "only=[C1]"]) == 0
    assert "kept" in (tmp_path / "out" / "REPORT.md").read_text()
