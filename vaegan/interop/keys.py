"""State-dict names of a KL autoencoder in vaegan's, LDM's and diffusers' layouts.

LDM's names (CompVis ``ldm.modules.diffusionmodules.model``: ``encoder.down.0.block.1.conv2``,
``mid.attn_1.q``) are the hub: vaegan maps its own names to them here, diffusers ships the
LDM -> diffusers conversion itself (``convert_ldm_vae_checkpoint``, used by ``export``), and
the diffusers -> LDM direction below is its inverse (``tests/test_interop.py`` checks that
``diffusers -> LDM -> diffusers`` through diffusers' own code is the identity). The
architecture of a source is read from the shapes of its LDM-named tensors, whatever the
source's format, so there is one rule for it (``architecture``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

# vaegan's NormActConv indices -> LDM ResnetBlock / Encoder.out names
_RESNET = {"block1.0": "norm1", "block1.2": "conv1", "block2.0": "norm2", "block2.3": "conv2",
           "shortcut": "nin_shortcut"}
_OUT = {"out.0": "norm_out", "out.2": "conv_out"}
_MID = {"0": "mid.block_1", "1": "mid.attn_1", "2": "mid.block_2"}
# LDM whole-model prefixes, as diffusers lists them (LDM_VAE_KEYS), and vaegan's Lightning one.
LDM_PREFIXES = ("first_stage_model.", "vae.")
VAEGAN_PREFIX = "autoencoder."


def _kind(rest: str) -> str:
    """What a module of vaegan's flat down/up Sequential is, from its parameter names."""
    head = rest.split(".")[0]
    if head in ("block1", "block2", "shortcut"):
        return "resnet"
    if head in ("norm", "qkv", "proj_out"):
        return "attn"
    if head == "conv":
        return "resample"
    return "conv"  # the encoder's first conv (index 0): `weight`, `bias`


def _inner(kind: str, rest: str) -> str:
    """A parameter's name inside its block, in LDM's names (`qkv` stays: it is split later)."""
    if kind == "resnet":
        module, param = rest.rsplit(".", 1)
        return f"{_RESNET[module]}.{param}"
    return rest


def vaegan_to_ldm_names(keys: Iterable[str]) -> dict[str, str]:
    """vaegan key -> LDM key, from the keys alone (``AutoencoderKL.state_dict()``'s).

    vaegan's encoder/decoder are flat Sequentials (``encoder.down.7.block1.0.weight``); walking
    them in order recovers LDM's level and block indices (``encoder.down.1.block.0.norm1``).
    A fused ``qkv`` keeps its name here; ``to_ldm`` splits it into LDM's ``q``, ``k``, ``v``.
    """
    keys = list(keys)
    names: dict[str, str] = {}
    grouped: dict[tuple[str, int], list[str]] = {}
    for key in keys:
        match = re.match(r"(encoder\.down|decoder\.up)\.(\d+)\.(.+)", key)
        if match:
            grouped.setdefault((match[1], int(match[2])), []).append(match[3])
            continue
        part, _, rest = key.partition(".")
        match = re.match(r"mid\.(\d)\.(.+)", rest)
        if match:
            kind = _kind(match[2])
            names[key] = f"{part}.{_MID[match[1]]}.{_inner(kind, match[2])}"
        elif rest.startswith(("out.0.", "out.2.")):
            names[key] = f"{part}.{_OUT[rest[:5]]}.{rest[6:]}"
        else:  # conv_in, quant_conv, post_quant_conv: the same names
            names[key] = key
    levels = 1 + sum(1 for (seq, _), rests in grouped.items()
                     if seq == "encoder.down" and _kind(rests[0]) == "resample")
    for seq, step in (("encoder.down", 1), ("decoder.up", -1)):
        indices = sorted(i for s, i in grouped if s == seq)
        level, block = (0 if step == 1 else levels - 1), -1
        part, where = seq.split(".")
        sample = "downsample" if step == 1 else "upsample"
        for index in indices:
            rests = grouped[(seq, index)]
            kind = _kind(rests[0])
            for rest in rests:
                key = f"{seq}.{index}.{rest}"
                if kind == "conv":
                    names[key] = f"encoder.conv_in.{rest}"
                elif kind == "resnet":
                    names[key] = f"{part}.{where}.{level}.block.{block + 1}.{_inner(kind, rest)}"
                elif kind == "attn":
                    names[key] = f"{part}.{where}.{level}.attn.{block}.{rest}"
                else:
                    names[key] = f"{part}.{where}.{level}.{sample}.{rest}"
            if kind == "resnet":
                block += 1
            elif kind == "resample":
                level, block = level + step, -1
    return names


def to_ldm(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """vaegan's autoencoder state dict in LDM's names (attention q/k/v as separate 1x1 convs)."""
    out: dict[str, Tensor] = {}
    for key, ldm_key in vaegan_to_ldm_names(state).items():
        value = state[key]
        if ".qkv." in ldm_key:
            for name, chunk in zip("qkv", value.chunk(3, dim=0), strict=True):
                out[ldm_key.replace(".qkv.", f".{name}.")] = chunk.clone()
        else:
            out[ldm_key] = value
    return out


def from_ldm(ldm: Mapping[str, Tensor], keys: Iterable[str]) -> dict[str, Tensor]:
    """The inverse of ``to_ldm`` for a model whose state-dict keys are ``keys``; tensors the
    model has no name for are left out (the caller's strict load reports what is missing)."""
    out: dict[str, Tensor] = {}
    for key, ldm_key in vaegan_to_ldm_names(keys).items():
        if ".qkv." in ldm_key:
            parts = [ldm.get(ldm_key.replace(".qkv.", f".{n}.")) for n in "qkv"]
            if all(p is not None for p in parts):
                out[key] = _as_conv1x1(torch.cat(parts, dim=0), key)
        elif ldm_key in ldm:
            out[key] = _as_conv1x1(ldm[ldm_key], key)
    return out


def _as_conv1x1(value: Tensor, key: str) -> Tensor:
    """Attention projections stored as Linear ([C, C]) become 1x1 convs ([C, C, 1, 1])."""
    if key.endswith((".qkv.weight", ".proj_out.weight")) and value.ndim == 2:
        return value[:, :, None, None]
    return value


# ------------------------------------------------------------------ diffusers -> LDM
_DIFFUSERS_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v",
                   "to_out.0": "proj_out",
                   # diffusers < 0.14 names, still in some saved models
                   "query": "q", "key": "k", "value": "v", "proj_attn": "proj_out"}


def diffusers_to_ldm(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """diffusers ``AutoencoderKL`` names -> LDM names; attention Linear weights -> 1x1 convs.

    The inverse of diffusers' ``convert_ldm_vae_checkpoint`` for the block types it converts
    (DownEncoderBlock2D / UpDecoderBlock2D, attention in the mid block only).
    """
    levels = 1 + max(
        (int(m[1]) for k in state if (m := re.match(r"encoder\.down_blocks\.(\d+)\.", k))),
        default=-1,
    )
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        new = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        new = re.sub(r"down_blocks\.(\d+)\.resnets\.", r"down.\1.block.", new)
        new = re.sub(r"down_blocks\.(\d+)\.downsamplers\.0\.", r"down.\1.downsample.", new)
        new = re.sub(r"up_blocks\.(\d+)\.resnets\.",
                     lambda m: f"up.{levels - 1 - int(m[1])}.block.", new)
        new = re.sub(r"up_blocks\.(\d+)\.upsamplers\.0\.",
                     lambda m: f"up.{levels - 1 - int(m[1])}.upsample.", new)
        new = re.sub(r"mid_block\.resnets\.(\d)\.", lambda m: f"mid.block_{int(m[1]) + 1}.", new)
        match = re.match(r"(.*)mid_block\.attentions\.0\.(.+)\.(weight|bias)$", new)
        if match:
            new = f"{match[1]}mid.attn_1.{_DIFFUSERS_ATTN[match[2]]}.{match[3]}"
            if value.ndim == 2:
                value = value[:, :, None, None]
        out[new] = value
    return out


# ------------------------------------------------------------------ naming and architecture
def strip_prefix(state: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(naming, the autoencoder's tensors without a whole-model prefix).

    naming is ``vaegan`` (a vaegan Lightning checkpoint or autoencoder), ``ldm`` (LDM/SD,
    whole-model or first-stage-only) or ``diffusers``; ``unknown`` when none fits.
    """
    for prefix in (VAEGAN_PREFIX, *LDM_PREFIXES):
        if any(k.startswith(prefix + "encoder.") for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            break
    keys = list(state)
    if any(k.startswith("encoder.down_blocks.") for k in keys):
        return "diffusers", dict(state)
    if any(re.match(r"encoder\.down\.\d+\.block\.", k) for k in keys):
        return "ldm", dict(state)
    if "encoder.down.0.weight" in keys:
        return "vaegan", dict(state)
    return "unknown", dict(state)


def architecture(ldm: Mapping[str, Tensor], resolution: int | None = None) -> dict[str, Any]:
    """AutoencoderKL constructor keywords read from the shapes of LDM-named tensors.

    ``resolution`` only places attention (LDM's ``attn_resolutions`` are in pixels at each
    level); it defaults to 32 x the downsampling factor.
    """
    def shape(key: str) -> tuple[int, ...]:
        if key not in ldm:
            raise KeyError(key)
        return tuple(ldm[key].shape)

    ch, in_channels = shape("encoder.conv_in.weight")[:2]
    levels = 1 + max(int(m[1]) for k in ldm if (m := re.match(r"encoder\.down\.(\d+)\.", k)))
    blocks = 1 + max(
        int(m[1]) for k in ldm if (m := re.match(r"encoder\.down\.0\.block\.(\d+)\.", k))
    )
    ch_mult = []
    for level in range(levels):
        out_ch = shape(f"encoder.down.{level}.block.0.conv1.weight")[0]
        if out_ch % ch:
            raise KeyError(f"encoder.down.{level}: {out_ch} channels, not a multiple of {ch}")
        ch_mult.append(out_ch // ch)
    resolution = resolution or 32 * 2 ** (levels - 1)
    attn = [resolution // 2**level for level in range(levels)
            if f"encoder.down.{level}.attn.0.q.weight" in ldm]
    return {
        "in_channels": in_channels,
        "out_channels": shape("decoder.conv_out.weight")[0],
        "ch": ch,
        "ch_mult": ch_mult,
        "num_res_blocks": blocks,
        "z_channels": shape("encoder.conv_out.weight")[0] // 2,
        "embed_dim": shape("quant_conv.weight")[0] // 2,
        "attn_resolutions": attn,
        "resolution": resolution,
        "use_mid_attn": "encoder.mid.attn_1.q.weight" in ldm,
    }
