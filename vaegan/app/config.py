"""Validation of the composed config: types, and the rules no single constructor can check.

Each constructor owns the ranges of its own settings (``optim.lr`` in OptimConfig,
``beta`` in BetaSchedule, ``model.*`` in AutoencoderKL ...); what is left here spans
sections (the fork inside the run, the image size against LPIPS, devices against the
machine) or belongs to Lightning and the top level. It runs before anything is built, so a
typo costs a second, not a crashed cluster job; messages keep the shape of
``vaegan.vocab.checks.must``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import get_args

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vaegan.losses.perceptual import min_image_size
from vaegan.vocab.checks import must


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


# `on_existing_run`: what a new run does with a run dir that holds another run (app/rundir.py)
ON_EXISTING = ("refuse", "overwrite", "sibling")


def _require(ok: bool, key: str, value: object, rule: str, allowed: object = None) -> None:
    """ConfigError ``<key>=<value> must <rule>; allowed: <allowed>`` unless ``ok``."""
    if not ok:
        raise ConfigError(must(key, value, rule, allowed))


def _number(cfg: DictConfig, key: str) -> float:
    value = OmegaConf.select(cfg, key)
    _require(isinstance(value, (int, float)) and not isinstance(value, bool), key, value,
             "be a number")
    return value


@dataclass
class FaultsSchema:
    max_consecutive_nonfinite: int = 5


@dataclass
class RunSchema:
    """Types of the top-level keys: OmegaConf refuses ``steps=abc`` before anything runs."""

    beta: float
    gan_start: float  # integer-valued, checked below (a sweeper may pass 600.0)
    steps: float
    seed: int = 0
    ckpt_path: str | None = None
    on_existing_run: str = "refuse"
    gan_control: bool = False
    branch: str | None = None
    threads: int | None = None
    run_name: str = "run"
    diagnose: bool = True
    faults: FaultsSchema = field(default_factory=FaultsSchema)


def _typed(schema: type, values: object, prefix: str = "") -> object:
    """``values`` merged onto the dataclass ``schema``; type errors become one ConfigError line."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))
    except OmegaConfBaseException as err:
        key = f"{prefix}{err.full_key}" if err.full_key else prefix.rstrip(".") or "config"
        reason = str(getattr(err, "msg", err)).splitlines()[0]
        raise ConfigError(f"{key}: {reason}") from None
    except ValueError as err:  # a dataclass's own __post_init__ check
        raise ConfigError(str(err)) from None


def _available_devices(accelerator: str) -> tuple[int, str]:
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if gpu:
        return torch.cuda.device_count(), "CUDA GPUs"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cores or 1, "CPU cores"


def _check_devices(trainer: DictConfig) -> None:
    """``trainer.devices`` (a count, or GPU indices as a list) against what this machine has."""
    devices = trainer.get("devices", "auto")
    if devices in (None, "auto", -1, "-1"):
        return
    available, what = _available_devices(str(trainer.get("accelerator", "auto")))
    if isinstance(devices, (list, ListConfig)):
        wanted, highest = len(devices), max((int(d) for d in devices), default=-1) + 1
    else:
        _require(str(devices).isdigit(), "trainer.devices", devices, "be a count or a list")
        wanted = highest = int(devices)
    _require(wanted >= 1, "trainer.devices", devices, "ask for at least one device")
    _require(highest <= available, "trainer.devices", devices,
             f"fit the {available} {what} this machine has",
             f"at most {available}, or trainer=cpu")


def _check_gan_control(cfg: DictConfig, gan_start: int, steps: int) -> None:
    """The pair needs a GAN that switches on inside the run, at an optimizer-step boundary."""
    branch = cfg.get("branch")
    _require(branch in (None, "gan", "control"), "branch", branch,
             "be left alone (gan_control sets it)", "null, gan, control")
    if not cfg.get("gan_control"):
        return
    _require(bool(cfg.loss.get("gan", True)), "loss.gan", False,
             "be true: gan_control=true needs the GAN (the pair compares a GAN run with its "
             "no-GAN control)", "loss=vaegan or loss=ldm")
    _require(1 <= gan_start < steps, "gan_start", gan_start,
             f"lie inside the run with gan_control=true (the fork): 1 <= gan_start < "
             f"steps={steps}")
    accumulate = int(cfg.optim.get("accumulate", 1))
    _require(gan_start % accumulate == 0, "gan_start", gan_start,
             f"be a multiple of optim.accumulate={accumulate} with gan_control=true (the fork "
             "is at an optimizer-step boundary)")


SEED_MAX = 2**32 - 1  # numpy's seed range, which seed_everything enforces


def _check_training_values(cfg: DictConfig) -> None:
    """Values torch or Lightning would only refuse mid-run, or accept and ignore."""
    seed = cfg.get("seed", 0)
    _require(0 <= seed <= SEED_MAX, "seed", seed, f"be an integer in 0..{SEED_MAX}")
    interval = cfg.trainer.get("val_check_interval")
    if interval is not None:
        _require(
            isinstance(interval, (int, float)) and not isinstance(interval, bool)
            and (interval >= 1 if isinstance(interval, int) else 0 < interval <= 1),
            "trainer.val_check_interval", interval,
            "be a number of steps >= 1 or a fraction of an epoch in (0, 1]", "e.g. 500 or 0.25",
        )
    precision = cfg.trainer.get("precision")
    if precision is not None:
        from lightning.fabric.connector import _PRECISION_INPUT

        allowed = [str(v) for group in get_args(_PRECISION_INPUT) for v in get_args(group)]
        _require(str(precision) in allowed, "trainer.precision", precision,
                 "be a precision Lightning knows", allowed)
    every = OmegaConf.select(cfg, "callbacks.checkpoint.every_n_gen_steps")
    if every is not None:
        _require(isinstance(every, int) and every >= 1,
                 "callbacks.checkpoint.every_n_gen_steps", every, "be an integer >= 1")
    size = cfg.data.image_size
    weight = OmegaConf.select(cfg, "loss.objective.perceptual_weight", default=0) or 0
    net = OmegaConf.select(cfg, "loss.objective.perceptual.net", default="alex")
    minimum = min_image_size(str(net))
    _require(not (weight > 0 and isinstance(size, int) and size < minimum), "data.image_size",
             size, f"be >= {minimum} for the perceptual loss (LPIPS {net} needs {minimum} px)",
             "a larger data.image_size, or loss.objective.perceptual_weight=0")


def check_run_name(run_name: object) -> None:
    """``run_name`` names one folder below outputs/ (multirun/): a ``/`` or ``..`` in it would
    put the run dir, and what overwrite deletes, outside them."""
    name = str(run_name)
    _require(bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0"),
             "run_name", run_name, "be one folder name (it names outputs/<run_name>/)",
             "a name without '/' or '\\', other than '.' and '..'; for another place set "
             "hydra.run.dir=...")


def validate(cfg: DictConfig) -> None:
    """Check the values whose mistakes would otherwise surface deep inside torch or later."""
    _typed(RunSchema, {f.name: cfg[f.name] for f in fields(RunSchema) if f.name in cfg})
    gan_start = _number(cfg, "gan_start")
    steps = _number(cfg, "steps")
    _require(steps >= 1 and float(steps).is_integer(), "steps", steps, "be an integer >= 1")
    check_run_name(cfg.get("run_name", "run"))
    existing = cfg.get("on_existing_run", "refuse")
    _require(existing in ON_EXISTING, "on_existing_run", existing,
             "say what to do with a run dir that holds a run", ON_EXISTING)
    _check_gan_control(cfg, int(gan_start), int(steps))
    threads = cfg.get("threads")
    _require(threads is None or int(threads) >= 1, "threads", threads, "be >= 1 or null")
    _require(cfg.trainer.get("max_steps", -1) in (-1, None), "trainer.max_steps",
             cfg.trainer.get("max_steps"), "be unset: Lightning's max_steps counts both "
             "optimizers", "the top-level steps (generator steps)")
    _require(cfg.trainer.get("gradient_clip_val") is None, "trainer.gradient_clip_val",
             cfg.trainer.get("gradient_clip_val"), "be unset: manual optimisation ignores it",
             "optim.grad_clip / optim.disc_grad_clip")
    model = cfg.model
    if "source" in model.keys():  # model=pretrained (`in` is False for a missing `???` value)
        _require(not OmegaConf.is_missing(model, "source"), "model.source", "???",
                 "be given with model=pretrained (model=pretrained needs model.source=PATH)",
                 "a vaegan run dir or checkpoint, a diffusers model dir, an LDM/SD .ckpt or a "
                 ".safetensors file")
    _check_training_values(cfg)
    _check_devices(cfg.trainer)
