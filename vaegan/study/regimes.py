"""What each arm actually trains under: its composed config, checked against its declaration.

An arm declares its whole regime (``conf/study/study.yaml``); Hydra composes it on top of
``conf/train.yaml``, whose defaults (a linear β warm-up, a learned output log-variance, ...)
would otherwise leak in. ``check_arm`` composes the arm exactly as its runs are composed and
compares β(t) at a few steps (from the real schedule object), the reconstruction reduction,
the log σ² bounds and every other declared setting; ``facts`` gives REPORT.md's regime table
from the same composed config, so the table shows what ran, not what was meant.
"""

from __future__ import annotations

import math
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from vaegan.study.config import GROUPS, Arm, Study
from vaegan.train import build_schedules, compose_train_config


def compose_arm(study: Study, arm: Arm, seed: int = 0) -> DictConfig:
    cfg = compose_train_config(study.run_dir(arm, seed), study.overrides(arm, seed))
    GlobalHydra.instance().clear()
    return cfg


def expected_beta(settings: dict[str, Any], step: int) -> float:
    """β at `step` as the declaration states it: constant, or 0 for `schedule.warmup_steps`
    then a linear ramp over `schedule.ramp_steps` (the only two kinds the study declares)."""
    beta = float(settings["beta"])
    kind = settings.get("schedule", "constant")
    if kind == "constant":
        return beta
    if kind == "linear":
        warmup, ramp = int(settings["schedule.warmup_steps"]), int(settings["schedule.ramp_steps"])
        return beta * min(max((step - warmup) / ramp, 0.0), 1.0)
    raise ValueError(f"schedule {kind!r}: the study declares constant or linear β only")


def check_steps(study: Study, arm: Arm) -> list[int]:
    """Steps β is checked at: start, inside warm-up and ramp (if any), gan_start, the end."""
    steps = [0, study.gan_start, study.steps - 1]
    if arm.settings.get("schedule") == "linear":
        warmup = int(arm.settings["schedule.warmup_steps"])
        ramp = int(arm.settings["schedule.ramp_steps"])
        steps += [warmup // 2, warmup + ramp // 2, warmup + ramp]
    return sorted(set(steps))


def check_arm(study: Study, arm: Arm, cfg: DictConfig | None = None) -> list[str]:
    """Mismatches between what the arm declares and what its runs would train under."""
    cfg = compose_arm(study, arm) if cfg is None else cfg
    problems = []
    choices = cfg.hydra.runtime.choices
    for key, want in arm.settings.items():
        got = choices.get(key) if key in GROUPS else OmegaConf.select(cfg, key)
        if isinstance(got, DictConfig | ListConfig):
            got = OmegaConf.to_container(got)
        if not _same(got, want):
            problems.append(f"{arm.key}: {key} = {got!r}, declared {want!r}")
    beta_schedule, gan = build_schedules(cfg)
    for step in check_steps(study, arm):
        got, want = beta_schedule(step), expected_beta(arm.settings, step)
        if not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-15):
            problems.append(f"{arm.key}: β({step}) = {got:g}, declared {want:g}")
    if gan.enabled != arm.gan:
        problems.append(f"{arm.key}: GAN {'on' if gan.enabled else 'off'}, declared"
                        f" {'on' if arm.gan else 'off'}")
    return problems


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return got is want or got == want
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        return math.isclose(float(got), float(want), rel_tol=1e-9)
    return got == want


def facts(study: Study, arm: Arm, cfg: DictConfig) -> dict[str, str]:
    """One row of the regime table, read from the composed config and the real schedules."""
    beta_schedule, gan = build_schedules(cfg)
    obj, post = cfg.loss.objective, cfg.model.posterior
    betas = [(step, beta_schedule(step)) for step in (0, study.gan_start, study.steps - 1)]
    if beta_schedule.kind == "constant":
        beta = f"{beta_schedule.beta:g}, constant"
    else:
        ramp_end = beta_schedule.warmup_steps + beta_schedule.ramp_steps
        beta = (f"{beta_schedule.kind}: 0 to step {beta_schedule.warmup_steps}, "
                f"{beta_schedule.beta:g} from {ramp_end}")
    beta += " (" + ", ".join(f"β({step})={value:g}" for step, value in betas) + ")"
    if post.parameterization == "clamp":
        bounds = f"clamp [{post.logvar_min:g}, {post.logvar_max:g}]"
    elif post.parameterization == "softplus":
        bounds = f"softplus + {post.min_var:g}"
    else:
        bounds = "unbounded"
    if gan.enabled:
        weight = (f"adaptive × {obj.disc_weight:g}" if obj.adaptive_weight
                  else f"fixed {obj.disc_weight:g}")
        gan_text = f"from {gan.gan_start}, {weight}" + (
            "; paired no-GAN branch" if cfg.get("gan_control") else "")
    else:
        gan_text = "off"
    latent = int(cfg.model.embed_dim) * (int(cfg.data.image_size)
                                         // 2 ** (len(cfg.model.ch_mult) - 1)) ** 2
    return {
        "arm": f"`{arm.key}`",
        "β(t)": beta,
        "reconstruction": f"{obj.rec_kind.upper()}, {obj.rec_reduction}",
        "log σ²": bounds,
        "output log-variance": "learned" if obj.learn_logvar else "fixed",
        "perceptual": (f"{obj.perceptual.net}{'' if obj.perceptual.pretrained else ' (random)'}"
                       f" × {obj.perceptual_weight:g}") if obj.perceptual_weight else "off",
        "GAN": gan_text,
        "latent": f"{cfg.model.embed_dim} ch, {latent} dims",
        "steps": str(cfg.steps),
    }


def scale_facts(cfg: DictConfig) -> str:
    """What every arm shares at this scale (model width, batch, lr, data), in one line."""
    return (f"data `{cfg.data.dataset}` at {cfg.data.image_size} px, batch"
            f" {cfg.data.batch_size}; autoencoder ch {cfg.model.ch}, ch_mult"
            f" {list(cfg.model.ch_mult)}; Adam lr {cfg.optim.lr:g}, betas"
            f" {list(cfg.optim.betas)}; discriminator ndf {cfg.loss.discriminator.ndf},"
            f" {cfg.loss.discriminator.n_layers} layers, {cfg.loss.objective.adv_loss} loss")


def regime_table(study: Study) -> tuple[list[dict[str, str]], str, list[str]]:
    """(rows, shared line, problems) for every arm the study trains."""
    rows, problems, shared = [], [], ""
    for arm in study.needed_arms():
        cfg = compose_arm(study, arm)
        problems += check_arm(study, arm, cfg)
        rows.append(facts(study, arm, cfg))
        shared = shared or scale_facts(cfg)
    return rows, shared, problems
