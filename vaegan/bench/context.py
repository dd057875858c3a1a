"""What every section needs: the profile, the device, a scratch dir and configs at size."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from vaegan.bench.config import Profile, bench_config
from vaegan.bench.fit import FitBench, SyntheticData

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
    _datamodules: dict[tuple, L.LightningDataModule] = field(default_factory=dict)
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

    def datamodule(self, cfg: DictConfig) -> L.LightningDataModule:
        """The configured data module, set up once per data config (patches take seconds)."""
        key = tuple(sorted(str(item) for item in cfg.data.items()))
        if key not in self._datamodules:
            datamodule = instantiate(cfg.data, _convert_="all")
            datamodule.setup("fit")
            self._datamodules[key] = datamodule
        return self._datamodules[key]

    def fit_bench(
        self, cfg: DictConfig, datamodule: L.LightningDataModule, design: str = "vaegan",
        changes: str | None = None, steps: int | None = None,
    ) -> FitBench:
        """A ``FitBench`` of ``cfg`` at the profile's warm-up and timed batches (or ``steps``)."""
        self._fits += 1
        return FitBench(cfg, datamodule, self.run_dir / f"fit{self._fits}", self.profile.warmup,
                        steps or self.profile.steps, design, changes)

    def compute_fit(
        self, *extra: str, design: str = "vaegan", changes: str | None = None
    ) -> FitBench:
        """``Trainer.fit`` of ``design`` on a fixed batch: compute only (see ``COMPUTE``)."""
        cfg = self.config(*COMPUTE, *extra)
        return self.fit_bench(cfg, SyntheticData(cfg), design, changes)
