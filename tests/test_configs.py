"""Every option of every config group under conf/ composes, and what it names builds offline.

The cases come from the file system (``conf/<group>/<option>.yaml``), so a new option is tested
the day it is added. Each case composes ``conf/train.yaml`` with that one option (the debug
presets' data-set files with their preset and data set), checks that Hydra selected it and that
every interpolation resolves, then builds what the run would build before training: the data
module (its constructor checks the settings and reads nothing), the LightningModule through
``build_module`` (model, loss objective, discriminator, schedules), the loggers (wandb offline),
the callbacks and, on the CPU, the Trainer. Hydra's job callbacks are built, its launcher's and
sweeper's settings bound to their constructors (Hydra builds those itself); the study's scales
(a group of conf/study/study.yaml) are composed and checked.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import hydra.utils
import lightning as L
import pytest
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from tests.helpers.run import compose_config, train_tiny
from vaegan.app.config import validate
from vaegan.loggers.wandb import finish_wandb
from vaegan.study.config import load_study
from vaegan.train import build_callbacks, build_loggers, build_module, build_trainer
from vaegan.vocab import metric_names as metric

CONF = Path(__file__).resolve().parent.parent / "conf"
STUDY = "study"  # conf/study/ is the study's own config (study.yaml), not a group of train.yaml
DEBUG_DATA = "debug/data"  # picked by the defaults list as ${debug}_${data}, never by name
BUILT_MODULES: set[str] = set()  # the resolved ``module`` nodes built so far in this session


def options() -> list[tuple[str, str]]:
    """(group, option) for every ``conf/<group>/<option>.yaml`` but the two primary configs."""
    found = []
    for path in sorted(CONF.rglob("*.yaml")):
        group = path.parent.relative_to(CONF).as_posix()
        if group not in (".", STUDY):
            found.append((group, path.stem))
    return found


def selecting(group: str, option: str) -> list[str]:
    """The overrides that make the composed config use ``option`` of ``group``."""
    if group == DEBUG_DATA:
        debug, data = option.split("_", 1)
        return [f"debug={debug}", f"data={data}"]
    return [f"{group}={option}"]


def choice_key(group: str) -> str:
    """The key under ``hydra.runtime.choices`` that records the option chosen for ``group``."""
    return "debug/data@data" if group == DEBUG_DATA else group


def offline(cfg: DictConfig, tmp_path: Path) -> None:
    """What a run needs from the outside world, made local: a folder of images is an empty dir
    (the constructor reads nothing), the LPIPS backbone a random one (its checkpoint is not
    on disk here)."""
    with open_dict(cfg):
        if OmegaConf.is_missing(cfg.data, "root"):
            cfg.data.root = str(tmp_path / "images")
        if cfg.loss.objective.get("perceptual") is not None:
            cfg.loss.objective.perceptual.pretrained = False


def binds(node: DictConfig) -> None:
    """``node``'s ``_target_`` imports and its settings bind to that callable's arguments."""
    settings = OmegaConf.to_container(node, resolve=True)
    module, name = settings.pop("_target_").rsplit(".", 1)
    target = getattr(importlib.import_module(module), name)
    inspect.signature(target).bind(**{k: v for k, v in settings.items() if not k.startswith("_")})


def with_target(section: DictConfig | None) -> int:
    """How many entries of a ``logger``/``callbacks`` section name something to build."""
    return sum(1 for c in (section or {}).values() if c is not None and "_target_" in c)


def on_gpu(cfg: DictConfig) -> bool:
    return cfg.trainer.accelerator in ("gpu", "cuda")


def _id(case: tuple[str, str]) -> str:
    return f"{case[0]}={case[1]}"


@pytest.mark.parametrize("case", options(), ids=_id)
def test_every_option_composes_and_builds_offline(case, tmp_path):
    group, option = case
    if group == f"{STUDY}/scale":
        study = load_study([f"scale={option}"])  # composed, resolved and checked
        assert study.scale == option and study.jobs()
        return
    run_dir = tmp_path / "run"
    cfg = compose_config(run_dir, *selecting(group, option), debug=None)
    assert cfg.hydra.runtime.choices[choice_key(group)] == option
    # every interpolation resolves (the hydra node's are run-time values: job number, ...)
    OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]),
                           resolve=True)
    for name in ("launcher", "sweeper"):  # Hydra builds these itself, in its own way
        binds(cfg.hydra[name])
    for callback in cfg.hydra.callbacks.values():
        hydra.utils.instantiate(callback)
    offline(cfg, tmp_path)

    assert isinstance(hydra.utils.instantiate(cfg.data), L.LightningDataModule)
    try:
        loggers = build_loggers(cfg, run_dir)
    finally:
        finish_wandb()
    assert len(loggers) == 1 + with_target(cfg.logger)  # csv/ always, plus the group's
    fork = 1 if cfg.gan_control else 0  # a gan_control pair's fork checkpoint
    assert len(build_callbacks(cfg, run_dir)) == with_target(cfg.callbacks) + fork
    cpu = not on_gpu(cfg)  # a GPU trainer is refused without one: the test marked gpu trains it
    if cpu:
        assert isinstance(build_trainer(cfg, run_dir), L.Trainer)
    if OmegaConf.is_missing(cfg.model, "source"):
        pytest.skip(f"{group}={option}: model.source (a checkpoint or diffusers dir) is required")
    if cpu:
        validate(cfg)
    module = OmegaConf.to_yaml(cfg.module, resolve=True)  # what build_module instantiates
    if module not in BUILT_MODULES:  # the same node builds the same module: once is enough
        assert isinstance(build_module(cfg), L.LightningModule)
        BUILT_MODULES.add(module)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_gpu_trainer_trains_a_tiny_run(precision, tmp_path):
    """``trainer=gpu`` is composed on every machine; here it trains, on one CUDA GPU."""
    result = train_tiny(tmp_path, "trainer=gpu", f"trainer.precision={precision}", "steps=4",
                        "gan_start=2")
    assert result["gen_step"] == 4
    assert torch.isfinite(torch.tensor(result["metrics"][metric.TRAIN_LOSS]))
