"""``vaegan-export SRC --to diffusers OUT_DIR | --to ldm OUT.ckpt``: weights where SD tooling
loads them.

SRC is anything ``load_autoencoder`` reads (a vaegan run dir or checkpoint, and so also a
diffusers dir or an LDM file: the exporter doubles as a converter). LDM -> diffusers names go
through diffusers' own ``convert_ldm_vae_checkpoint``; the result is loaded back into
``diffusers.AutoencoderKL`` strictly before it is saved, and the written model is checked
against vaegan's on a random batch.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import torch

from vaegan.interop import keys as K
from vaegan.interop.sources import WEIGHTS, SourceError, build, read_source
from vaegan.models.autoencoder import AutoencoderKL, num_groups

LDM_SCALING_FACTOR = 0.18215
"""SD 1.x's latent scale; what diffusers assumes when a config does not say."""


def diffusers_config(model: AutoencoderKL, scaling_factor: float | None = None) -> dict[str, Any]:
    """diffusers ``AutoencoderKL`` keywords for the same network, or a SourceError saying what
    diffusers' AutoencoderKL cannot express."""
    arch = K.architecture(K.to_ldm(model.state_dict()), model.resolution)
    channels = [arch["ch"] * m for m in arch["ch_mult"]]
    groups = {num_groups(c) for c in channels}
    problems = []
    if arch["attn_resolutions"]:
        problems.append("attention outside the mid block (model.attn_resolutions)")
    if arch["embed_dim"] != arch["z_channels"]:
        problems.append(f"embed_dim {arch['embed_dim']} != z_channels {arch['z_channels']}")
    if len(groups) != 1:
        problems.append(f"GroupNorm group counts {sorted(groups)} differ between levels")
    if problems:
        raise SourceError(
            "diffusers' AutoencoderKL cannot hold this model: " + "; ".join(problems)
        )
    levels = len(channels)
    return {
        "in_channels": arch["in_channels"],
        "out_channels": arch["out_channels"],
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "up_block_types": ["UpDecoderBlock2D"] * levels,
        "block_out_channels": channels,
        "layers_per_block": arch["num_res_blocks"],
        "act_fn": "silu",
        "latent_channels": arch["z_channels"],
        "norm_num_groups": groups.pop(),
        "sample_size": model.resolution,
        "scaling_factor": LDM_SCALING_FACTOR if scaling_factor is None else scaling_factor,
        "mid_block_add_attention": arch["use_mid_attn"],
    }


def to_diffusers(model: AutoencoderKL, scaling_factor: float | None = None) -> Any:
    """A ``diffusers.AutoencoderKL`` holding ``model``'s weights (loaded strictly)."""
    try:
        import diffusers
        from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
    except ImportError:
        raise SourceError(
            "exporting to diffusers needs diffusers: pip install 'vaegan[diffusers]'"
        ) from None
    config = diffusers_config(model, scaling_factor)
    state = convert_ldm_vae_checkpoint(K.to_ldm(model.state_dict()), config)
    out = diffusers.AutoencoderKL(**config)
    out.load_state_dict({k: v.contiguous() for k, v in state.items()}, strict=True)
    return out.eval()


def export_diffusers(
    model: AutoencoderKL, out_dir: str | Path, scaling_factor: float | None = None
) -> Path:
    """``config.json`` + ``diffusion_pytorch_model.safetensors`` in ``out_dir``."""
    to_diffusers(model, scaling_factor).save_pretrained(out_dir, safe_serialization=True)
    return Path(out_dir)


def export_ldm(model: AutoencoderKL, out: str | Path) -> Path:
    """LDM's first-stage checkpoint: ``{"state_dict": {encoder.*, decoder.*, quant_conv.*,
    post_quant_conv.*}}`` (a ``.safetensors`` path gets the bare state dict), what LDM's
    ``AutoencoderKL(ckpt_path=...)`` and SD UIs load as a VAE."""
    from vaegan.app.checkpoint_io import atomic_save

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in K.to_ldm(model.state_dict()).items()}
    if out.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(out))
    else:
        atomic_save({"state_dict": state}, out)
    return out


@torch.no_grad()
def max_differences(model: AutoencoderKL, other: Any, size: int | None = None) -> dict[str, float]:
    """Largest |vaegan - diffusers| of the posterior mean and of decode(z) on a random batch."""
    f = model.downsample_factor
    size = size or 8 * f
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, other.config.in_channels, size, size, generator=gen) * 2 - 1
    z = torch.randn(2, other.config.latent_channels, size // f, size // f, generator=gen)
    model.eval()
    return {
        "encode_mean": (model.encode(x).mean - other.encode(x).latent_dist.mean).abs().max().item(),
        "decode": (model.decode(z) - other.decode(z).sample).abs().max().item(),
    }


def check_target(fmt: str, out: Path, force: bool) -> None:
    """SourceError unless ``out`` may be written: an existing file, or a non-empty dir, is
    replaced only with ``--force`` (it names what is there); an unwritable place is one line,
    found before the model is read."""
    if fmt == "diffusers" and out.is_dir() and any(out.iterdir()) and not force:
        found = sorted(p.name for p in out.iterdir())
        listed = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise SourceError(f"{out} is not empty ({listed}); pass --force to write into it "
                          "(files of the same names are replaced), or pick an empty dir")
    if fmt == "ldm" and out.exists() and not force:
        raise SourceError(f"{out} exists; pass --force to replace it, or pick another path")
    directory = out if fmt == "diffusers" else out.parent
    probe = directory / f".vaegan-export-probe-{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise SourceError(f"cannot write to {directory} ({err.strerror or err}); pick a "
                          "writable place for OUT") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vaegan-export",
        description="Write a trained autoencoder where Stable Diffusion tooling loads it.",
    )
    parser.add_argument("source", help="a vaegan run dir or checkpoint (or any source "
                                       "model.source accepts)")
    parser.add_argument("--to", required=True, nargs=2, metavar=("FORMAT", "OUT"),
                        help="diffusers OUT_DIR | ldm OUT.ckpt (or OUT.safetensors)")
    parser.add_argument("--weights", choices=WEIGHTS, default="auto",
                        help="auto: the EMA weights when the run has them (default); ema; raw")
    parser.add_argument("--scaling-factor", type=float, default=None,
                        help=f"diffusers config's latent scale (default {LDM_SCALING_FACTOR})")
    parser.add_argument("--force", action="store_true",
                        help="write into a non-empty OUT dir, or replace an OUT file")
    args = parser.parse_args(argv)
    fmt, out = args.to
    try:
        if fmt not in ("diffusers", "ldm"):
            raise SourceError(f"--to {fmt}: unknown format; use diffusers or ldm")
        check_target(fmt, Path(out), args.force)
        source = read_source(args.source, args.weights)
        model = build(source).eval()
        print(f"read {source.path} ({', '.join([source.kind, *source.notes])})")
        if fmt == "ldm":
            print(f"wrote {export_ldm(model, out)}")
            return 0
        if model.posterior_kwargs.get("parameterization", "clamp") != "clamp":
            print("note: diffusers computes the variance with LDM's clamp; this model's "
                  f"posterior is {model.posterior_kwargs['parameterization']}, so latent_dist.std "
                  "and samples differ (the mean and decode agree)", file=sys.stderr)
        export_diffusers(model, out, args.scaling_factor)
    except SourceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the target went away or filled up while writing
        print(f"error: cannot write {out} ({err.strerror or err})", file=sys.stderr)
        return 2
    import diffusers

    loaded = diffusers.AutoencoderKL.from_pretrained(out, local_files_only=True,
                                                     low_cpu_mem_usage=False)
    diffs = max_differences(model, loaded)
    print(f"wrote {out} (diffusers AutoencoderKL); reloaded it: max |vaegan - diffusers| "
          f"encode mean {diffs['encode_mean']:.2e}, decode {diffs['decode']:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
