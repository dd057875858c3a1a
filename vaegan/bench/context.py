"""What every section needs: the profile, the device, a scratch dir and configs at size."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from vaegan.bench.config import bench_config
from vaegan.bench.fit import FitBench, Prepare, SyntheticData
from vaegan.bench.loop import LoopBench, cycle
from vaegan.bench.players import build_players
from vaegan.bench.profiles import Profile
from vaegan.bench.steps import Step

GAN_ON = "gan_start=0"
GAN_OFF = "gan_start=1000000000"  # never reached: the phase before gan_start
# Compute-only fits (designs, scaling, flags, memory): no diagnostics callbacks, validation,
# checkpoint or progress bar; their cost is rows 1 and 2.
COMPUTE = (
    "callbacks=none",
    "callbacks.checkpoint=null",
    "trainer.limit_val_batches=0",
    "++trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
)


@dataclass
class Context:
    profile: Profile
    device: torch.device
    run_dir: Path
    _datamodules: dict[tuple, object] = field(default_factory=dict)
    _configs: dict[tuple[str, ...], DictConfig] = field(default_factory=dict)
    _fits: int = 0

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

    def compute_fit(
        self, *extra: str, design: str = "vaegan", prepare: Prepare | None = None
    ) -> FitBench:
        """``Trainer.fit`` of ``design`` on a fixed batch: compute only (see ``COMPUTE``)."""
        cfg = self.config(*COMPUTE, *extra)
        self._fits += 1
        p = self.profile
        return FitBench(cfg, SyntheticData(cfg), self.run_dir / f"fit{self._fits}",
                        p.warmup, p.steps, design, prepare)

    def data_loop(self, cfg: DictConfig, step: Step) -> LoopBench:
        """The plain loop on the configured data loader, as ``Trainer.fit`` would read it."""
        loader = self.datamodule(cfg).train_dataloader()
        players = build_players(cfg, self.device)
        p = self.profile
        return LoopBench(players, cycle(loader, self.device), step, p.warmup, p.steps)
