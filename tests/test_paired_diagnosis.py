"""The GAN-effect verdict on synthetic pairs: a GAN run and its no-GAN control forked at GS.

KL rises at 0.5 nats/step up to the fork; what each branch does after it decides the verdict,
and each of the verdicts is reached by some pair (none holds by construction).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.synthetic import GS, VAL_T, T, const, make_run, noisy
from vaegan.analysis import (
    DiagnosisThresholds,
    compare_runs,
    diagnose,
    load_run,
    write_report,
)
from vaegan.analysis.cli import diagnose_main
from vaegan.analysis.diagnose import FLAG_GAN_HEAVY
from vaegan.analysis.paired import (
    FLATTENS_ANYWAY,
    GAN_FLATTENED,
    NO_CONTROL,
    PAIR_INCONCLUSIVE,
    PAIR_MISMATCHED,
)
from vaegan.analysis.runs import find_runs
from vaegan.vocab import metric_names as metric

RISE, FLAT = 0.5, 0.02  # nats per step


def kl_curve(after: float) -> np.ndarray:
    return 50 + RISE * np.minimum(T, GS) + after * np.maximum(T - GS, 0)


def branch(root: Path, after: float, val_rec: float = 0.1, control: bool = False) -> Path:
    kl = kl_curve(after)
    train = {
        metric.TRAIN_KL: noisy(kl, 0.002),
        metric.TRAIN_KL_MU: noisy(0.8 * kl, 0.002),
        metric.TRAIN_KL_VAR: noisy(0.2 * kl, 0.002),
        metric.TRAIN_REC: noisy(const(0.1), 0.01),
        metric.TRAIN_BETA: const(1e-6),
        metric.LATENT_LOGVAR_MEAN: const(-3.0),
    }
    val = {metric.VAL_REC: np.full(len(VAL_T), val_rec), metric.VAL_PSNR: np.full(len(VAL_T), 25.0)}
    keep = T >= GS if control else slice(None)
    out = make_run(root, {k: v[keep] for k, v in train.items()}, val, t=T[keep])
    if control:
        info = {"gan_start": None, "branch": "control", "fork_step": GS}
        (root / "run_info.json").write_text(json.dumps(info))
    return out


def pair(root: Path, gan_after: float, control_after: float, **control_kw) -> Path:
    branch(root, gan_after)
    branch(root / "control", control_after, control=True, **control_kw)
    return root


@pytest.mark.parametrize(
    ("gan_after", "control_after", "verdict"),
    [
        (FLAT, RISE, GAN_FLATTENED),  # the control keeps rising: the GAN did it
        (FLAT, FLAT, FLATTENS_ANYWAY),  # both flatten: not the GAN
        (RISE, RISE, PAIR_INCONCLUSIVE),  # no plateau to explain
        (0.3, 0.4, PAIR_INCONCLUSIVE),  # the control rises, the GAN run not clearly flatter
    ],
)
def test_each_verdict_is_reachable(tmp_path, gan_after, control_after, verdict):
    effect = diagnose(load_run(pair(tmp_path, gan_after, control_after))).gan_effect
    assert effect is not None and effect.verdict == verdict, effect.explanation
    ev = effect.evidence
    assert ev["pair_fork"] == GS and ev["pair_late_hi"] == T[-1]
    late = {r.name: r for r in effect.rows if r.lo == ev["pair_late_lo"]}
    expected_gap = np.mean(kl_curve(gan_after) - kl_curve(control_after), where=T >= 1500)
    assert late[metric.TRAIN_KL].diff == pytest.approx(expected_gap, rel=0.05, abs=5)
    assert {metric.TRAIN_KL_MU, metric.TRAIN_KL_VAR, metric.LATENT_LOGVAR_MEAN,
            metric.VAL_REC} <= set(late)


def test_without_a_control_no_causal_claim(tmp_path):
    effect = diagnose(load_run(branch(tmp_path, FLAT))).gan_effect
    assert effect is not None and effect.verdict == NO_CONTROL


def test_too_few_points_after_the_fork_is_inconclusive_with_its_gate(tmp_path):
    run = load_run(pair(tmp_path, FLAT, RISE))
    effect = diagnose(run, None).gan_effect
    assert effect is not None and effect.verdict == GAN_FLATTENED
    strict = DiagnosisThresholds.from_overrides({"min_window_points": 10_000})
    effect = diagnose(run, strict).gan_effect
    assert effect is not None and effect.verdict == PAIR_INCONCLUSIVE
    assert "gate" in effect.explanation[0]


def test_worse_reconstruction_with_the_gan_flags_w1_on_the_pair(tmp_path):
    run = load_run(pair(tmp_path, FLAT, FLAT, val_rec=0.05))  # control reconstructs better
    d = diagnose(run)
    assert FLAG_GAN_HEAVY in d.flags
    assert any("worse with the GAN than without" in s for s in d.gan_effect.explanation)


def test_the_control_belongs_to_its_run(tmp_path, capsys):
    run_dir = pair(tmp_path / "sweep" / "0", FLAT, RISE)
    pair(tmp_path / "sweep" / "1", FLAT, FLAT)
    assert find_runs(tmp_path / "sweep") == [tmp_path / "sweep" / "0", tmp_path / "sweep" / "1"]
    run = load_run(run_dir)
    assert run.control is not None and run.control.path == run_dir / "control"
    assert run.get(metric.TRAIN_KL).x[0] == 0  # the GAN run's own metrics, not the control's

    assert diagnose_main([str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"GAN effect: {GAN_FLATTENED}" in out
    report = (run_dir / "diagnosis.md").read_text()
    assert "## Is the plateau the GAN's doing?" in report and "no-GAN" in report
    assert (run_dir / "plots" / "gan_control.png").is_file()

    result = compare_runs([tmp_path / "sweep"])
    assert [d.gan_effect.verdict for d in result.diagnoses] == [GAN_FLATTENED, FLATTENS_ANYWAY]
    assert "GAN effect" in result.table.read_text()


def test_report_without_a_control_says_no_causal_claim(tmp_path):
    run_dir = branch(tmp_path, FLAT)
    write_report(run_dir)
    assert NO_CONTROL in (run_dir / "diagnosis.md").read_text()


def _record_fork(run_dir: Path, fork: str) -> None:
    path = run_dir / "run_info.json"
    info = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**info, "fork_id": fork}))


def test_a_control_forked_from_another_run_is_refused(tmp_path):
    """An old control/ left beside a new GAN branch was diagnosed as if it were its control."""
    run_dir = pair(tmp_path, FLAT, RISE)
    _record_fork(run_dir, "aaaa")
    _record_fork(run_dir / "control", "aaaa")
    assert diagnose(load_run(run_dir)).gan_effect.verdict == GAN_FLATTENED  # its own control
    _record_fork(run_dir / "control", "bbbb")
    effect = diagnose(load_run(run_dir)).gan_effect
    assert effect.verdict == PAIR_MISMATCHED and not effect.rows
    assert "forked from checkpoint bbbb, this run's fork is aaaa" in effect.explanation[0]
