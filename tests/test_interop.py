"""Autoencoders in and out: diffusers dirs, LDM/SD checkpoints, safetensors, vaegan runs.

Every diffusers model here is a small one with random weights built offline; nothing is
downloaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import vaegan
from vaegan.interop import keys as K
from vaegan.interop.export import diffusers_config, export_ldm, main, max_differences
from vaegan.interop.sources import SourceError, load_autoencoder
from vaegan.models.autoencoder import AutoencoderKL

diffusers = pytest.importorskip("diffusers")
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint  # noqa: E402

# float32 rounding of the same convolutions run in another order (measured: ~4e-7 and ~2e-6)
ENCODE_TOL, DECODE_TOL = 1e-5, 1e-5
TINY = {  # SD's layout (DownEncoderBlock2D, mid attention) at 2 levels, 32 px: ~1.5 M params
    "block_out_channels": [32, 64], "down_block_types": ["DownEncoderBlock2D"] * 2,
    "up_block_types": ["UpDecoderBlock2D"] * 2, "layers_per_block": 1, "latent_channels": 4,
    "norm_num_groups": 32, "sample_size": 32,
}
# tiny.yaml's architecture keys; with model=pretrained the architecture is the source's
FROM_SOURCE = ["~model.ch", "~model.ch_mult", "~model.num_res_blocks"]


@pytest.fixture(scope="module")
def sd_vae(tmp_path_factory) -> tuple[object, Path]:
    """A random diffusers AutoencoderKL saved as diffusers saves it."""
    torch.manual_seed(0)
    model = diffusers.AutoencoderKL(**TINY).eval()
    out = tmp_path_factory.mktemp("sd_vae")
    model.save_pretrained(out)
    return model, out


def _same(a: AutoencoderKL, b: AutoencoderKL) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_diffusers_to_ldm_inverts_diffusers_own_conversion(sd_vae) -> None:
    model, _ = sd_vae
    state = model.state_dict()
    back = convert_ldm_vae_checkpoint(K.diffusers_to_ldm(state), TINY)
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_diffusers_dir_loads_with_the_same_outputs(sd_vae) -> None:
    model, path = sd_vae
    ours = vaegan.load_autoencoder(path)
    diffs = max_differences(ours, model)
    assert diffs["encode_mean"] < ENCODE_TOL and diffs["decode"] < DECODE_TOL, diffs
    assert diffusers_config(ours)["block_out_channels"] == TINY["block_out_channels"]


@pytest.mark.parametrize("layout", ["whole-model-ckpt", "first-stage-ckpt", "safetensors"])
def test_ldm_checkpoints_load_exactly(tmp_path: Path, layout: str) -> None:
    """SD's whole-model checkpoint (first_stage_model.* among other parts), LDM's first-stage
    checkpoint (with its loss.* tensors) and a bare .safetensors give the same weights."""
    torch.manual_seed(1)
    model = AutoencoderKL(ch=32, ch_mult=(1, 2), num_res_blocks=2, use_mid_attn=True,
                          attn_resolutions=(16,))
    ldm = K.to_ldm(model.state_dict())
    if layout == "safetensors":
        path = export_ldm(model, tmp_path / "vae.safetensors")
    else:
        if layout == "whole-model-ckpt":
            state = {f"first_stage_model.{k}": v for k, v in ldm.items()}
            state["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(2)
        else:
            state = {**ldm, "loss.logvar": torch.zeros(())}
        path = tmp_path / "model.ckpt"
        torch.save({"state_dict": state, "global_step": 3}, path)
    _same(load_autoencoder(path), model)


def test_level_attention_round_trips_through_ldm_but_not_diffusers(tmp_path: Path) -> None:
    model = AutoencoderKL(ch=32, ch_mult=(1, 2), attn_resolutions=(16,), use_mid_attn=True)
    with pytest.raises(SourceError, match="attention outside the mid block"):
        diffusers_config(model)
    assert main([str(export_ldm(model, tmp_path / "a.ckpt")), "--to", "diffusers",
                 str(tmp_path / "d")]) == 2


def _pickle_with_code(path: Path, marker: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"state_dict": Evil()}, path)


@pytest.mark.parametrize("case", ["missing", "text", "code", "empty-dir", "other-weights",
                                  "other-diffusers-class", "no-ema", "fake-safetensors"])
def test_anything_else_is_one_line(tmp_path: Path, case: str) -> None:
    path, marker, match = tmp_path / "x.ckpt", tmp_path / "pwned", None
    if case == "text":
        path.write_text("hello")
        match = "not a readable checkpoint"
    elif case == "code":
        _pickle_with_code(path, marker)
        match = "refused"
    elif case == "fake-safetensors":
        path = tmp_path / "vae.safetensors"
        path.write_text("not really")
        match = "not a readable .safetensors file"
    elif case == "empty-dir":
        path = tmp_path
        match = "not a model dir"
    elif case == "other-weights":
        torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, path)
        match = "no KL-autoencoder weights"
    elif case == "other-diffusers-class":
        (tmp_path / "config.json").write_text('{"_class_name": "UNet2DModel"}')
        path, match = tmp_path, "UNet2DModel, not an AutoencoderKL"
    elif case == "no-ema":
        torch.save({"state_dict": {f"autoencoder.{k}": v for k, v in
                                   AutoencoderKL(ch=8).state_dict().items()}}, path)
        with pytest.raises(SourceError, match="has no EMA weights") as err:
            load_autoencoder(path, weights="ema")
        assert "\n" not in str(err.value)
        return
    else:
        match = "does not exist"
    with pytest.raises(SourceError, match=match) as err:
        load_autoencoder(path)
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_diffusers_to_vaegan_training_to_diffusers_and_ldm(sd_vae, tiny_run, tmp_path) -> None:
    """model=pretrained from a diffusers dir, 2 generator steps, then vaegan-export both ways."""
    model, path = sd_vae
    result = tiny_run("model=pretrained", f"model.source={path}", *FROM_SOURCE, "steps=2",
                      "gan_start=1", "trainer.val_check_interval=2")
    run_dir = Path(result["run_dir"])
    trained = load_autoencoder(run_dir)
    start = load_autoencoder(path)
    assert trained.state_dict().keys() == start.state_dict().keys()
    assert any(not torch.equal(a, b) for a, b in zip(
        trained.state_dict().values(), start.state_dict().values(), strict=True))

    out = tmp_path / "exported"
    assert main([str(run_dir), "--to", "diffusers", str(out)]) == 0
    loaded, info = diffusers.AutoencoderKL.from_pretrained(out, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    diffs = max_differences(trained, loaded.eval())
    assert diffs["encode_mean"] < ENCODE_TOL and diffs["decode"] < DECODE_TOL, diffs

    assert main([str(run_dir), "--to", "ldm", str(tmp_path / "vae.ckpt")]) == 0
    _same(load_autoencoder(tmp_path / "vae.ckpt"), trained)


@pytest.mark.parametrize("case", ["architecture-override", "no-source", "missing-source",
                                  "image-size"])
def test_pretrained_config_mistakes_are_one_line_before_training(sd_vae, tiny_run, tmp_path,
                                                                  case) -> None:
    from vaegan.app.config import ConfigError

    _, path = sd_vae
    overrides, match = {
        "architecture-override": ([f"model.source={path}"],
                                  "model.ch=8, but model.source has ch=32: .* drop the override"),
        "no-source": ([*FROM_SOURCE], "model=pretrained needs model.source=PATH"),
        "missing-source": ([f"model.source={tmp_path / 'gone'}", *FROM_SOURCE],
                           "model.source: .*gone does not exist"),
        "image-size": ([f"model.source={tmp_path / 'f16.ckpt'}", *FROM_SOURCE,
                        "data.image_size=40"],
                       "data.image_size=40 is not divisible by the downsampling factor 16"),
    }[case]
    export_ldm(AutoencoderKL(ch=32, ch_mult=(1, 1, 1, 1, 1)), tmp_path / "f16.ckpt")
    with pytest.raises(ConfigError, match=match) as err:
        tiny_run("model=pretrained", *overrides, "steps=1")
    assert "\n" not in str(err.value)


def test_bench_peer_ratio_times_the_same_network_in_both_libraries() -> None:
    from vaegan.bench.peers import peer_ratio

    torch.manual_seed(0)
    model = AutoencoderKL(ch=32, ch_mult=(1, 2), use_mid_attn=True)
    ratio = peer_ratio(model, torch.rand(2, 3, 32, 32) * 2 - 1, warmup=1, steps=1, repeats=2)
    assert 0 < ratio.low <= ratio.ratio <= ratio.high and ratio.a > 0 and ratio.b > 0


def test_console_script_is_installed_and_says_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(sys.executable).parent / "vaegan-export"
    assert script.exists(), "console script not installed: make install (pip install -e .)"
    proc = subprocess.run([str(script), str(tmp_path / "nope"), "--to", "ldm",
                           str(tmp_path / "x.ckpt")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nope'} does not exist; expected a vaegan run dir or checkpoint, a "
        "diffusers model dir (config.json + diffusion_pytorch_model.safetensors), an LDM/Stable "
        "Diffusion .ckpt, or a .safetensors file"
    ]


def test_export_refuses_a_non_empty_or_unwritable_target_in_one_line(tmp_path: Path, capsys):
    """It wrote into any dir (mixing files with what was there) and an unwritable target
    ended in a traceback after the model was read."""
    from vaegan.interop.export import main as export_main

    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    assert export_main([str(tmp_path / "src"), "--to", "diffusers", str(full)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {full} is not empty (notes.txt); pass --force to write into it "
                   "(files of the same names are replaced), or pick an empty dir"]
    (tmp_path / "a_file").write_text("")
    blocked = tmp_path / "a_file" / "out.ckpt"  # its parent cannot be a dir
    assert export_main([str(tmp_path / "src"), "--to", "ldm", str(blocked)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot write to {blocked.parent} ("), err
    assert (full / "notes.txt").read_text() == "mine"


def test_diffusers_config_that_disagrees_with_its_weights_is_one_line(sd_vae, tmp_path):
    """diffusers' many-line "Error(s) in loading state_dict" escaped as a traceback."""
    import json
    import shutil

    _, saved = sd_vae
    edited = tmp_path / "vae"
    shutil.copytree(saved, edited)
    config = json.loads((edited / "config.json").read_text())
    (edited / "config.json").write_text(json.dumps({**config, "latent_channels": 8}))
    with pytest.raises(SourceError, match=r"config.json disagrees with its weights: \d+ tensors "
                                          r"do not fit \(e.g. size mismatch for ") as err:
        load_autoencoder(edited)
    assert "\n" not in str(err.value)
