"""What every section needs: the profile, the device, a scratch dir and configs at size."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor

from vaegan.bench.config import bench_config
from vaegan.bench.loop import LoopBench, cycle
from vaegan.bench.players import Players, build_players, synthetic_batch
from vaegan.bench.profiles import Profile
from vaegan.bench.steps import Step

GAN_ON = "gan_start=0"
GAN_OFF = "gan_start=1000000000"  # never reached: the phase before gan_start


@dataclass
class Context:
    profile: Profile
    device: torch.device
    run_dir: Path
    _datamodules: dict[tuple, object] = field(default_factory=dict)
    _configs: dict[tuple[str, ...], DictConfig] = field(default_factory=dict)

    def overrides(self, *extra: str) -> list[str]:
        """The profile's size, ``extra`` and the trainer for the device (an experiment may
        name another)."""
        trainer = "trainer=gpu" if self.device.type == "cuda" else "trainer=cpu"
        return [*self.profile.size, *extra, trainer]

    def config(self, *extra: str) -> DictConfig:
        """The bench config for ``overrides(*extra)`` (a copy; composing takes a while)."""
        if extra not in self._configs:
            self._configs[extra] = bench_config(self.run_dir, self.overrides(*extra))
        return copy.deepcopy(self._configs[extra])

    def datamodule(self, cfg: DictConfig):
        """The configured data module, set up once per data config (patches take seconds)."""
        key = tuple(sorted(str(kv) for kv in cfg.data.items()))
        if key not in self._datamodules:
            dm = instantiate(cfg.data, _convert_="all")
            dm.setup("fit")
            self._datamodules[key] = dm
        return self._datamodules[key]

    def synthetic_loop(
        self, cfg: DictConfig, step: Step, prepare: Callable[[Players], None] | None = None
    ) -> LoopBench:
        """The plain loop on a fixed batch: compute only, for comparing step designs.

        ``prepare`` changes the fresh players before the first step (a speed flag)."""
        x = synthetic_batch(cfg, self.device)
        return self._loop(cfg, itertools.repeat(x), step, prepare)

    def data_loop(self, cfg: DictConfig, step: Step) -> LoopBench:
        """The plain loop on the configured data loader, as ``Trainer.fit`` would read it."""
        loader = self.datamodule(cfg).train_dataloader()
        return self._loop(cfg, cycle(loader, self.device), step)

    def _loop(
        self, cfg: DictConfig, batches: Iterator[Tensor], step: Step,
        prepare: Callable[[Players], None] | None = None,
    ) -> LoopBench:
        players = build_players(cfg, self.device)
        if prepare is not None:
            prepare(players)
        p = self.profile
        return LoopBench(players, batches, step, p.warmup, p.steps)
