"""The study definition (``conf/study``): composed with Hydra, checked, turned into jobs.

Checked before anything trains, so a typo in an arm or a rule costs a second: every arm's
settings name a regime it runs in, no scale setting or ``extra`` override touches a regime
setting, every test names known arms, measures, windows and gates, every decisive test has a
supporting and a refuting band that do not overlap, and the GAN windows sit on gan_start.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from vaegan.study.expressions import expand
from vaegan.study.measures import MEASURES, WINDOW_PARAMS
from vaegan.study.rules import Condition, Gate, Test
from vaegan.study.runner import Job
from vaegan.train import CONFIG_DIR
from vaegan.vocab import metric_names
from vaegan.vocab.checks import must
from vaegan.vocab.overrides import override_value

STUDY_CONFIG_DIR = str(Path(CONFIG_DIR) / "study")
NOGAN = "nogan"  # `<arm>@nogan`: the arm's no-GAN trajectory (vaegan.study.pairs)
GROUPS = ("data", "model", "loss", "schedule", "trainer")  # settings that select a config group
# Overrides every study run gets (not regime: what is measured and how often): one line per
# run instead of progress bars, a checkpoint and image grid at the end only, no per-run
# diagnosis (the study measures the runs itself), the spectral probe (G1), and diagnostics
# often enough that every window holds points: gradient attribution 50 times a run, posterior
# statistics 100 times, active units 10 times, no histograms (TensorBoard/wandb only).
RUN_DEFAULTS = (
    "diagnose=false",
    "logger=csv",
    "++trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.progress=null",
    "callbacks.checkpoint.every_n_gen_steps={steps}",
    "callbacks.images.every_n_steps={steps}",
    "callbacks.gradients.every_n_steps={0.02*steps}",
    "callbacks.latent.every_n_steps={0.01*steps}",
    "callbacks.latent.active_units_every={0.1*steps}",
    "callbacks.latent.histograms_every=null",
    "callbacks.discriminator.every_n_steps={0.05*steps}",
    "+callbacks.probe._target_=vaegan.study.probe.SpectralProbe",
)


class StudyConfigError(ValueError):
    """A study definition that cannot work; the message names the arm, claim or key."""


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    tests: tuple[Test, ...]
    plot_arms: tuple[str, ...]
    plot_metrics: tuple[str, ...]

    @property
    def arms(self) -> set[str]:
        """Roles (arm names without ``@view``) the claim reads."""
        refs = {ref for test in self.tests for ref in test.arms} | set(self.plot_arms)
        return {split_ref(ref)[0] for ref in refs}


@dataclass(frozen=True)
class Regime:
    name: str
    label: str
    about: str


@dataclass(frozen=True)
class Arm:
    """One arm of one regime: its whole declared regime (`settings`) and what it changes."""

    regime: str
    role: str
    about: str
    settings: dict[str, Any]  # every regime setting of the run, expressions expanded
    changes: dict[str, Any]   # the arm's own `set` (what differs from the regime)

    @property
    def key(self) -> str:
        return f"{self.regime}/{self.role}"

    @property
    def gan(self) -> bool:
        return bool(self.settings.get("loss.gan", True))

    @property
    def paired(self) -> bool:
        """A GAN run that trains its own no-GAN branch from gan_start."""
        return self.gan and bool(self.settings.get("gan_control", False))


@dataclass
class Study:
    """The composed, checked study: what to train and how to judge it."""

    scale: str
    steps: int
    gan_start: int
    seeds: tuple[int, ...]
    runs_dir: Path
    out_dir: Path
    fresh: bool
    dry_run: bool
    confidence: float
    windows: dict[str, tuple[float, float]]
    regimes: dict[str, Regime]  # the selected ones
    arms: dict[str, Arm]        # by key "<regime>/<role>", every arm of the selected regimes
    claims: dict[str, Claim]
    workers: int  # runs trained at once (processes)
    threads: int | None  # torch CPU threads per run (None: torch's default)
    names: dict[str, float]  # values {expressions} may use
    common: tuple[str, ...]  # overrides of every run that are not regime settings
    cost: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict)
    # A scale with `parts` runs in invocations: the seeds of every arm any part runs, and the
    # (arm, seed) runs this invocation trains (the others are judged from their runs on disk).
    arm_seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)
    part: str | None = None
    train_runs: frozenset[tuple[str, int]] | None = None  # None: every needed run

    def arm(self, regime: str, role: str) -> Arm | None:
        return self.arms.get(f"{regime}/{role}")

    def applies(self, test: Test, regime: str) -> bool:
        """Whether the regime has every arm the test (and its gates) reads."""
        return all(self.arm(regime, split_ref(ref)[0]) is not None for ref in test.arms)

    def needed_arms(self) -> list[Arm]:
        """Arms the selected claims read in each selected regime, in definition order."""
        needed = set()
        for regime in self.regimes:
            for claim in self.claims.values():
                refs = {ref for test in claim.tests if self.applies(test, regime)
                        for ref in test.arms}
                refs |= {ref for ref in claim.plot_arms if self.arm(regime, split_ref(ref)[0])}
                needed |= {f"{regime}/{split_ref(ref)[0]}" for ref in refs}
        return [arm for key, arm in self.arms.items() if key in needed]

    def seeds_of(self, arm_key: str) -> tuple[int, ...]:
        """The seeds an arm runs with (its part's, or the scale's)."""
        return self.arm_seeds.get(arm_key, self.seeds)

    def run_dir(self, arm: Arm, seed: int) -> Path:
        return self.runs_dir / arm.regime / arm.role / f"seed{seed}"

    def overrides(self, arm: Arm, seed: int) -> tuple[str, ...]:
        """The full ``vaegan-train`` override list of one run."""
        own = [f"{key}={override_value(value)}" for key, value in arm.settings.items()]
        return (*self.common, *own, f"seed={seed}", f"run_name=study_{arm.regime}_{arm.role}")

    def all_jobs(self) -> list[Job]:
        """Every run the selected claims read, in every part."""
        return [Job(arm.key, seed, self.overrides(arm, seed), self.run_dir(arm, seed))
                for arm in self.needed_arms() for seed in self.seeds_of(arm.key)]

    def jobs(self) -> list[Job]:
        """The runs this invocation trains (all of them unless the scale has parts)."""
        return [job for job in self.all_jobs()
                if self.train_runs is None or (job.arm, job.seed) in self.train_runs]


def split_ref(ref: str) -> tuple[str, str]:
    """``base@nogan`` → (``base``, ``nogan``); ``base`` → (``base``, "")."""
    role, _, view = str(ref).partition("@")
    return role, view


# ---------------------------------------------------------------- loading and checking


def compose_study(overrides: Sequence[str] = ()) -> dict[str, Any]:
    """``conf/study/study.yaml`` with its ``scale`` and the command line's overrides."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=STUDY_CONFIG_DIR, version_base="1.3"):
        cfg = compose("study", overrides=list(overrides))
    GlobalHydra.instance().clear()
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


T = TypeVar("T")


def _only(raw: dict[str, Any], key: str, what: str, known: dict[str, T]) -> dict[str, T]:
    """``known`` restricted to the names listed under ``key`` (all when empty); unknown ones
    are a StudyConfigError naming them and the known ones."""
    wanted = [str(name) for name in raw.get(key) or []]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise StudyConfigError(f"{key}={unknown}: unknown {what}; known: {', '.join(known)}")
    return {name: known[name] for name in wanted} if wanted else known


def load_study(overrides: Sequence[str] = ()) -> Study:
    """Compose, check and resolve the study; raises `StudyConfigError` naming what is wrong."""
    raw = compose_study(overrides)
    check_metric_names(raw)
    scale = raw["scale"]
    steps = int(scale["steps"])
    names: dict[str, float] = {"steps": steps, "gan_start_frac": float(scale["gan_start_frac"])}
    windows = {name: (float(lo), float(hi)) for name, (lo, hi) in raw["windows"].items()}
    regimes = _regimes(raw)
    scale_settings = _auto_settings(dict(scale.get("settings") or {}))
    arms = _arms(raw, regimes, scale_settings, names)
    claims = {claim_id: _claim(claim_id, spec, raw.get("gates") or {})
              for claim_id, spec in raw["claims"].items()}
    claims = _only(raw, "only", "claim ids", claims)
    regimes = _only(raw, "only_regimes", "regimes", regimes)
    arms = {key: arm for key, arm in arms.items() if arm.regime in regimes}
    part, arm_seeds, train_runs = _parts(raw, scale, arms)
    if arm_seeds:  # a scale with parts runs only the arms its parts list
        arms = {key: arm for key, arm in arms.items() if key in arm_seeds}
        regimes = {name: regime for name, regime in regimes.items()
                   if any(arm.regime == name for arm in arms.values())}
    common = tuple(expand(override, names)
                   for override in [*RUN_DEFAULTS, *scale.get("overrides", []),
                                    *raw.get("extra", [])])
    study = Study(
        scale=str(scale["name"]), steps=steps,
        gan_start=int(expand("{gan_start_frac*steps}", names)),
        seeds=tuple(int(seed) for seed in scale["seeds"]), runs_dir=Path(raw["runs_dir"]),
        out_dir=Path(raw["out_dir"]), fresh=bool(raw["fresh"]), dry_run=bool(raw["dry_run"]),
        confidence=float(raw["confidence"]), windows=windows, regimes=regimes, arms=arms,
        claims=claims, workers=_workers(scale, part),
        threads=None if scale.get("threads") is None else int(scale["threads"]),
        names=names, common=common, cost=dict(scale.get("cost") or {}), raw=raw,
        arm_seeds=arm_seeds, part=part, train_runs=train_runs,
    )
    check(study)
    return study


def _parts(raw: Mapping[str, Any], scale: Mapping[str, Any], arms: Mapping[str, Arm]
           ) -> tuple[str | None, dict[str, tuple[int, ...]], frozenset[tuple[str, int]] | None]:
    """The scale's `parts` (invocations): (the selected part, seeds per arm of every part,
    the (arm, seed) runs the selected part trains). One arm may sit in several parts with
    disjoint seeds (a part too long for one invocation is split by seeds); a run in two parts
    is refused. A scale without parts: (None, {}, None)."""
    parts = scale.get("parts") or {}
    wanted = raw.get("part")
    if not parts:
        if wanted not in (None, "all"):
            raise StudyConfigError(f"part={wanted}: scale {scale['name']} has no parts;"
                                   " allowed: part=all (or leave it out)")
        return None, {}, None
    if wanted is not None and wanted != "all" and wanted not in parts:
        raise StudyConfigError(f"part={wanted} is not a part of scale {scale['name']};"
                               f" allowed: {', '.join(parts)}, all")
    part = wanted or next(iter(parts))
    owner: dict[tuple[str, int], str] = {}  # (arm, seed) -> the part that trains it
    for name, spec in parts.items():
        for key in spec["arms"]:
            if key not in arms:
                raise StudyConfigError(f"scale.parts.{name}.arms: unknown arm {key!r}; known:"
                                       f" {', '.join(arms)}")
            for seed in (int(seed) for seed in spec.get("seeds") or scale["seeds"]):
                if (key, seed) in owner:
                    raise StudyConfigError(f"scale.parts.{name}: {key} seed {seed} is also in"
                                           f" part {owner[key, seed]}; give each part its own"
                                           " seeds")
                owner[key, seed] = name
    seeds = {key: tuple(sorted(seed for arm, seed in owner if arm == key))
             for key in dict.fromkeys(arm for arm, _ in owner)}
    train = frozenset(run for run, name in owner.items() if part in (name, "all"))
    return part, seeds, train


def _workers(scale: Mapping[str, Any], part: str | None) -> int:
    """Runs trained at once: the selected part's own `workers`, else the scale's. A part sets
    its own where its run count packs badly onto the scale's (five equal runs on two workers
    are three rounds; on five single-thread workers sharing two cores, 2.5 rounds of CPU time,
    less the cost of sharing: ~15 % more CPU per run, measured in conf/study/scale/long.yaml)."""
    spec = (scale.get("parts") or {}).get(part) or {}
    return int(spec.get("workers") or scale.get("workers") or 1)


def _auto_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """``perceptual.pretrained: auto``: true when the backbone's weights are on disk."""
    key = "loss.objective.perceptual.pretrained"
    if settings.get(key) == "auto":
        from vaegan.losses.perceptual import backbone_path

        net = settings.get("loss.objective.perceptual.net", "alex")
        settings[key] = backbone_path(net).is_file()
    return settings


def _regimes(raw: Mapping[str, Any]) -> dict[str, Regime]:
    out = {}
    for name, spec in raw["regimes"].items():
        if spec.get("extends") and spec["extends"] not in raw["regimes"]:
            raise StudyConfigError(f"regimes.{name}.extends={spec['extends']!r}: no such regime")
        about = " ".join(str(spec.get("about", "")).split())
        out[name] = Regime(name, str(spec.get("label", name)), about)
    return out


def regime_settings(raw: Mapping[str, Any], name: str, seen: tuple[str, ...] = ()) -> dict:
    """A regime's settings, those of the regime it extends first."""
    if name in seen:
        raise StudyConfigError(f"regimes.{name}: `extends` loops ({' -> '.join(seen)})")
    spec = raw["regimes"][name]
    base = regime_settings(raw, spec["extends"], (*seen, name)) if spec.get("extends") else {}
    return {**base, **(spec.get("settings") or {})}


def _arms(raw: Mapping[str, Any], regimes: Mapping[str, Regime], scale_settings: dict,
          names: Mapping[str, float]) -> dict[str, Arm]:
    study_base = dict(raw["study_base"])
    regime_keys = set(study_base) | {key for regime in regimes
                                     for key in regime_settings(raw, regime)}
    for spec in raw["arms"].values():
        regime_keys |= set(spec.get("set") or {})
    clash = sorted(regime_keys & set(scale_settings))
    if clash:
        raise StudyConfigError(f"scale.settings sets regime settings {clash}: a scale may fix"
                               " only what no regime or arm states")
    for override in [*raw["scale"].get("overrides", []), *raw.get("extra", [])]:
        key = re.sub(r"^[+~]+", "", str(override).split("=", 1)[0])
        if key in regime_keys or key in scale_settings:
            raise StudyConfigError(f"override {override!r} changes the regime setting {key!r};"
                                   " regimes are fixed in conf/study (study_base, regimes, arms,"
                                   " scale settings)")
    out = {}
    for name, spec in raw["arms"].items():
        for regime in spec.get("regimes") or []:
            if regime not in raw["regimes"]:
                raise StudyConfigError(f"arms.{name}.regimes: unknown regime {regime!r}")
    for regime in regimes:
        for name, spec in raw["arms"].items():
            if regime not in (spec.get("regimes") or regimes):
                continue
            changes = {key: _per_regime(value, regime, f"arms.{name}.set.{key}", regimes)
                       for key, value in (spec.get("set") or {}).items()}
            settings = {**study_base, **scale_settings, **regime_settings(raw, regime),
                        **changes}
            settings = {key: _expand_value(value, names) for key, value in settings.items()}
            about = " ".join(str(spec.get("about", "")).split())
            out[f"{regime}/{name}"] = Arm(regime, name, about, settings,
                                          {key: settings[key] for key in changes})
    return out


def _per_regime(value: Any, regime: str, where: str, regimes: Mapping[str, Regime]) -> Any:
    """``{ldm: 1.0, mean: 1e-2}``: the value for `regime`."""
    if isinstance(value, dict) and set(value) <= set(regimes) | {"_"}:
        if regime not in value:
            raise StudyConfigError(f"{where}: no value for regime {regime!r}")
        return value[regime]
    return value


def _expand_value(value: Any, names: Mapping[str, float]) -> Any:
    """``"{0.1*steps}"`` → 80 (an int for step counts), other values unchanged."""
    if isinstance(value, str) and "{" in value:
        out = expand(value, names)
        try:
            return json.loads(out)
        except ValueError:
            return out
    return value


def _gate(spec: Any, shared: Mapping[str, Any], where: str) -> Gate:
    if isinstance(spec, str):
        if spec not in shared:
            raise StudyConfigError(f"{where}: unknown gate {spec!r}; known: {', '.join(shared)}")
        spec = shared[spec]
    return Gate(str(spec["what"]), str(spec["arm"]), str(spec["measure"]),
                dict(spec.get("args") or {}), Condition.parse(spec["holds"]))


def _claim(claim_id: str, spec: Mapping[str, Any], shared_gates: Mapping[str, Any]) -> Claim:
    tests = []
    for index, test in enumerate(spec.get("tests") or []):
        where = f"claims.{claim_id}.tests[{index}]"
        try:
            tests.append(Test(
                what=str(test["what"]), arm=str(test["arm"]), measure=str(test["measure"]),
                args=dict(test.get("args") or {}), vs=test.get("vs"),
                vs_args=dict(test.get("vs_args") or {}), op=str(test.get("op", "value")),
                supported=Condition.parse(test["supported"]) if "supported" in test else None,
                refuted=Condition.parse(test["refuted"]) if "refuted" in test else None,
                gates=tuple(_gate(gate, shared_gates, f"{where}.gates[{gate_index}]")
                            for gate_index, gate in enumerate(test.get("gates") or [])),
                resolution=None if test.get("resolution") is None else float(test["resolution"]),
            ))
        except (KeyError, ValueError) as err:
            if isinstance(err, StudyConfigError):
                raise
            raise StudyConfigError(f"{where}: {err}") from None
    plot = spec.get("plot") or {}
    return Claim(claim_id, " ".join(str(spec.get("claim", "")).split()), tuple(tests),
                 tuple(plot.get("arms") or ()), tuple(plot.get("metrics") or ()))


# Keys whose values name what a run logs: a metric (vaegan/vocab/metric_names.py), or a loss
# term / gradient part of grad/<term>/<part>; a test's `part` is either, by its measure.
_TERMS, _PARTS = frozenset(metric_names.GRAD_TERMS), frozenset(metric_names.GRAD_PARTS)
_NAMES = {
    "metric": (metric_names.is_metric, metric_names.known()),
    "metrics": (metric_names.is_metric, metric_names.known()),
    "term": (_TERMS.__contains__, _TERMS),
    "terms": (_TERMS.__contains__, _TERMS),
    "against": (_TERMS.__contains__, _TERMS),
    "part": (lambda name: name in _PARTS or metric_names.is_metric(name),
             _PARTS | metric_names.known()),
}


def check_metric_names(raw: Mapping[str, Any], path: str = "") -> None:
    """Every metric, term and gradient part the study's tests and plots read exists, checked
    when the study loads (a typo would otherwise surface after the runs have trained)."""
    for key, value in raw.items():
        where = f"{path}.{key}" if path else str(key)
        if key in _NAMES and path.endswith(("args", "plot")):
            ok, known = _NAMES[key]
            for name in value if isinstance(value, list) else [value]:
                if not ok(str(name)):
                    close = difflib.get_close_matches(str(name), sorted(known), n=1, cutoff=0.0)
                    raise StudyConfigError(must(where, str(name), "name something vaegan logs",
                                                f"{close[0]} (the closest known name)"))
        elif isinstance(value, Mapping):
            check_metric_names(value, where)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    check_metric_names(item, f"{where}[{i}]")


def check(study: Study) -> None:
    """Every mistake a study definition can hold that would otherwise show up mid-study."""
    for name, (lo, hi) in study.windows.items():
        if not 0 <= lo < hi <= 1:
            raise StudyConfigError(f"windows.{name}=[{lo}, {hi}]: need 0 <= lo < hi <= 1")
    gan_start_frac = study.names["gan_start_frac"]
    for name, edge in (("before_gan", 1), ("after_gan", 0)):
        if name in study.windows and study.windows[name][edge] != gan_start_frac:
            raise StudyConfigError(f"windows.{name} must {'end' if edge else 'start'} at"
                                   f" gan_start_frac={gan_start_frac}")
    if "gan_phase" in study.windows and study.windows["gan_phase"][0] <= gan_start_frac:
        raise StudyConfigError(f"windows.gan_phase={list(study.windows['gan_phase'])} must start"
                               f" after gan_start_frac={gan_start_frac} (the GAN phase proper)")
    roles = {arm.role for arm in study.arms.values()} | set(study.raw["arms"])
    for claim in study.claims.values():
        if not any(test.decisive for test in claim.tests):
            raise StudyConfigError(f"claims.{claim.id}: no test decides (supported/refuted)")
        for index, test in enumerate(claim.tests):
            _check_test(study, f"claims.{claim.id}.tests[{index}]", test, roles)
        for ref in claim.plot_arms:
            _check_ref(study, f"claims.{claim.id}.plot", ref, roles)


def _check_ref(study: Study, where: str, ref: str, roles: set[str]) -> None:
    role, view = split_ref(ref)
    if role not in roles:
        raise StudyConfigError(f"{where}: unknown arm {role!r}")
    if view not in ("", NOGAN):
        raise StudyConfigError(f"{where}: {ref!r}: the only view is @{NOGAN}")
    if view == NOGAN:
        for arm in (arm for arm in study.arms.values() if arm.role == role):
            if arm.gan and not arm.paired:
                raise StudyConfigError(f"{where}: {ref!r} needs a no-GAN branch, but arm"
                                       f" {arm.key} has the GAN and gan_control=false")


def _check_test(study: Study, where: str, test: Test, roles: set[str]) -> None:
    for ref in test.arms:
        _check_ref(study, where, ref, roles)
    for measure, args in [(test.measure, test.args), (test.measure, test.vs_args),
                          *((gate.measure, gate.args) for gate in test.gates)]:
        if measure not in MEASURES:
            raise StudyConfigError(f"{where}: unknown measure {measure!r}; known:"
                                   f" {', '.join(MEASURES)}")
        for key in WINDOW_PARAMS:
            if key in args and args[key] not in study.windows:
                raise StudyConfigError(f"{where}: {key}={args[key]!r} is not in windows")
    if test.op not in ("value", "ratio", "diff"):
        raise StudyConfigError(f"{where}: op={test.op!r}; use value, ratio or diff")
    compares = test.vs is not None or bool(test.vs_args)
    if compares != (test.op != "value"):
        raise StudyConfigError(f"{where}: `vs`/`vs_args` and op ratio/diff go together")
    if test.decisive:
        if test.supported is None or test.refuted is None:
            raise StudyConfigError(f"{where}: a decisive test needs both a supporting and a"
                                   " refuting band (a rule must be able to fail both ways)")
        if test.supported.overlaps(test.refuted):
            raise StudyConfigError(f"{where}: bands overlap (supported {test.supported}, refuted"
                                   f" {test.refuted})")
