"""EMA of the autoencoder weights and val/rfid: the callbacks behind SD-style fine-tuning."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.helpers.metrics import column, read_metrics
from tests.helpers.resume import COMMON, N
from tests.helpers.run import train_tiny
from vaegan.callbacks.ema import EMA
from vaegan.interop import load_autoencoder
from vaegan.losses.perceptual import PretrainedWeightsMissing
from vaegan.models.autoencoder import AutoencoderKL
from vaegan.vocab import metric_names as metric

EMA_ON = ("callbacks.ema.decay=0.7", "callbacks.ema.start=1")


def _ckpt(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=True)


def test_ema_is_torch_ema_from_start_and_validation_swaps_it_in_and_out() -> None:
    torch.manual_seed(0)
    module = SimpleNamespace(autoencoder=AutoencoderKL(ch=8), gen_step=0)
    weight = module.autoencoder.last_layer
    ema, expected = EMA(decay=0.9, start=1), None
    for step in range(1, 5):
        with torch.no_grad():
            weight.add_(1.0)  # a "training step"
        module.gen_step = step
        ema.on_train_batch_end(None, module)
        ema.on_train_batch_end(None, module)  # a second hook call in the same step: no update
        if step > 1:  # start=1: the first average is a copy of the weights after step 2
            w = weight.detach().clone()
            expected = w if expected is None else 0.9 * expected + 0.1 * w
    avg = ema.average.module.last_layer
    torch.testing.assert_close(avg, expected)
    raw = weight.detach().clone()

    ema.on_validation_epoch_start(None, module)
    torch.testing.assert_close(weight.detach(), expected)
    checkpoint = {"state_dict": {f"autoencoder.{k}": v.clone()
                                 for k, v in module.autoencoder.state_dict().items()}}
    ema.on_save_checkpoint(None, module, checkpoint)  # saved mid-validation: still right
    torch.testing.assert_close(checkpoint["state_dict"]["autoencoder.decoder.out.2.weight"], raw)
    torch.testing.assert_close(checkpoint["ema"]["autoencoder"]["decoder.out.2.weight"], expected)
    assert checkpoint["ema"]["n_averaged"] == 3
    ema.on_validation_epoch_end(None, module)
    torch.testing.assert_close(weight.detach(), raw)


def test_ema_resumes_exactly_and_is_what_load_and_export_take(tmp_path: Path) -> None:
    straight, first, second = tmp_path / "straight", tmp_path / "first", tmp_path / "second"
    every = f"callbacks.checkpoint.every_n_gen_steps={N}"
    train_tiny(straight, *COMMON, *EMA_ON, every, f"steps={2 * N}")
    train_tiny(first, *COMMON, *EMA_ON, every, f"steps={N}")
    train_tiny(second, *COMMON, *EMA_ON, every, f"steps={2 * N}",
               f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}")
    a, b = _ckpt(straight)["ema"], _ckpt(second)["ema"]
    assert (a["n_averaged"], a["updated_at"]) == (b["n_averaged"], b["updated_at"]) == (7, 2 * N)
    for key in a["autoencoder"]:
        torch.testing.assert_close(b["autoencoder"][key], a["autoencoder"][key],
                                   rtol=1e-5, atol=1e-7, msg=key)
    # validation ran on the EMA weights: the straight and resumed runs agree there too
    ref, got = (column(read_metrics(d), metric.VAL_REC) for d in (straight, second))
    assert got and all(abs(got[s] - ref[s]) <= 1e-6 * abs(ref[s]) for s in got)

    raw = {k.removeprefix("autoencoder."): v for k, v in _ckpt(straight)["state_dict"].items()
           if k.startswith("autoencoder.")}
    loaded_ema = load_autoencoder(straight).state_dict()
    loaded_raw = load_autoencoder(straight, weights="raw").state_dict()
    assert all(torch.equal(loaded_ema[k], a["autoencoder"][k]) for k in loaded_ema)
    assert all(torch.equal(loaded_raw[k], raw[k]) for k in loaded_raw)
    assert any(not torch.equal(loaded_ema[k], raw[k]) for k in raw)


def test_rfid_with_random_features_is_logged_every_n_validations(tmp_path: Path) -> None:
    """feature=random: a Fréchet distance of random conv features, NOT FID; the test checks the
    plumbing (when it is computed, that it is a finite distance), not the number."""
    train_tiny(tmp_path, "callbacks.rfid.every_n_val=2", "callbacks.rfid.feature=random",
               "steps=12", "trainer.val_check_interval=3")
    rfid = column(read_metrics(tmp_path), metric.VAL_RFID)
    assert sorted(rfid) == [6, 12]  # validations at 3, 6, 9, 12: every second one
    assert all(value >= 0 and value == value for value in rfid.values())


def test_rfid_without_inception_weights_is_one_message(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(PretrainedWeightsMissing, match="Inception weights not found") as err:
        train_tiny(tmp_path / "run", "callbacks.rfid.every_n_val=1")
    assert "callbacks.rfid.every_n_val=0" in str(err.value) and "\n" not in str(err.value)


def _random_inception_weights(path: Path) -> Path:
    """torch-fidelity's Inception with random weights, saved as its weights file would be (the
    real file cannot be fetched here): the loading path is real, the number is not FID."""
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as fe

    with mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: None), \
            mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict",
                              lambda self, state: None):
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["64"])
    torch.save(net.state_dict(), path)
    return path


def test_rfid_reads_inception_weights_from_a_local_path_and_refuses_code(tmp_path: Path) -> None:
    from vaegan.callbacks.rfid import ReconstructionFID

    weights = _random_inception_weights(tmp_path / "inception.pth")
    fid = ReconstructionFID(every_n_val=1, weights_path=str(weights), dims=64)._metric()
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    fid.update(images, real=True)
    fid.update(images, real=False)
    same = float(fid.compute())
    fid.update(1 - images, real=False)
    assert abs(same) < 1e-3 and float(fid.compute()) > same

    class Evil:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    torch.save({"w": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(PretrainedWeightsMissing, match="not a plain weights file"):
        ReconstructionFID(every_n_val=1, weights_path=str(tmp_path / "evil.pth"))._metric()
    assert not (tmp_path / "pwned").exists()
