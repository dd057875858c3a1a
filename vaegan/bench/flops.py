"""FLOPs of one training step per image, per network, counted by ``torch.utils.flop_counter``.

``python -m vaegan.bench.flops [--size 256] [--batch 1] [overrides...]`` counts one GAN-on
step of vaegan (``steps.plain_step``, which ``tests/test_bench.py`` holds equal to
``VAEGAN.training_step``) and of LDM's two-forward step on ``experiment=sd_kl_f8`` and prints
per-image GFLOPs for the encoder, decoder, LPIPS, discriminator and the rest, forward and
backward together (``docs/performance.md`` quotes them). Counts are exact for the matmuls and
convolutions, which are all but a few percent of the work; norms and pointwise ops count 0.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from collections import Counter
from pathlib import Path

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

from vaegan.bench.config import bench_config
from vaegan.bench.loop import LoopBench
from vaegan.bench.players import Players, players_of, synthetic_batch
from vaegan.bench.steps import Step, plain_step
from vaegan.train import build_module

PARTS = {  # FlopCounterMode's module names -> the part they belong to (first match wins)
    "encoder": ("AutoencoderKL.encoder", "AutoencoderKL.quant_conv"),
    "decoder": ("AutoencoderKL.decoder", "AutoencoderKL.post_quant_conv"),
    "perceptual (LPIPS)": ("Perceptual",),
    "discriminator": ("PatchGANDiscriminator",),
}


def reference_step(p: Players, x: torch.Tensor, step: int) -> None:
    """The arithmetic of LDM's step (``reference.LDMReference``), in either phase: vaegan's
    GAN-on step (LDM does that work before ``disc_start`` too, multiplied by 0) plus a second,
    frozen autoencoder forward."""
    plain_step(p, x, p.gan.gan_start)  # a step with the GAN on
    with p.toggled(p.opt_d):
        p.ae(x)


def fake_players(cfg) -> tuple[Players, torch.Tensor]:
    """Players and a batch of fake tensors: shapes only, so a 256 px step costs no arithmetic."""
    torch.manual_seed(int(cfg.seed))
    module = build_module(cfg).train()
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    for sub in module.modules():
        for name, param in sub.named_parameters(recurse=False):
            sub._parameters[name] = nn.Parameter(mode.from_tensor(param), param.requires_grad)
        for name, buf in sub.named_buffers(recurse=False):
            sub._buffers[name] = mode.from_tensor(buf)
    return players_of(module), mode.from_tensor(synthetic_batch(cfg, torch.device("cpu")))


def count(players: Players, x: torch.Tensor, step: Step) -> Counter[str]:
    """FLOPs of one ``step`` per part (``other``: the losses and the adaptive weight's rest)."""
    bench = LoopBench(players, itertools.repeat(x), step, 0, 0)
    with FlopCounterMode(display=False) as mode:
        bench.run(1)
    counts = mode.get_flop_counts()
    total = sum(counts["Global"].values())
    parts: Counter[str] = Counter()
    for part, prefixes in PARTS.items():
        tops = [n for n in counts if n in prefixes]
        parts[part] = sum(sum(counts[n].values()) for n in tops)
    parts["other"] = total - sum(parts.values())
    return parts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vaegan.bench.flops", description=__doc__)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = bench_config(Path(tmp), ["experiment=sd_kl_f8", "trainer=cpu", "gan_start=0",
                                       f"data.image_size={args.size}",
                                       f"data.batch_size={args.batch}", *args.overrides])
    for name, step in (("vaegan", plain_step), ("reference (LDM)", reference_step)):
        players, x = fake_players(cfg)
        parts = count(players, x, step)
        total = sum(parts.values())
        print(f"{name}: {total / args.batch / 1e9:.1f} GFLOP per image "
              f"({args.size} px, forward + backward)")
        for part, flops in parts.most_common():
            print(f"  {part:<20} {flops / args.batch / 1e9:8.1f} GFLOP  {flops / total:6.1%}")


if __name__ == "__main__":
    main()
