"""The study's plan before it trains: which runs, how many steps of which kind, how long.

The estimate multiplies the steps of each run (no-GAN steps, GAN steps, and the steps of its
no-GAN branch) by the scale's per-step costs (`scale.cost`, measured and dated in the scale's
config), then packs the runs onto `workers` longest first, as the runner starts them.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from pathlib import Path

from vaegan.study.config import Arm, Study
from vaegan.study.runner import Job


@dataclass(frozen=True)
class Planned:
    job: Job
    arm: Arm
    nogan_steps: int
    gan_steps: int
    control_steps: int
    cost_s: float


def plan(study: Study) -> list[Planned]:
    """Every job with its steps and estimated cost, longest first (the order they run in)."""
    cost_of = study.cost
    arms = {arm.key: arm for arm in study.needed_arms()}
    out = []
    for job in study.jobs():
        arm = arms[job.arm]
        gan = study.steps - study.gan_start if arm.gan else 0
        control = gan if arm.paired else 0
        nogan = study.steps - gan
        cost = (float(cost_of.get("per_run", 0.0)) * (2 if arm.paired else 1)
                + float(cost_of.get("nogan_step", 0.0)) * (nogan + control)
                + float(cost_of.get("gan_step", 0.0)) * gan)
        out.append(Planned(job, arm, nogan, gan, control, cost))
    return sorted(out, key=lambda planned: -planned.cost_s)


def makespan(costs: list[float], workers: int, cores: int | None = None) -> float:
    """Wall time of running `costs` in order on `workers` slots (each takes the next free one).
    More single-thread workers than ``cores`` share them: each slot runs that much slower."""
    slots = [0.0] * max(1, workers)
    for cost in costs:
        heapq.heappush(slots, heapq.heappop(slots) + cost)
    cores = cores or os.cpu_count() or workers
    return max(slots) * max(1.0, workers / cores)


def prerequisites(study: Study) -> list[str]:
    """What the runs need on disk and do not find (data, LPIPS weights): one line each."""
    missing = []
    settings = next(iter(study.arms.values())).settings if study.arms else {}
    if settings.get("data") in ("cifar10", "celeba"):
        root = next((o.split("=", 1)[1] for o in reversed(study.common)
                     if o.startswith("data.root=")), "datasets")
        folder = {"cifar10": "cifar-10-batches-py", "celeba": "celeba"}[settings["data"]]
        if not (Path(root) / folder).is_dir():
            missing.append(f"data: {Path(root) / folder} is not there (stage it before the run;"
                           " the study never downloads; elsewhere: extra=['data.root=DIR'])")
    return missing


def plan_text(study: Study, planned: list[Planned]) -> str:
    """The plan as printed by ``dry_run=true`` (and at the start of every study)."""
    unit = study.cost.get("unit", "s")
    seeds = sorted({p.job.seed for p in planned})
    part = "" if study.part is None else f"part {study.part}: "
    lines = [f"plan: {part}{len(planned)} runs ({sum(p.control_steps > 0 for p in planned)}"
             f" with a paired no-GAN branch), {study.steps} steps each, GAN from"
             f" {study.gan_start}, seeds {seeds}, {study.workers} at a time x"
             f" {study.threads or 'default'} thread(s)"]
    by_arm: dict[str, list[Planned]] = {}
    for p in planned:
        by_arm.setdefault(p.arm.key, []).append(p)
    lines.append(f"  {'arm':<20} {'runs':>4} {'no-GAN':>7} {'GAN':>5} {'branch':>6}"
                 f" {'est. ' + unit + '/run':>14}")
    for key, jobs in by_arm.items():
        first = jobs[0]
        lines.append(f"  {key:<20} {len(jobs):>4} {first.nogan_steps:>7} {first.gan_steps:>5}"
                     f" {first.control_steps:>6} {first.cost_s:>14.0f}")
    total = sum(p.cost_s for p in planned)
    wall = makespan([p.cost_s for p in planned], study.workers)
    lines.append(f"estimate: {total:.0f} {unit} in all; ~{wall / 60:.0f} min wall with"
                 f" {study.workers} worker(s) on an otherwise idle machine (per-step costs from"
                 f" the scale config: {study.cost})")
    perceptual = next(iter(study.arms.values())).settings if study.arms else {}
    net = perceptual.get("loss.objective.perceptual.net")
    if net is not None:
        pretrained = perceptual.get("loss.objective.perceptual.pretrained")
        backbone = "pretrained backbone found" if pretrained else "random backbone"
        lines.append(f"LPIPS: {net}, {backbone}")
    lines += [f"MISSING {m}" for m in prerequisites(study)]
    return "\n".join(lines)
