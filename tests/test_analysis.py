"""vaegan.analysis on synthetic run dirs with known KL behaviour (no training, fast)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.synthetic import GS, VAL_T, N, T, const, make_run, noisy, val_of
from vaegan.analysis import (
    DiagnosisThresholds,
    RunDirError,
    compare_runs,
    diagnose,
    load_run,
    write_report,
)
from vaegan.analysis.cli import compare_main, diagnose_main
from vaegan.analysis.diagnose import (
    BENIGN,
    COLLAPSE,
    FLAG_CLAMP,
    FLAG_GAN_HEAVY,
    FLAG_PLATEAU,
    INCONCLUSIVE,
    MALIGNANT,
    grad_means,
    last_step_before,
)
from vaegan.analysis.runs import find_metrics
from vaegan.vocab import metric_names as metric


def benign(root: Path, **kw) -> Path:
    kl = 400 * (1 - np.exp(-T / 300))
    rec = 0.05 + 0.2 * np.exp(-T / 400)
    train = {
        metric.TRAIN_KL: noisy(kl + 0.1),
        metric.TRAIN_REC: noisy(rec),
        metric.TRAIN_BETA: const(1e-4),
        metric.LATENT_TOTAL_DIMS: const(4096),
        metric.LATENT_ACTIVE_UNITS: const(3000),
        metric.LATENT_CLAMP_FRAC: const(0.0),
        metric.LATENT_LOGVAR_MIN: const(-8.0),
    }
    return make_run(root, train, {metric.VAL_REC: val_of(rec)}, **kw)


def explosion(root: Path) -> Path:
    rec = 0.1 + 0.05 * np.exp(-T / 200)
    train = {
        metric.TRAIN_KL: noisy(5 * T + 1),
        metric.TRAIN_REC: noisy(rec, 0.002),
        metric.TRAIN_BETA: const(1e-6),
        metric.LATENT_TOTAL_DIMS: const(4096),
        metric.LATENT_CLAMP_FRAC: np.where(T > 1000, 0.3, 0.0),
        metric.LATENT_LOGVAR_MIN: const(-30),
    }
    return make_run(
        root, train, config={"loss.rec_reduction": "sum", "beta": 1e-6, "gan_start": 10**6}
    )


def plateau(root: Path, already_flat: bool = False) -> Path:
    """KL rises at 0.5 nats/step until gan_start, then 0.02 nats/step; adv grads hit the decoder."""
    if already_flat:
        kl = 500 * (1 - np.exp(-T / 150))
    else:
        kl = np.where(T < GS, 0.5 * T, 0.5 * GS + 0.02 * (T - GS)) + 1
    after = T >= GS
    train = {
        metric.TRAIN_KL: noisy(kl, 0.002),
        metric.TRAIN_REC: noisy(0.05 + 0.2 * np.exp(-T / 400)),
        metric.TRAIN_G_ADV: np.where(after, 0.5, 0.0),
        metric.LATENT_TOTAL_DIMS: const(4096),
        metric.grad(metric.ADV, metric.ENCODER): np.where(after, 0.01, 0.0),
        metric.grad(metric.ADV, metric.DECODER): np.where(after, 1.0, 0.0),
        metric.grad(metric.REC, metric.ENCODER): const(0.5),
        metric.grad(metric.REC, metric.DECODER): const(1.0),
        metric.grad(metric.KL, metric.ENCODER): const(0.1),
        metric.grad(metric.KL, metric.DECODER): const(0.0),
        metric.LATENT_MU_MEAN: const(0.0),
        metric.LATENT_MU_STD: 1 + T / N,
        metric.LATENT_LOGVAR_MEAN: -3 * T / N,
        metric.LATENT_VAR_MEAN: np.exp(-3 * T / N),
    }
    return make_run(root, train)


def overweighted(root: Path) -> Path:
    """Recon falls until gan_start, then rises 60 %; val PSNR drops 2 dB."""
    kl = 300 * (1 - np.exp(-T / 200))
    rec = np.where(T < GS, 0.05 + 0.2 * np.exp(-T / 150), 0.05 + 0.03 * (T - GS) / (N - GS))
    psnr = np.where(VAL_T < GS, 20 + 8 * VAL_T / GS, 28 - 2 * (VAL_T - GS) / (N - GS))
    train = {
        metric.TRAIN_KL: noisy(kl),
        metric.TRAIN_REC: noisy(rec, 0.002),
        metric.LATENT_TOTAL_DIMS: const(4096),
    }
    val = {metric.VAL_REC: val_of(rec), metric.VAL_PSNR: psnr}
    return make_run(root, train, val, val_has_gen_step=False)


# ---------------------------------------------------------------- loading


def test_load_run_aligns_sparse_rows_on_gen_step(tmp_path: Path) -> None:
    run = load_run(overweighted(tmp_path / "r"))
    assert run.x_name == "gen_step"
    assert np.array_equal(run.get(metric.TRAIN_KL).x, T)
    # val rows carry only Lightning's step (= 2 x gen_step): gen_step is interpolated
    assert np.allclose(run.get(metric.VAL_PSNR).x, VAL_T)
    assert run.gan_start == GS and run.rec_reduction == "mean"
    assert run.logvar_bounds == (-30.0, 20.0)
    assert run.get(metric.train("nonexistent")) is None


def test_newest_metrics_file_wins(tmp_path: Path) -> None:
    for i, age in ((0, 100), (1, 0)):
        d = tmp_path / "csv" / f"version_{i}"
        d.mkdir(parents=True)
        (d / "metrics.csv").write_text(f"gen_step,{metric.TRAIN_KL}\n0,{i}\n1,{i}\n")
        os.utime(d / "metrics.csv", (1e9 - age, 1e9 - age))
    assert find_metrics(tmp_path).parent.name == "version_1"
    assert load_run(tmp_path).get(metric.TRAIN_KL).last == 1


def test_duplicate_steps_are_averaged_and_step_is_the_fallback(tmp_path: Path) -> None:
    (tmp_path / "metrics.csv").write_text(
        f"epoch,step,{metric.TRAIN_KL}\n0,0,1\n0,0,3\n0,5,\n0,7,2\n")
    run = load_run(tmp_path)
    assert run.x_name == "step"
    kl = run.get(metric.TRAIN_KL)
    assert kl.x.tolist() == [0, 7] and kl.y.tolist() == [2, 2]


def test_dir_without_metrics_is_a_run_dir_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="no metrics.csv"):
        load_run(tmp_path / "empty")
    assert diagnose_main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "empty" in err and "Traceback" not in err


# ---------------------------------------------------------------- verdicts


def test_benign_rise(tmp_path: Path) -> None:
    d = diagnose(load_run(benign(tmp_path / "r")))
    assert d.verdict == BENIGN, d.explanation
    assert FLAG_CLAMP not in d.flags
    assert d.evidence["kl_final"] == pytest.approx(400, rel=0.05)
    assert d.evidence["kl_per_dim_final"] == pytest.approx(400 / 4096, rel=0.05)
    assert abs(d.evidence["kl_rel_change_last"]) < 0.1
    assert any("benign" in s for s in d.explanation)
    # KL saturates on its own (exp, tau=300): its slowdown at gan_start=1000 is not the GAN's
    assert FLAG_PLATEAU not in d.flags
    assert d.evidence["kl_slope_ratio_pre_gan"] == pytest.approx(np.exp(-400 / 300), rel=0.1)
    assert any("saturating on its own" in s for s in d.explanation)


def test_malignant_explosion_names_its_causes(tmp_path: Path) -> None:
    d = diagnose(load_run(explosion(tmp_path / "r")))
    assert d.verdict == MALIGNANT, d.explanation
    # linear growth over the last quarter [1500, 2000]: slope*500 / mean(5t) = 500/1750
    assert d.evidence["kl_rel_change_last"] == pytest.approx(500 / 1750, rel=0.05)
    assert d.evidence["effective_beta"] == pytest.approx(1e-6 / (3 * 64 * 64))
    assert FLAG_CLAMP in d.flags
    causes = " ".join(d.causes)
    assert "sum" in causes and "effective β" in causes and "clamp" in causes
    assert "latent too small" not in causes


def test_huge_kl_per_dim_on_a_tiny_latent_is_malignant(tmp_path: Path) -> None:
    kl = 60 * (1 - np.exp(-T / 100))  # flat at the end, but 30 nats per dim on 2 dims
    train = {metric.TRAIN_KL: kl, metric.TRAIN_REC: 0.1 + np.exp(-T / 100),
             metric.LATENT_TOTAL_DIMS: const(2)}
    d = diagnose(load_run(make_run(tmp_path / "r", train)))
    assert d.verdict == MALIGNANT and d.evidence["kl_per_dim_final"] == pytest.approx(30, rel=0.01)
    assert any("latent too small" in c for c in d.causes)


def test_posterior_collapse(tmp_path: Path) -> None:
    train = {
        metric.TRAIN_KL: noisy(const(1e-4), 0.1),
        metric.TRAIN_REC: noisy(const(0.2)),
        metric.LATENT_TOTAL_DIMS: const(4096),
        metric.LATENT_ACTIVE_UNITS: const(0),
    }
    d = diagnose(load_run(make_run(tmp_path / "r", train)))
    assert d.verdict == COLLAPSE, d.explanation
    assert d.evidence["kl_per_dim_final"] < 1e-7 and d.evidence["active_frac_final"] == 0


def test_plateau_after_gan_start_measures_slopes_and_grad_shares(tmp_path: Path) -> None:
    d = diagnose(load_run(plateau(tmp_path / "r")))
    assert d.verdict == BENIGN, d.explanation
    assert FLAG_PLATEAU in d.flags
    assert d.evidence["kl_slope_before_gan"] == pytest.approx(0.5, rel=0.05)
    assert d.evidence["kl_slope_after_gan"] == pytest.approx(0.02, abs=0.01)
    assert d.evidence["grad_adv_encoder_share_after_gan"] == pytest.approx(0.01 / 1.01, rel=0.01)
    assert d.evidence["grad_rec_encoder_share_after_gan"] == pytest.approx(1 / 3, rel=0.01)
    assert d.evidence["grad_kl_share_of_encoder_after_gan"] == pytest.approx(0.1 / 0.61, rel=0.01)
    text = " ".join(d.explanation)
    assert "KL flattened after GAN start" in text
    assert "consistent with G2" in text and "not consistent" not in text


def test_before_gan_window_stops_short_of_gan_start(tmp_path: Path) -> None:
    # As in real runs: no adversarial gradient is logged before gan_start (empty cells).
    root = plateau(tmp_path / "r")
    metrics = root / "csv" / "metrics.csv"
    with open(metrics, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        if row["gen_step"] and float(row["gen_step"]) < GS:
            for part in (metric.ENCODER, metric.DECODER):
                row[metric.grad(metric.ADV, part)] = ""
    with open(metrics, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    run = load_run(root)
    assert "adv" not in grad_means(run, 0, last_step_before(GS))
    assert "adv" in grad_means(run, GS, GS)
    d = diagnose(run)
    assert d.evidence["grad_kl_share_of_encoder_before_gan"] == pytest.approx(0.1 / 0.6, rel=1e-4)


def test_no_causal_claim_when_kl_was_flat_before_gan_start(tmp_path: Path) -> None:
    d = diagnose(load_run(plateau(tmp_path / "r", already_flat=True)))
    assert FLAG_PLATEAU not in d.flags
    assert any("already flattened before GAN start" in s for s in d.explanation)


def test_gan_over_weighted(tmp_path: Path) -> None:
    d = diagnose(load_run(overweighted(tmp_path / "r")))
    assert FLAG_GAN_HEAVY in d.flags, d.explanation
    assert d.evidence[f"{metric.TRAIN_REC}_change_after_gan"] == pytest.approx(0.6, rel=0.1)
    assert d.evidence[f"{metric.VAL_PSNR}_drop_after_gan"] == pytest.approx(2, rel=0.1)
    w1 = next(s for s in d.explanation if s.startswith("Reconstruction got worse"))
    assert metric.TRAIN_REC in w1 and metric.VAL_REC in w1 and metric.VAL_PSNR in w1
    assert FLAG_GAN_HEAVY not in diagnose(load_run(plateau(tmp_path / "p"))).flags


def test_short_run_is_inconclusive(tmp_path: Path) -> None:
    t = T[:5]
    d = diagnose(load_run(make_run(tmp_path / "r", {metric.TRAIN_KL: t + 1}, t=t)))
    assert d.verdict == INCONCLUSIVE and "Too little data" in d.explanation[0]


def test_thresholds_override_and_reject_unknown_names(tmp_path: Path) -> None:
    run = load_run(benign(tmp_path / "r"))
    th = DiagnosisThresholds.from_overrides(["collapse_kl_per_dim=1", "min_points=10"])
    assert th.collapse_kl_per_dim == 1.0 and th.min_points == 10
    assert diagnose(run, th).verdict == COLLAPSE
    with pytest.raises(ValueError, match="unknown threshold"):
        DiagnosisThresholds.from_overrides({"nope": 1})
    with pytest.raises(ValueError, match="not a number"):
        DiagnosisThresholds.from_overrides(["kl_growth=abc"])
    assert "kl_growth" in (DiagnosisThresholds.__doc__ or "")


# ---------------------------------------------------------------- report, CLI, compare


def test_report_and_plots_are_written(tmp_path: Path) -> None:
    run_dir = plateau(tmp_path / "r")
    d = write_report(run_dir)
    md = (run_dir / "diagnosis.md").read_text()
    assert md.startswith(f"# KL diagnosis: {d.verdict}")
    assert "kl_slope_before_gan" in md and "## Thresholds used" in md
    for name in ("kl_curves", "latent_stats", "grad_shares"):
        assert (run_dir / "plots" / f"{name}.png").stat().st_size > 1000
        assert f"(plots/{name}.png)" in md
    assert not (run_dir / "plots" / "kl_per_dim.png").exists()  # not logged in this run


def test_kl_per_dim_heatmap(tmp_path: Path) -> None:
    train = {metric.TRAIN_KL: 10 * (1 - np.exp(-T / 300)) + 0.1}
    train |= {metric.latent_kl_dim(i): (i + 1) * (1 - np.exp(-T / 300)) + 1e-3 for i in range(4)}
    run_dir = make_run(tmp_path / "r", train)
    write_report(run_dir)
    assert (run_dir / "plots" / "kl_per_dim.png").stat().st_size > 1000


def test_diagnose_cli(tmp_path: Path, capsys) -> None:
    run_dir = explosion(tmp_path / "r")
    assert diagnose_main([str(run_dir), "--threshold", "kl_growth=0.05"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"verdict: {MALIGNANT}") and "diagnosis.md" in out
    assert "| kl_growth | 0.05 |" in (run_dir / "diagnosis.md").read_text()
    assert diagnose_main([str(run_dir), "--threshold", "bogus=1"]) == 2


def test_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "vaegan-diagnose"
    assert script.exists(), "console script not installed: make install (pip install -e .)"
    run_dir = benign(tmp_path / "r")
    proc = subprocess.run([str(script), str(run_dir)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"verdict: {BENIGN}")
    bad = subprocess.run(
        [str(script), str(tmp_path / "missing")], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def sweep(root: Path) -> Path:
    """A Hydra multirun dir: three jobs differing in beta and gan_start (seed shared)."""
    for i, (beta, gs) in enumerate([("1e-4", 1000), ("1e-2", 1000), ("1e-4", 500)]):
        benign(
            root / str(i),
            config={"beta": float(beta), "gan_start": gs},
            overrides=[f"beta={beta}", f"gan_start={gs}", "seed=0"],
        )
    (root / "multirun.yaml").write_text("{}\n")
    return root


def test_compare_multirun_labels_by_differing_overrides(tmp_path: Path, capsys) -> None:
    multirun = sweep(tmp_path / "multirun")
    assert compare_main([str(multirun)]) == 0
    labels = ["beta=1e-4 gan_start=1000", "beta=1e-2 gan_start=1000", "beta=1e-4 gan_start=500"]
    out = capsys.readouterr().out
    assert all(f"{lab}: {BENIGN}" in out for lab in labels)
    table = (multirun / "compare.md").read_text()
    assert all(f"| {lab} |" in table for lab in labels) and "seed" not in table
    assert (multirun / "compare.png").stat().st_size > 1000


def test_diagnose_refuses_a_multirun_dir(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="holds 3 runs"):
        load_run(sweep(tmp_path / "multirun"))


def test_compare_explicit_runs_to_out_dir(tmp_path: Path) -> None:
    runs = [benign(tmp_path / "a"), explosion(tmp_path / "b"), plateau(tmp_path / "c")]
    result = compare_runs(runs, tmp_path / "out")
    assert result.labels == ["a", "b", "c"]  # no overrides: dir names
    assert [d.verdict for d in result.diagnoses] == [BENIGN, MALIGNANT, BENIGN]
    assert result.table == tmp_path / "out" / "compare.md" and result.figure.exists()


def test_diagnose_says_kl_went_non_finite_and_from_which_step(tmp_path: Path) -> None:
    """An all-NaN KL used to read as "too little data: 0 points"."""
    kl = np.where(T >= T[5], np.nan, 100.0)
    run = load_run(make_run(tmp_path / "r", {metric.TRAIN_KL: kl, metric.TRAIN_REC: const(0.1)}))
    text = " ".join(diagnose(run).explanation)
    assert f"{metric.TRAIN_KL} is non-finite (NaN/inf) from gen_step {T[5]:g} on" in text, text
    assert "Too little data" not in text


def test_compare_skips_broken_runs_and_a_sweeps_failed_jobs_with_reasons(
    tmp_path: Path, capsys
) -> None:
    multirun = sweep(tmp_path / "multirun")
    broken = multirun / "3"
    (broken / ".hydra").mkdir(parents=True)
    (broken / "run_info.json").write_text('{"status": "failed", "error": "DataError: no images"}')
    assert compare_main([str(multirun)]) == 0
    out = capsys.readouterr().out
    assert f"skipped {broken}: failed before logging: DataError: no images" in out
    assert "skipped" in (multirun / "compare.md").read_text()

    empty = tmp_path / "empty"
    (empty / "csv").mkdir(parents=True)
    (empty / "csv" / "metrics.csv").write_text("step,gen_step\n")
    result = compare_runs([multirun / "0", empty], tmp_path / "out")
    assert [r.path for r in result.runs] == [multirun / "0"]
    assert result.skipped and result.skipped[0][0] == empty and "no rows" in result.skipped[0][1]
