"""Faults and bad input: what a run survives, what stops it, and the one line it prints.

Each test is a row of the "What happens when" table in docs/robustness.md. Real Trainer runs via
``train_tiny`` (in-process) or the ``vaegan-train`` entry point.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers.faults import nan_injection
from tests.helpers.metrics import column, read_metrics
from tests.helpers.run import check_config, compose_config, run_main, train_tiny
from vaegan.app import rundir
from vaegan.app.checkpoint_io import CheckpointError, check_resumable
from vaegan.app.config import ConfigError, validate
from vaegan.app.rundir import RunDirError
from vaegan.losses.objective import VAEGANObjective
from vaegan.models.distributions import DiagonalGaussian
from vaegan.train import build_module
from vaegan.vocab import metric_names as metric

FAST = ("callbacks=none", "gan_start=1")  # no diagnostics callbacks: seconds per run
STATS = "vaegan.callbacks.discriminator.DiscriminatorStats"  # counts adaptive clamp hits


def finite_weights(ckpt_path: Path) -> bool:
    state = torch.load(ckpt_path, map_location="cpu", weights_only=True)["state_dict"]
    return all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A real ``last.ckpt`` of a 3-step tiny run (model.ch=8)."""
    run_dir = tmp_path_factory.mktemp("source")
    train_tiny(run_dir, "steps=3", *FAST)
    return run_dir / "checkpoints" / "last.ckpt"


# ----------------------------------------------------------------------------- non-finite


@pytest.mark.parametrize("term, player", [("g_adv", "generator"), ("d_loss", "discriminator"),
                                          ("grad", "generator")])
def test_nonfinite_term_skips_the_step_and_training_goes_on(tmp_path, caplog, term, player):
    with caplog.at_level(logging.WARNING, logger="vaegan"):
        result = train_tiny(tmp_path, "steps=5", *FAST, *nan_injection(term, at_step=2, count=2))
    assert result["gen_step"] == 5
    skipped = column(read_metrics(tmp_path), metric.TRAIN_NONFINITE_STEPS)
    assert skipped[1] == 0 and skipped[4] == 2, skipped  # counted, then no more
    warnings = [r.getMessage() for r in caplog.records if "non-finite" in r.getMessage()]
    assert len(warnings) == 2 and all(f"{player} step" in w and f"non-finite {term}" in w
                                      for w in warnings), warnings
    assert finite_weights(tmp_path / "checkpoints" / "last.ckpt")  # NaN never reached Adam
    if term == "g_adv":  # the adaptive weight maps the NaN gradient norm ratio to 0
        weights = column(read_metrics(tmp_path), metric.TRAIN_ADAPTIVE_WEIGHT)
        assert weights[2] == 0.0 and all(math.isfinite(w) for w in weights.values()), weights


def test_skipped_step_count_survives_a_resume(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    train_tiny(first, "steps=5", *FAST, *nan_injection("d_loss", at_step=2, count=2))
    ckpt = first / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=False)["vaegan"]["nonfinite"]["skipped"] == 2
    train_tiny(second, "steps=7", *FAST, f"ckpt_path={ckpt}")
    skipped = column(read_metrics(second), metric.TRAIN_NONFINITE_STEPS)
    assert min(skipped) == 5 and set(skipped.values()) == {2.0}, skipped


def test_consecutive_nonfinite_steps_save_and_stop_with_the_fix(tmp_path, monkeypatch, capsys):
    code, err = run_main(
        monkeypatch, capsys, "debug=tiny", f"hydra.run.dir={tmp_path}", "steps=12", *FAST,
        *nan_injection("rec", at_step=3, count=100),
        "faults.max_consecutive_nonfinite=3",
    )
    assert code == 3
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: non-finite rec in the generator step for 3 consecutive")
    assert "last finite value" in line and "at gen_step 2" in line and "optim.lr" in line
    assert "Traceback" not in err
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    assert str(ckpt) in line and finite_weights(ckpt)
    cfg = compose_config(tmp_path, "steps=12", *FAST)
    check_resumable(ckpt, build_module(cfg))  # the saved state resumes


# ----------------------------------------------------------------------------- precision


def test_bf16_mixed_trains_on_cpu_and_counts_adaptive_clamp_hits(tmp_path):
    result = train_tiny(
        tmp_path, "steps=4", *FAST, "trainer.precision=bf16-mixed",
        "loss.objective.adaptive_max=1e-3", f"+callbacks.discriminator._target_={STATS}",
    )
    assert result["gen_step"] == 4
    rows = read_metrics(tmp_path)
    assert all(math.isfinite(v) for v in column(rows, metric.TRAIN_KL).values())
    hits = column(rows, metric.TRAIN_ADAPTIVE_CLAMP_HITS)  # running count, logged every 2 steps
    assert hits and all(v == k for k, v in hits.items()), hits  # every GAN step 1..k hit it
    assert column(rows, metric.TRAIN_ADAPTIVE_WEIGHT)[3] == pytest.approx(1e-3)
    assert finite_weights(tmp_path / "checkpoints" / "last.ckpt")


def test_kl_and_adaptive_weight_stay_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    objective = VAEGANObjective(perceptual_weight=0.0, learn_logvar=False)
    last = torch.randn(3, 3, requires_grad=True)
    x = torch.randn(2, 3, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        xrec = torch.einsum("oc,bchw->bohw", last, x).bfloat16()
        mean, logvar = torch.randn(2, 2, 64, 64).bfloat16().chunk(2, dim=1)
        out = objective.generator_terms(
            x, xrec, DiagonalGaussian(mean, logvar), beta=1.0, adv_factor=1.0,
            logits_fake=xrec.mean(dim=1), last_layer=last,
        )
    exact = DiagonalGaussian(mean.float(), logvar.float()).kl().mean()
    assert out.logs["kl"].dtype == torch.float32
    assert out.logs["kl"].item() == pytest.approx(exact.item(), rel=1e-6)
    assert out.logs["adaptive_weight"].dtype == torch.float32


# ----------------------------------------------------------------------------- checkpoints

CHILD = """
import sys, torch
from vaegan.app.checkpoint_io import AtomicCheckpointIO
src, dst = sys.argv[1], sys.argv[2]
ckpt = torch.load(src, map_location="cpu", weights_only=True)
io = AtomicCheckpointIO()
for i in range(10**6):
    ckpt["pad"] = torch.full((12_000_000,), float(i))  # 48 MB: saving takes a while
    print(i, flush=True)
    io.save_checkpoint(ckpt, dst)
"""


@pytest.mark.slow  # a subprocess
def test_kill_during_save_leaves_a_loadable_last_ckpt_that_resumes(tmp_path, tiny_ckpt):
    dst = tmp_path / "checkpoints" / "last.ckpt"
    rng = random.Random()
    caught_mid_save = 0
    for _ in range(4):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(tiny_ckpt), str(dst)],
                                 stdout=subprocess.PIPE, text=True)
        for _ in range(rng.randint(2, 4)):
            child.stdout.readline()  # a save has just started
        time.sleep(rng.uniform(0.0, 0.05))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        caught_mid_save += bool(list(dst.parent.glob(".last.ckpt.*.tmp")))
        ckpt = torch.load(dst, map_location="cpu", weights_only=True)  # never half a file
        assert ckpt["pad"][0] == ckpt["pad"][-1]
        if caught_mid_save:
            break
    assert caught_mid_save, "no kill landed during a save; the test proved nothing"
    resumed = tmp_path / "resumed"
    result = train_tiny(resumed, "steps=5", *FAST, f"ckpt_path={dst}")
    assert result["gen_step"] == 5
    assert min(column(read_metrics(resumed), metric.TRAIN_REC)) == 3  # continued after step 3


def _truncated(src: Path, dst: Path) -> None:
    dst.write_bytes(src.read_bytes()[: src.stat().st_size // 2])


def _weights_only(src: Path, dst: Path) -> None:
    torch.save(torch.load(src, weights_only=True)["state_dict"], dst)


@pytest.mark.parametrize(
    "make, override, message",
    [
        (None, "", "does not exist"),
        (_truncated, "", "not a readable checkpoint"),
        (lambda src, dst: dst.write_text("not a checkpoint"), "", "not a readable checkpoint"),
        (_weights_only, "", "not a Lightning training checkpoint"),
        (lambda src, dst: dst.write_bytes(src.read_bytes()), "model.ch=16",
         "does not match this config's model: .* differ in shape"),
    ],
    ids=["missing", "truncated", "text", "bare-state-dict", "other-model"],
)
def test_bad_ckpt_path_is_one_line_before_training(tmp_path, tiny_ckpt, make, override, message):
    ckpt = tmp_path / "given.ckpt"
    if make is not None:
        make(tiny_ckpt, ckpt)
    run_dir = tmp_path / "run"
    with pytest.raises(CheckpointError, match=message) as err:
        train_tiny(run_dir, *FAST, f"ckpt_path={ckpt}", *([override] if override else []))
    assert "\n" not in str(err.value) and str(ckpt) in str(err.value)
    assert not (run_dir / "csv").exists()  # refused before the trainer was built


# ----------------------------------------------------------------------------- run dir


def test_run_dir_that_cannot_be_created_exits_2_before_training(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, err = run_main(monkeypatch, capsys, "debug=tiny", f"hydra.run.dir={blocker}/run")
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"error: cannot create the run dir {blocker}/run (Not a directory); "
        "pick another dir with hydra.run.dir=... (or fix its permissions)"
    )


def test_full_disk_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "free_bytes", lambda path: 10 << 20)  # 10 MiB left
    with pytest.raises(RunDirError, match=r"has 10 MiB free; this model's checkpoints need"):
        train_tiny(tmp_path, *FAST)
    assert not (tmp_path / "csv").exists()


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["beta=abc"], "beta"),
        (["beta=nan"], "beta"),
        (["steps=1.5"], "steps"),
        (["seed=x"], "seed"),
        (["loss.objective.disc_weight=-0.5"], "loss.objective.disc_weight"),
        (["optim.lr=fast"], "optim.lr"),
        (["schedule.ramp_steps=0"], "schedule.ramp_steps"),
        (["schedule=cyclical", "schedule.ratio=1.5"], "schedule.ratio"),
        (["schedule=cyclical", "schedule.ratio=0"], "schedule.ratio"),
        (["+schedule.ramp=3"], "schedule.ramp=3 must be a setting of the β schedule"),
        (["model.embed_dim=0"], "model.embed_dim"),
        (["trainer.devices=4096"], "trainer.devices=4096 must fit the"),
        (["faults.max_consecutive_nonfinite=0"], "faults.max_consecutive_nonfinite"),
        (["faults.max_consecutive_nonfinite=many"], "faults.max_consecutive_nonfinite"),
        # these reached a raw traceback mid-run, or were accepted and ignored (issue 17)
        (["data.image_size=16"], "data.image_size=16 must be >= 32 for the perceptual loss"),
        (["trainer.val_check_interval=0"], "trainer.val_check_interval=0 must be"),
        (["seed=-1"], "seed=-1 must be an integer in 0..4294967295"),
        (["seed=99999999999"], "seed=99999999999 must be"),
        (["optim.betas=[2,0.9]"], "optim.betas=[2, 0.9] must be two numbers in [0, 1)"),
        (["callbacks.checkpoint.every_n_gen_steps=0"], "callbacks.checkpoint.every_n_gen_steps"),
        (["trainer.precision=bogus"], "trainer.precision='bogus' must be a precision Lightning"),
        (["optim.lr=inf"], "optim.lr=inf must be a finite number > 0"),
        (["optim.grad_clip=-1"], "optim.grad_clip=-1 must be a finite max gradient norm > 0"),
    ],
)
def test_bad_config_value_is_one_line_naming_the_key(tmp_path, overrides, key):
    cfg = compose_config(tmp_path, *overrides)
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert key in str(err.value) and "\n" not in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_trainer_without_gpus_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="trainer.devices=1 must fit the 0 CUDA GPUs"):
        validate(compose_config(tmp_path, "trainer=gpu"))


def test_cli_bad_value_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    code, err = run_main(monkeypatch, capsys, "debug=tiny", f"hydra.run.dir={tmp_path}",
                         "beta=-1")
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "error: beta=-1 must be a finite number >= 0"


def test_cli_unknown_group_option_lists_the_options(tmp_path, monkeypatch, capsys):
    code, err = run_main(monkeypatch, capsys, "debug=tiny", f"hydra.run.dir={tmp_path}",
                         "model=huge")
    assert code == 1 and "Traceback" not in err
    assert "Could not find 'model/huge'" in err and "Available options in 'model'" in err
    assert "small" in err and "sd_kl_f8" in err


def test_images_below_the_lpips_minimum_train_without_val_lpips(tmp_path):
    """16 px crashed inside AlexNet at the first validation even with loss=vae."""
    result = train_tiny(tmp_path, *FAST, "steps=2", "loss=vae", "data.image_size=16",
                        "trainer.val_check_interval=2")
    assert result["gen_step"] == 2
    rows = read_metrics(tmp_path)
    assert column(rows, metric.VAL_REC) and metric.VAL_LPIPS not in rows[0]


def test_full_disk_while_saving_names_enospc_and_keeps_the_previous_checkpoint(
    tmp_path, monkeypatch, capsys
):
    saves = []
    real_save = torch.save

    def disk_fills_up(obj, f, *args, **kwargs):  # the second checkpoint finds the disk full
        saves.append(1)
        if len(saves) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_fills_up)
    code, err = run_main(monkeypatch, capsys, "debug=tiny", f"hydra.run.dir={tmp_path}",
                         "gan_start=1", "~callbacks.latent", "~callbacks.gradients",
                         "~callbacks.images", "steps=4", "callbacks.checkpoint.every_n_gen_steps=2")
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(
        f"error: cannot write the checkpoint {last} (No space left on device, ENOSPC); "
        "the previous one is kept"
    ), err
    monkeypatch.undo()
    assert torch.load(last, weights_only=True)["vaegan"]["gen_step"] == 2
    assert not list(last.parent.glob(".*.tmp"))


def test_constructor_value_error_becomes_config_error(tmp_path):
    with pytest.raises(ConfigError, match="logvar_min"):
        train_tiny(tmp_path, *FAST, "model.posterior.logvar_min=30")


# ----------------------------------------------------------------------------- input files


@pytest.mark.slow  # a subprocess
def test_cli_missing_lpips_weights_exits_2_with_where_to_put_them(tmp_path):
    exe = Path(sys.executable).parent / "vaegan-train"
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "empty_torch_home")}
    proc = subprocess.run(
        [str(exe), "debug=tiny", f"hydra.run.dir={tmp_path / 'run'}",
         "loss.objective.perceptual.pretrained=true",
         "loss.objective.perceptual.download=false"],  # the same line offline; no fetch online
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    expected = tmp_path / "empty_torch_home" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert line.startswith(f"error: LPIPS alex backbone weights not found at {expected}")
    assert "loss.objective.perceptual.pretrained=false" in line
    assert not (tmp_path / "run" / "csv").exists()


def _image_folder(root: Path) -> Path:
    """RGB, grayscale, RGBA and too-small PNGs, plus one corrupt file."""
    from PIL import Image

    root.mkdir()
    rng = random.Random(0)
    for i in range(12):
        mode, size = [("RGB", 40), ("L", 48), ("RGBA", 40), ("RGB", 16)][i % 4]
        pixels = bytes(rng.randrange(256) for _ in range(size * size * len(mode)))
        Image.frombytes(mode, (size, size), pixels).save(root / f"img{i:02d}.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    return root


def test_folder_with_corrupt_and_mixed_images_trains_and_counts_skips(tmp_path):
    root = _image_folder(tmp_path / "images")
    result = train_tiny(
        tmp_path / "run", "data=folder", f"data.root={root}",
        "data.num_workers=0", "data.batch_size=4", "data.on_bad_image=skip", "steps=6",
        *FAST,
    )
    assert result["gen_step"] == 6
    assert result["skipped_images"] == 1


def test_unreadable_folder_images_stop_before_the_trainer_starts(tmp_path, monkeypatch, capsys):
    root = _image_folder(tmp_path / "images")
    whole = (root / "img00.png").read_bytes()
    (root / "cut.png").write_bytes(whole[: len(whole) // 2])
    code, err = run_main(monkeypatch, capsys, "debug=tiny", f"hydra.run.dir={tmp_path}/run",
                         "data=folder", f"data.root={root}", "data.num_workers=0", *FAST)
    assert code == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: 2 unreadable images: ") and "cut.png (truncated" in line, err
    assert "broken.png" in line
    assert not (tmp_path / "run" / "csv").exists()  # no logger, no trainer: nothing started
