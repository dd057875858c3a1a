"""FLOPs of one training step per image, per network, counted by ``torch.utils.flop_counter``.

``python -m vaegan.bench.flops [--size 256] [--batch 1] [--device auto] [overrides...]`` counts
the first batch of ``Trainer.fit`` (GAN on unless an override says otherwise) of
``VAEGAN.training_step`` and of LDM's two-forward step (``LDMReference``) on
``experiment=sd_kl_f8`` and prints per-image GFLOPs for the encoder, decoder, LPIPS,
discriminator and the rest, forward and backward together (``docs/performance.md`` quotes
them). The step runs for real: a few minutes on a CPU at 256 px. Counts are exact for the
matmuls and convolutions, which are all but a few percent of the work; norms, pointwise ops
and the optimizers count 0.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.flop_counter import FlopCounterMode

from vaegan.bench.config import bench_config
from vaegan.bench.context import COMPUTE, GAN_ON
from vaegan.bench.fit import BatchClock, SyntheticData, build, fit, with_steps

PARTS = {  # FlopCounterMode's module names -> the part they belong to (first match wins)
    "encoder": ("AutoencoderKL.encoder", "AutoencoderKL.quant_conv"),
    "decoder": ("AutoencoderKL.decoder", "AutoencoderKL.post_quant_conv"),
    "perceptual (LPIPS)": ("Perceptual",),
    "discriminator": ("PatchGANDiscriminator",),
}


class FlopCount(L.Callback):
    """FLOPs per module of the first training batch, from its start to its end."""

    def __init__(self) -> None:
        self.counter: FlopCounterMode | None = None
        self.counts: dict[str, Any] = {}

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if not self.counts and self.counter is None:
            self.counter = FlopCounterMode(display=False)
            self.counter.__enter__()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self.counter is not None:
            self.counter.__exit__(None, None, None)
            self.counts, self.counter = self.counter.get_flop_counts(), None


def count(cfg: Any, design: str, run_dir: Path) -> Counter[str]:
    """FLOPs of one ``design`` step per part (``other``: the losses and the adaptive weight's
    rest)."""
    cfg = with_steps(cfg, 1, run_dir)
    counter = FlopCount()
    fit(cfg, build(cfg, design), SyntheticData(cfg), run_dir, BatchClock(0, 1), counter)
    counts = counter.counts
    parts: Counter[str] = Counter()
    for part, prefixes in PARTS.items():
        parts[part] = sum(sum(counts[name].values()) for name in counts if name in prefixes)
    parts["other"] = sum(counts["Global"].values()) - sum(parts.values())
    return parts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vaegan.bench.flops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="image size (default: 256)")
    parser.add_argument("--batch", type=int, default=1, help="batch size (default: 1)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    parser.add_argument("overrides", nargs="*", help="vaegan-train overrides on top")
    args = parser.parse_args(argv)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    with tempfile.TemporaryDirectory() as tmp:
        cfg = bench_config(Path(tmp), [
            "experiment=sd_kl_f8", *COMPUTE, "trainer=gpu" if cuda else "trainer=cpu", GAN_ON,
            f"data.image_size={args.size}", f"data.batch_size={args.batch}", *args.overrides,
        ])
        for name, design in (("vaegan", "vaegan"), ("reference (LDM)", "reference")):
            parts = count(cfg, design, Path(tmp) / design)
            total = sum(parts.values())
            print(f"{name}: {total / args.batch / 1e9:.1f} GFLOP per image "
                  f"({args.size} px, forward + backward)")
            for part, flops in parts.most_common():
                print(f"  {part:<20} {flops / args.batch / 1e9:8.1f} GFLOP  {flops / total:6.1%}")


if __name__ == "__main__":
    main()
