"""End-to-end: Hydra-composed runs through the real Trainer, on the generator-step clock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.metrics import CONTRACT_TRAIN, CONTRACT_VAL, column, read_metrics
from tests.helpers.run import check_config, compose_config, train_tiny
from vaegan.app.config import ConfigError
from vaegan.vocab import metric_names as metric

CONF = Path(__file__).resolve().parent.parent / "conf"


def test_tiny_run_logs_contract_names_and_gan_switches_on_at_gen_step(tmp_path):
    result = train_tiny(tmp_path, "steps=12", "gan_start=6")
    assert result["gen_step"] == 12
    rows = read_metrics(tmp_path)
    header = set(rows[0])
    missing = [n for n in CONTRACT_TRAIN + CONTRACT_VAL if n not in header]
    assert not missing, missing
    adv = column(rows, metric.TRAIN_ADV_WEIGHT)
    assert all(v == 0.0 for k, v in adv.items() if k < 6), adv
    assert all(v > 0.0 for k, v in adv.items() if k >= 6), adv
    d_loss = column(rows, metric.TRAIN_D_LOSS)
    assert d_loss and min(d_loss) == 6  # no discriminator work before gan_start
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert list((tmp_path / "images").glob("*.png"))


def test_resume_continues_schedules_from_generator_step(tmp_path):
    first = tmp_path / "first"
    train_tiny(first, "steps=8", "gan_start=6", "schedule=linear")
    ckpt = first / "checkpoints" / "last.ckpt"
    second = tmp_path / "second"
    result = train_tiny(
        second, "steps=14", "gan_start=6", "schedule=linear", f"ckpt_path={ckpt}"
    )
    assert result["gen_step"] == 14
    rows = read_metrics(second)
    beta = column(rows, metric.TRAIN_BETA)
    assert min(beta) == 8  # continued at generator step 8, not from 0
    assert all(v > 0 for v in column(rows, metric.TRAIN_ADV_WEIGHT).values())
    # linear: warm-up 2, ramp 4 -> full beta from step 6 on
    assert all(v == pytest.approx(1e-4) for v in beta.values())


@pytest.mark.parametrize(
    "override, key",
    [
        ("beta=-1", "beta"),
        ("gan_start=-5", "gan_start"),
        ("model.ch_mult=[1,1,1,1,1,1,1]", "data.image_size"),
        ("trainer.max_steps=100", "steps"),
        ("model.z_channels=0", "model.z_channels"),
        ("model.activation_checkpointing=all", "model.activation_checkpointing"),
    ],
)
def test_bad_config_names_the_key(tmp_path, override, key):
    cfg = compose_config(tmp_path, override)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_config(cfg)


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
)
def test_every_experiment_composes_and_fast_dev_runs(tmp_path, name):
    # debug=fdr (composed after the experiment) shrinks the model and data and runs on CPU.
    result = train_tiny(tmp_path, f"experiment={name}", debug="fdr")
    assert result["gen_step"] >= 1


@pytest.mark.slow
def test_console_script_runs_a_tiny_run(tmp_path):
    exe = Path(sys.executable).parent / "vaegan-train"
    proc = subprocess.run(
        [str(exe), "debug=tiny", f"hydra.run.dir={tmp_path}", "steps=4", "gan_start=2"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"run dir: {tmp_path}" in proc.stdout
    assert (tmp_path / ".hydra" / "config.yaml").is_file()
    assert (tmp_path / "csv" / "metrics.csv").is_file()


def test_activation_checkpointing_trains_the_same_run(tmp_path):
    # GAN on from step 3: the adaptive weight and the gradient-attribution callback take
    # several gradients of one graph whose blocks are recomputed in backward.
    def losses(mode: str) -> dict[str, dict[int, float]]:
        run_dir = tmp_path / mode
        train_tiny(run_dir, "steps=6", "gan_start=3", f"model.activation_checkpointing={mode}")
        rows = read_metrics(run_dir)
        return {name: column(rows, name) for name in (metric.TRAIN_LOSS, metric.TRAIN_D_LOSS)}

    plain = losses("none")
    assert len(plain[metric.TRAIN_LOSS]) == 6 and len(plain[metric.TRAIN_D_LOSS]) == 3
    blocks = losses("blocks")
    for name, values in plain.items():
        assert blocks[name] == pytest.approx(values, rel=1e-4), name
