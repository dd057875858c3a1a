"""Validation of the composed config: one line that names the key and the allowed values.

Runs before anything is built, so a typo costs a second, not a crashed cluster job.
"""

from __future__ import annotations

from omegaconf import DictConfig

from vaegan.schedules import BETA_SCHEDULES


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _number(cfg: DictConfig, key: str) -> float:
    from omegaconf import OmegaConf

    value = OmegaConf.select(cfg, key)
    _require(
        isinstance(value, (int, float)) and not isinstance(value, bool),
        f"{key}={value!r} must be a number",
    )
    return value


def validate(cfg: DictConfig) -> None:
    """Check the values whose mistakes would otherwise surface deep inside torch or later."""
    beta = _number(cfg, "beta")
    _require(beta >= 0, f"beta={beta} must be >= 0 (the KL weight)")
    gan_start = _number(cfg, "gan_start")
    _require(
        gan_start >= 0 and float(gan_start).is_integer(),
        f"gan_start={gan_start} must be an integer >= 0 (a generator step)",
    )
    steps = _number(cfg, "steps")
    _require(steps >= 1 and float(steps).is_integer(), f"steps={steps} must be an integer >= 1")
    _require(
        cfg.schedule.kind in BETA_SCHEDULES,
        f"schedule.kind={cfg.schedule.kind!r} is unknown; allowed: {', '.join(BETA_SCHEDULES)}",
    )
    _require(
        cfg.trainer.get("max_steps", -1) in (-1, None),
        f"trainer.max_steps={cfg.trainer.max_steps}: set the top-level `steps` instead "
        "(generator steps; Lightning's max_steps counts both optimizers)",
    )
    _require(
        cfg.trainer.get("gradient_clip_val") is None,
        "trainer.gradient_clip_val is not used with manual optimisation; "
        "set optim.grad_clip / optim.disc_grad_clip",
    )
    model = cfg.model
    _require(len(model.ch_mult) >= 1, "model.ch_mult must list at least one multiplier")
    for key in ("z_channels", "embed_dim", "ch", "num_res_blocks"):
        _require(model[key] >= 1, f"model.{key}={model[key]} must be >= 1")
    factor = 2 ** (len(model.ch_mult) - 1)
    size = cfg.data.image_size
    _require(
        size % factor == 0,
        f"data.image_size={size} is not divisible by the model's downsampling factor {factor} "
        f"(2^(len(model.ch_mult)-1)); pick a multiple of {factor}",
    )
    for key in ("perceptual_weight", "disc_weight", "free_bits", "adaptive_max"):
        value = cfg.loss.objective.get(key, 0)
        _require(value >= 0, f"loss.objective.{key}={value} must be >= 0")
    _require(cfg.optim.lr > 0, f"optim.lr={cfg.optim.lr} must be > 0")
