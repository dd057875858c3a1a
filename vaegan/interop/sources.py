"""Reading an autoencoder from wherever its weights live, without executing pickled code.

Every source becomes one LDM-named state dict (``keys``), and the architecture is read from
its tensor shapes (``keys.architecture``): a vaegan run dir or checkpoint, a diffusers model
dir, an LDM/SD ``.ckpt`` (whole model or first stage only) or a ``.safetensors`` file.
Checkpoints are opened with ``torch.load(weights_only=True)``, diffusers models only from
safetensors files.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vaegan.interop import keys as K
from vaegan.models.autoencoder import AutoencoderKL, num_groups
from vaegan.vocab.layout import CHECKPOINTS, RunLayout

WEIGHTS = ("auto", "ema", "raw")
"""Which weights of a vaegan checkpoint: ``auto`` = the EMA weights when it has them."""

WHAT_WORKS = (
    "expected a vaegan run dir or checkpoint, a diffusers model dir (config.json + "
    "diffusion_pytorch_model.safetensors), an LDM/Stable Diffusion .ckpt, or a .safetensors file"
)


class SourceError(ValueError):
    """A path that is not an autoencoder vaegan can read; the message says why in one line."""


@dataclass
class Source:
    """An autoencoder's weights in LDM's names, plus what the weights do not say."""

    path: Path
    kind: str
    ldm: dict[str, Tensor]
    posterior: dict[str, Any] | None = None  # vaegan runs: the run's; others: LDM's clamp
    resolution: int | None = None
    notes: list[str] = field(default_factory=list)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def _torch_load(path: Path) -> Any:
    """``weights_only=True``: tensors and plain containers, never code."""
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:  # a legacy (non-zip) file cannot be memory-mapped
            if "mmap" not in str(err):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only's refusal: globals, unsupported opcodes
        raise SourceError(
            f"{path} holds Python objects other than tensors and plain data (refused: "
            "unpickling them can run code)"
        ) from None
    except Exception as err:  # any garbage: torch's unpickler fails in many ways
        raise SourceError(
            f"{path} is not a readable checkpoint ({_first_line(err)}); {WHAT_WORKS}"
        ) from None


def _safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise SourceError(f"{path} is not a readable .safetensors file ({_first_line(err)})") \
            from None


def _run_config(run_dir: Path) -> tuple[dict[str, Any] | None, int | None]:
    """(model.posterior, data.image_size) from a vaegan run dir's composed config."""
    from omegaconf import OmegaConf

    config = RunLayout(run_dir).hydra_config
    if not config.is_file():
        return None, None
    cfg = OmegaConf.load(config)
    posterior = OmegaConf.select(cfg, "model.posterior", default=None)
    size = OmegaConf.select(cfg, "data.image_size", default=None, throw_on_resolution_failure=False)
    posterior = OmegaConf.to_container(posterior) if posterior is not None else None
    return posterior, int(size) if isinstance(size, int) else None


def _state_dict(blob: Any, path: Path, weights: str) -> tuple[dict[str, Any], list[str]]:
    """The state dict a loaded checkpoint holds; a vaegan checkpoint's EMA weights per
    ``weights``."""
    if not isinstance(blob, dict):
        raise SourceError(f"{path} holds a {type(blob).__name__}, not a state dict; {WHAT_WORKS}")
    state = blob.get("state_dict", blob)
    if not isinstance(state, dict):
        raise SourceError(f"{path}: its state_dict is a {type(state).__name__}; {WHAT_WORKS}")
    ema = blob.get("ema") or {}
    has_ema = bool(ema.get("autoencoder")) and int(ema.get("n_averaged", 0)) > 0
    if weights == "ema" and not has_ema:
        raise SourceError(f"{path} has no EMA weights (trained without callbacks.ema.decay)")
    if has_ema and weights in ("auto", "ema"):
        ema_state = {f"{K.VAEGAN_PREFIX}{k}": v for k, v in ema["autoencoder"].items()}
        return ema_state, [f"EMA weights (decay {ema.get('decay')}, "
                           f"{int(ema['n_averaged'])} updates)"]
    return state, []


def _read_file(path: Path, weights: str) -> Source:
    if path.suffix == ".safetensors":
        state, notes, kind = _safetensors(path), [], "safetensors"
    else:
        state, notes = _state_dict(_torch_load(path), path, weights)
        kind = "checkpoint"
    naming, state = K.strip_prefix(state)
    if naming == "unknown":
        raise SourceError(
            f"{path} holds no KL-autoencoder weights vaegan recognises (none of vaegan's "
            "`autoencoder.encoder.*`, LDM/SD's `first_stage_model.*` / `encoder.down.N.block.*` "
            "or diffusers' `encoder.down_blocks.*` names); " + WHAT_WORKS
        )
    tensors = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    if naming == "vaegan":
        ldm = K.to_ldm(tensors)
    elif naming == "diffusers":
        ldm = K.diffusers_to_ldm(tensors)
    else:
        ldm = tensors
    posterior, resolution = (None, None)
    if naming == "vaegan" and path.parent.name == CHECKPOINTS:
        posterior, resolution = _run_config(path.parent.parent)
    return Source(path, f"{naming} {kind}", ldm, posterior, resolution, notes)


def _diffusers_dir(path: Path) -> Path | None:
    """The folder holding an AutoencoderKL's config.json: the dir itself or a pipeline's vae/."""
    for candidate in (path, path / "vae"):
        if (candidate / "config.json").is_file():
            return candidate
    return None


def _read_diffusers(path: Path) -> Source:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise SourceError(f"{path}/config.json is not readable JSON ({_first_line(err)})") \
            from None
    cls = config.get("_class_name") if isinstance(config, dict) else None
    if cls != "AutoencoderKL":
        raise SourceError(f"{path} is a diffusers {cls or 'model'}, not an AutoencoderKL")
    _check_diffusers_config(config, path)
    try:
        import diffusers
    except ImportError:
        raise SourceError(
            f"{path} is a diffusers model; reading it needs diffusers: "
            "pip install 'vaegan[diffusers]'"
        ) from None
    try:
        model = diffusers.AutoencoderKL.from_pretrained(
            path, local_files_only=True, use_safetensors=True, low_cpu_mem_usage=False
        )
    except (OSError, ValueError) as err:
        raise SourceError(
            f"{path}: diffusers could not load it from safetensors ({_first_line(err)})"
        ) from None
    except RuntimeError as err:  # "Error(s) in loading state_dict": config.json vs weights
        raise SourceError(_config_mismatch(path, err)) from None
    ldm = K.diffusers_to_ldm({k: v.detach() for k, v in model.state_dict().items()})
    return Source(path, "diffusers model", ldm, None, int(config.get("sample_size") or 0) or None)


def _config_mismatch(path: Path, err: RuntimeError) -> str:
    """One line for diffusers' multi-line "size mismatch for …" (a config.json edited, or
    copied from another model): how many tensors, and the first."""
    lines = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
    first = lines[0].rstrip(".") if lines else _first_line(err)
    return (
        f"{path}/config.json disagrees with its weights: {len(lines) or 1} tensors do not fit "
        f"(e.g. {first}); use the config.json saved with these weights"
    )


def _check_diffusers_config(config: dict[str, Any], path: Path) -> None:
    """What vaegan's AutoencoderKL cannot express: other block types, activations, groups."""
    blocks = set(config.get("down_block_types", [])) | set(config.get("up_block_types", []))
    problems = []
    if not blocks <= {"DownEncoderBlock2D", "UpDecoderBlock2D"}:
        problems.append(f"block types {sorted(blocks)}")
    if config.get("act_fn", "silu") != "silu":
        problems.append(f"act_fn={config['act_fn']}")
    if not (config.get("use_quant_conv", True) and config.get("use_post_quant_conv", True)):
        problems.append("no quant_conv/post_quant_conv")
    groups = config.get("norm_num_groups", 32)
    channels = config.get("block_out_channels", [])
    if any(num_groups(c) != groups for c in channels):
        problems.append(
            f"norm_num_groups={groups} with block_out_channels={channels} (vaegan uses the "
            "largest divisor <= 32 of each layer's channels)"
        )
    if problems:
        raise SourceError(
            f"{path}: this AutoencoderKL has {', '.join(problems)}, which vaegan's SD-style "
            "autoencoder does not have"
        )


def read_source(path: str | os.PathLike, weights: str = "auto") -> Source:
    """Any supported source as LDM-named tensors; one-line SourceError for anything else."""
    if weights not in WEIGHTS:
        raise SourceError(f"weights={weights!r} is unknown; allowed: {', '.join(WEIGHTS)}")
    path = Path(os.path.expanduser(str(path)))
    if not path.exists():
        raise SourceError(f"{path} does not exist; {WHAT_WORKS}")
    if path.is_dir():
        if (found := _diffusers_dir(path)) is not None:
            return _read_diffusers(found)
        if (last := RunLayout(path).last_ckpt).is_file():
            source = _read_file(last, weights)
            source.kind = "vaegan run"
            return source
        raise SourceError(f"{path} is a directory but not a model dir vaegan reads; {WHAT_WORKS}")
    return _read_file(path, weights)


def _autoencoder_parts(ldm: dict[str, Tensor]) -> set[str]:
    return {k for k in ldm if k.startswith(("encoder.", "decoder.", "quant_conv.",
                                            "post_quant_conv."))}


def architecture(source: Source, resolution: int | None = None) -> dict[str, Any]:
    """The source's AutoencoderKL keywords (``keys.architecture``), or a one-line SourceError."""
    try:
        return K.architecture(source.ldm, resolution or source.resolution)
    except (KeyError, ValueError) as err:
        raise SourceError(
            f"{source.path} does not look like an SD-style KL autoencoder "
            f"(no {_first_line(err)}); {WHAT_WORKS}"
        ) from None


def build(
    source: Source,
    resolution: int | None = None,
    posterior: dict[str, Any] | None = None,
    activation_checkpointing: str = "none",
) -> AutoencoderKL:
    """vaegan's AutoencoderKL with the source's architecture and weights (strict)."""
    arch = architecture(source, resolution)
    model = AutoencoderKL(
        **arch,
        posterior=source.posterior if posterior is None else posterior,
        activation_checkpointing=activation_checkpointing,
    )
    names = list(model.state_dict())
    state = K.from_ldm(source.ldm, names)
    expected = set(K.to_ldm(model.state_dict()))
    missing = sorted(expected - set(source.ldm))
    unexpected = sorted(_autoencoder_parts(source.ldm) - expected)
    if missing or unexpected:
        raise SourceError(
            f"{source.path} ({source.kind}) does not match the architecture read from it: "
            f"{len(missing)} tensors missing (e.g. {missing[:2]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:2]})"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise SourceError(
            f"{source.path}: its tensors do not fit the architecture read from it "
            f"({_first_line(err)})"
        ) from None
    return model


def load_autoencoder(path: str | os.PathLike, weights: str = "auto") -> AutoencoderKL:
    """vaegan's autoencoder (``encode(x)`` -> DiagonalGaussian, ``decode(z)``) from ``path``.

    ``path``: a vaegan run dir or checkpoint, a diffusers model dir (or a pipeline dir with
    ``vae/``), an LDM/SD ``.ckpt`` (whole model or first stage) or a ``.safetensors`` file; the
    architecture is read from the weights. ``weights``: for a vaegan checkpoint trained with EMA,
    ``auto``/``ema`` take the averaged weights, ``raw`` the trained ones. Returned in eval mode.
    """
    return build(read_source(path, weights)).eval()


def pretrained(
    source: str,
    weights: str = "auto",
    resolution: int | None = None,
    posterior: dict[str, Any] | None = None,
    activation_checkpointing: str = "none",
    **architecture_keys: Any,
) -> AutoencoderKL:
    """``model=pretrained``: the autoencoder to fine-tune, built from ``model.source``.

    ``resolution`` (``data.image_size``) must be divisible by the source's downsampling
    factor; ``posterior`` null keeps the source's (a vaegan run's, else LDM's clamp).
    Architecture keys (``model.ch=...``, e.g. from another preset) must agree with the source.
    """
    try:
        src = read_source(source, weights)
        arch = architecture(src, resolution)
    except SourceError as err:
        raise SourceError(f"model.source: {err}") from None
    for key, value in architecture_keys.items():
        if key not in arch:
            raise ValueError(f"model.{key} is not a setting of model=pretrained")
        if (list(value) if isinstance(value, (list, tuple)) else value) != arch[key]:
            raise ValueError(
                f"model.{key}={value}, but model.source has {key}={arch[key]}: with "
                "model=pretrained the architecture comes from the source; drop the override"
            )
    factor = 2 ** (len(arch["ch_mult"]) - 1)
    if resolution is not None and resolution % factor:
        raise ValueError(
            f"data.image_size={resolution} is not divisible by the downsampling factor {factor} "
            f"of model.source={source}; pick a multiple of {factor}"
        )
    try:
        model = build(src, resolution, posterior, activation_checkpointing)
    except SourceError as err:
        raise SourceError(f"model.source: {err}") from None
    return model
