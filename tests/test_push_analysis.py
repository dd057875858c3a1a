"""The KL push read back from a run: the diagnosis says which term pushed KL which way before
and after gan_start (a direction only when the signs are consistent), kl_curves.png draws it,
vaegan-compare tabulates it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers.synthetic import GS, T, make_run
from vaegan.analysis.compare import compare_runs
from vaegan.analysis.diagnose import diagnose
from vaegan.analysis.plots import plot_kl_curves
from vaegan.analysis.push import Push, direction, sign_test
from vaegan.analysis.runs import load_run
from vaegan.vocab import metric_names as metric

RNG = np.random.default_rng(1)


def pushing_run(root: Path) -> Path:
    """KL rising then settling; reconstruction pushes KL up before gan_start, the adversarial
    term pushes it down after, LPIPS has no direction (signs alternate), β·KL always down."""
    kl = 3000 * (1 - np.exp(-T / 500)) + 10
    before = T < GS
    alternating = np.where(np.arange(len(T)) % 2 == 0, 1.0, -1.0)
    train = {
        metric.TRAIN_KL: kl, metric.TRAIN_REC: 100 * np.exp(-T / 800) + 5,
        metric.grad(metric.REC, metric.KL_PUSH):
            np.where(before, 500.0, 5.0) * (1 + 0.1 * RNG.random(len(T))),
        metric.grad(metric.REC, metric.KL_PUSH_MU): np.full(len(T), 300.0),
        metric.grad(metric.REC, metric.KL_PUSH_VAR): np.full(len(T), 200.0),
        metric.grad(metric.PERCEPTUAL, metric.KL_PUSH): 80.0 * alternating,
        metric.grad(metric.KL, metric.KL_PUSH): np.full(len(T), -0.02),
        metric.grad(metric.ADV, metric.KL_PUSH): np.where(before, np.nan, -900.0),
    }
    return make_run(root, train, config={"beta": 1e-6})


def test_the_diagnosis_names_each_terms_push_before_and_after_gan_start(tmp_path):
    d = diagnose(load_run(pushing_run(tmp_path / "r")))
    ev = d.evidence
    assert ev["kl_push_median_rec_before_gan"] > 400 and ev["kl_push_up_frac_rec_before_gan"] == 1
    assert ev["kl_push_median_adv_after_gan"] == -900 and ev["kl_push_up_frac_adv_after_gan"] == 0
    assert "kl_push_adv_before_gan" not in ev  # the adversarial term exists only after
    before = next(s for s in d.explanation if s.startswith("Before gan_start (KL push"))
    after = next(s for s in d.explanation if s.startswith("After gan_start (KL push"))
    assert "pushed up by reconstruction" in before and "pushed down by β·KL" in before
    assert "no consistent direction" in before and "LPIPS" in before.split("direction")[1]
    assert "pushed down by adversarial" in after


def test_a_direction_needs_consistent_signs():
    assert sign_test(0.5, 12) == 1.0 and sign_test(1.0, 12) < 0.001
    assert direction(Push("rec", 1e5, None, None, 12, median=4e4, up=0.5)) == "mixed"
    assert direction(Push("rec", -1.0, None, None, 12, median=-1.0, up=1 / 12)) == "down"
    assert direction(Push("rec", 1.0, None, None, 6, median=1.0, up=5 / 6)) == "mixed"  # n=6


def test_kl_curves_gets_a_push_panel_and_compare_a_push_column(tmp_path):
    run_dir = pushing_run(tmp_path / "r")
    run = load_run(run_dir)
    with_push = Image.open(plot_kl_curves(run, tmp_path / "with.png")).size
    plain = make_run(tmp_path / "plain", {metric.TRAIN_KL: np.linspace(10, 100, len(T))})
    without = Image.open(plot_kl_curves(load_run(plain), tmp_path / "without.png")).size
    assert with_push[1] > without[1]  # one more panel, taller figure
    comparison = compare_runs([run_dir], out_dir=tmp_path / "cmp")
    table = comparison.table.read_text()
    assert "KL push after gan_start (median)" in table and "-900" in table
