"""The study definition (``conf/study``): composed with Hydra, checked, turned into jobs.

Checked before anything trains, so a typo in an arm or a rule costs a second: every arm's
control exists and is in the same family, every test names known arms, measures and windows,
every condition parses, and the GAN windows sit on ``gan_start_frac``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from vaegan.study.expressions import expand
from vaegan.study.measures import MEASURES, WINDOW_PARAMS
from vaegan.study.rules import Condition
from vaegan.study.runner import Job
from vaegan.train import CONFIG_DIR, compose_train_config

STUDY_CONFIG_DIR = str(Path(CONFIG_DIR) / "study")
# Overrides every study run gets: one line per run instead of progress bars, a checkpoint and
# image grid at the end only, no per-run diagnosis (the study measures the runs itself), and
# diagnostics often enough that every window holds points: gradient attribution 50 times a
# run, active units 10 times, no histograms (they go to TensorBoard/wandb only).
RUN_DEFAULTS = (
    "diagnose=false",
    "++trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.progress=null",
    "callbacks.checkpoint.every_n_gen_steps={steps}",
    "callbacks.images.every_n_steps={steps}",
    "callbacks.gradients.every_n_steps={0.02*steps}",
    "callbacks.latent.active_units_every={0.1*steps}",
    "callbacks.latent.histograms_every=null",
)


class StudyConfigError(ValueError):
    """A study definition that cannot work; the message names the arm, claim or key."""


@dataclass(frozen=True)
class Test:
    """One statistic of a claim (see ``conf/study/study.yaml`` for the semantics)."""

    what: str
    arm: str
    measure: str
    args: dict[str, Any]
    vs: str | None = None
    vs_args: dict[str, Any] = field(default_factory=dict)
    op: str = "value"
    supported: Condition | None = None
    refuted: Condition | None = None

    @property
    def decisive(self) -> bool:
        return self.supported is not None or self.refuted is not None

    @property
    def arms(self) -> tuple[str, ...]:
        return (self.arm,) if self.vs is None else (self.arm, self.vs)

    @property
    def log(self) -> bool:
        """Ratios are skewed: their interval is taken on a log scale."""
        return self.op == "ratio" or (self.op == "value" and self.measure == "ratio")


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    tests: tuple[Test, ...]
    plot_arms: tuple[str, ...]
    plot_metrics: tuple[str, ...]

    @property
    def arms(self) -> set[str]:
        return {a for t in self.tests for a in t.arms} | set(self.plot_arms)


@dataclass(frozen=True)
class Arm:
    name: str
    family: str
    about: str
    overrides: tuple[str, ...]
    control: str | None = None


@dataclass
class Study:
    """The composed, checked study: what to train and how to judge it."""

    scale: str
    steps: int
    seeds: tuple[int, ...]
    runs_dir: Path
    out_dir: Path
    fresh: bool
    confidence: float
    windows: dict[str, tuple[float, float]]
    arms: dict[str, Arm]
    claims: dict[str, Claim]
    workers: int  # runs trained at once (processes)
    threads: int | None  # torch CPU threads per run (None: torch's default)
    names: dict[str, float]  # values {expressions} in overrides may use
    common: tuple[str, ...]  # overrides of every run (scale, defaults, extra)
    raw: dict[str, Any] = field(default_factory=dict)

    def needed_arms(self) -> list[str]:
        """Arms the selected claims use, plus their controls, in definition order."""
        needed = set().union(*(c.arms for c in self.claims.values())) if self.claims else set()
        needed |= {self.arms[a].control for a in needed if self.arms[a].control}
        return [a for a in self.arms if a in needed]

    def run_dir(self, arm: str, seed: int) -> Path:
        return self.runs_dir / arm / f"seed{seed}"

    def overrides(self, arm: str, seed: int) -> tuple[str, ...]:
        """The full ``vaegan-train`` override list of one run."""
        a = self.arms[arm]
        raw = [*self.common, *self.raw["families"][a.family], *a.overrides,
               f"steps={self.steps}", f"seed={seed}", f"run_name=study_{arm}"]
        return tuple(expand(o, self.names) for o in raw)

    def jobs(self) -> list[Job]:
        return [Job(arm, seed, self.overrides(arm, seed), self.run_dir(arm, seed))
                for arm in self.needed_arms() for seed in self.seeds]


# ---------------------------------------------------------------- loading and checking


def compose_study(overrides: Sequence[str] = ()) -> dict[str, Any]:
    """``conf/study/study.yaml`` with its ``scale`` and the command line's overrides."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=STUDY_CONFIG_DIR, version_base="1.3"):
        cfg = compose("study", overrides=list(overrides))
    GlobalHydra.instance().clear()
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def load_study(overrides: Sequence[str] = ()) -> Study:
    """Compose, check and resolve the study; raises `StudyConfigError` naming what is wrong."""
    raw = compose_study(overrides)
    scale = raw["scale"]
    names: dict[str, float] = {"steps": int(scale["steps"]), "beta": float(raw["beta"]),
                               "gan_start_frac": float(raw["gan_start_frac"])}
    common = tuple(expand(o, names) for o in [*RUN_DEFAULTS, *scale.get("overrides", []),
                                              *raw.get("extra", []), f"beta={raw['beta']}"])
    windows = {k: (float(v[0]), float(v[1])) for k, v in raw["windows"].items()}
    arms = {name: Arm(name, a["family"], a.get("about", ""), tuple(a.get("overrides") or ()),
                      a.get("control")) for name, a in raw["arms"].items()}
    claims = {cid: _claim(cid, c) for cid, c in raw["claims"].items()}
    only = [str(c) for c in raw.get("only") or []]
    unknown = [c for c in only if c not in claims]
    if unknown:
        raise StudyConfigError(f"only={unknown}: unknown claim ids; known: {', '.join(claims)}")
    if only:
        claims = {c: claims[c] for c in only}
    study = Study(
        scale=str(scale["name"]), steps=int(scale["steps"]),
        seeds=tuple(int(s) for s in scale["seeds"]), runs_dir=Path(raw["runs_dir"]),
        out_dir=Path(raw["out_dir"]), fresh=bool(raw["fresh"]),
        confidence=float(raw["confidence"]), windows=windows, arms=arms, claims=claims,
        workers=int(scale.get("workers") or 1),
        threads=None if scale.get("threads") is None else int(scale["threads"]),
        names=names, common=common, raw=raw,
    )
    check(study)
    study.names["pixels"] = _pixels(study)
    return study


def _claim(cid: str, c: Mapping[str, Any]) -> Claim:
    tests = []
    for i, t in enumerate(c.get("tests") or []):
        where = f"claims.{cid}.tests[{i}]"
        try:
            tests.append(Test(
                what=str(t["what"]), arm=str(t["arm"]), measure=str(t["measure"]),
                args=dict(t.get("args") or {}), vs=t.get("vs"),
                vs_args=dict(t.get("vs_args") or {}), op=str(t.get("op", "value")),
                supported=Condition.parse(t["supported"]) if "supported" in t else None,
                refuted=Condition.parse(t["refuted"]) if "refuted" in t else None,
            ))
        except (KeyError, ValueError) as err:
            raise StudyConfigError(f"{where}: {err}") from None
    plot = c.get("plot") or {}
    return Claim(cid, " ".join(str(c.get("claim", "")).split()), tuple(tests),
                 tuple(plot.get("arms") or ()), tuple(plot.get("metrics") or ()))


def check(study: Study) -> None:
    """Every mistake a study definition can hold that would otherwise show up mid-study."""
    families = study.raw["families"]
    for name, (lo, hi) in study.windows.items():
        if not 0 <= lo < hi <= 1:
            raise StudyConfigError(f"windows.{name}=[{lo}, {hi}]: need 0 <= lo < hi <= 1")
    gs = study.names["gan_start_frac"]
    for name, edge in (("before_gan", 1), ("after_gan", 0)):
        if name in study.windows and study.windows[name][edge] != gs:
            raise StudyConfigError(f"windows.{name} must {'end' if edge else 'start'} at"
                                   f" gan_start_frac={gs}")
    roots: dict[str, list[str]] = {}
    for arm in study.arms.values():
        if arm.family not in families:
            raise StudyConfigError(f"arms.{arm.name}.family={arm.family!r}: not in families")
        if arm.control is None:
            roots.setdefault(arm.family, []).append(arm.name)
            continue
        control = study.arms.get(arm.control)
        if control is None or control.family != arm.family or control.name == arm.name:
            raise StudyConfigError(f"arms.{arm.name}.control={arm.control!r}: must be another"
                                   f" arm of family {arm.family!r}")
    for family, names in roots.items():
        if len(names) != 1:
            raise StudyConfigError(f"family {family!r} needs exactly one control arm (an arm"
                                   f" without `control`), has {names}")
    for claim in study.claims.values():
        if not any(t.decisive for t in claim.tests):
            raise StudyConfigError(f"claims.{claim.id}: no test decides (supported/refuted)")
        for i, t in enumerate(claim.tests):
            _check_test(study, f"claims.{claim.id}.tests[{i}]", t)
        for arm in claim.plot_arms:
            if arm not in study.arms:
                raise StudyConfigError(f"claims.{claim.id}.plot: unknown arm {arm!r}")


def _check_test(study: Study, where: str, t: Test) -> None:
    for arm in t.arms:
        if arm not in study.arms:
            raise StudyConfigError(f"{where}: unknown arm {arm!r}")
    if t.measure not in MEASURES:
        raise StudyConfigError(f"{where}: unknown measure {t.measure!r}; known:"
                               f" {', '.join(MEASURES)}")
    if t.op not in ("value", "ratio", "diff"):
        raise StudyConfigError(f"{where}: op={t.op!r}; use value, ratio or diff")
    compares = t.vs is not None or bool(t.vs_args)
    if compares != (t.op != "value"):
        raise StudyConfigError(f"{where}: `vs`/`vs_args` and op ratio/diff go together")
    for args in (t.args, t.vs_args):
        for key in WINDOW_PARAMS:
            if key in args and args[key] not in study.windows:
                raise StudyConfigError(f"{where}: {key}={args[key]!r} is not in windows")


def _pixels(study: Study) -> float:
    """Values per image (C·H·W) of the scale's data and model: the scale of a `sum` recon."""
    cfg = compose_train_config(study.runs_dir, study.common)
    GlobalHydra.instance().clear()
    return float(cfg.model.in_channels * cfg.data.image_size ** 2)
