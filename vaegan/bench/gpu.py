"""``make bench-gpu``: Stable Diffusion's kl-f8 step on one CUDA GPU, in one unattended run.

At SD's training size (256 px, batch 12, ``experiment=sd_kl_f8``) it measures, each through
``Trainer.fit`` as the CPU bench does (``vaegan.bench.designs`` / ``flags`` / ``memory``):

1. ``VAEGAN.training_step`` vs LDM's two-forward step (``LDMReference``), GAN on and before
   ``gan_start``, against the issue's targets (≤ 0.135 s per batch; LDM measured 0.406 s on
   an H100);
2. peak CUDA memory of both designs (and of the reference with LDM's model ops, the
   configuration LDM's 70.7 GB was measured with);
3. a 200-step ``vaegan-train experiment=sd_kl_f8 trainer=ddp`` on every visible GPU;
4. each GPU speed option vaegan has, against ``sd_kl_f8`` as configured: bf16 autocast,
   ``channels_last``, SDPA (vs LDM's softmax attention), cuDNN autotuning, fused Adam, the
   activation checkpointing modes. TF32 matmuls are no vaegan option and are listed as not
   measured.

It writes ``bench/RESULTS-gpu.md`` (GPU name, date) after every section, never downloads
(a missing VGG checkpoint means a random LPIPS backbone, which costs the same, and says so),
and stops starting sections when ``--budget`` seconds are spent, listing what it skipped.
``--dry-run`` runs the same code on the CPU at tiny sizes (the test suite runs it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from vaegan.bench.config import FULL
from vaegan.bench.context import COMPUTE, GAN_OFF, GAN_ON, Context
from vaegan.bench.designs import PHASES, design_ratios
from vaegan.bench.flags import flag_list, flag_rows
from vaegan.bench.memory import measure_here
from vaegan.bench.table import Row, Target, failed_row, milliseconds, ratio_row, render
from vaegan.losses.perceptual import backbone_path

SD = ("experiment=sd_kl_f8", "data.image_size=256", "data.batch_size=12")
# The kl-f8 architecture and loss at a size a CPU steps in a second: the dry run's code path
# (AlexNet-LPIPS: the same module as VGG's, built in a tenth of the time).
DRY = ("experiment=sd_kl_f8", "model.ch=8", "data.image_size=32", "data.batch_size=2",
       "loss.discriminator.ndf=8", "loss.objective.perceptual.net=alex")
LDM_SECONDS, LDM_GB = 0.406, 70.7  # LDM's step at SD kl-f8 scale on one H100, fp32
NOT_OPTIONS = ("TF32 matmuls",)


@dataclass
class Plan:
    dry_run: bool
    budget_s: float
    steps_ddp: int
    started: float = field(default_factory=time.perf_counter)
    rows: list[Row] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.started)


def size_overrides(dry_run: bool) -> tuple[str, ...]:
    """SD's size (or the dry run's), offline: LPIPS pretrained only where its file is."""
    found = backbone_path("alex" if dry_run else "vgg").is_file()
    return (*(DRY if dry_run else SD),
            f"loss.objective.perceptual.pretrained={str(found).lower()}",
            "loss.objective.perceptual.download=false")


def _designs(ctx: Context, plan: Plan) -> None:
    """Both designs per phase, and vaegan's seconds per batch against the absolute target."""
    ratios = design_ratios(ctx)
    for label, _, target in PHASES:
        ratio = ratios[label]
        plan.rows.append(ratio_row(
            "gpu", f"one forward vs two, {label}: LDM's step / `VAEGAN.training_step`", ratio,
            target))
        vaegan_seconds = ratio.b
        plan.rows.append(Row(
            "gpu", f"`VAEGAN.training_step` per batch, {label}", milliseconds(vaegan_seconds),
            f"LDM's step on one H100 (fp32): {LDM_SECONDS * 1e3:.0f} ms; "
            f"{LDM_SECONDS / vaegan_seconds:.2f}× faster", Target(0.135, at_most=True),
            vaegan_seconds))


def _memory(ctx: Context, plan: Plan) -> None:
    cases = {
        "vaegan, GAN on": ("vaegan", GAN_ON, None),
        "reference, GAN on": ("reference", GAN_ON, None),
        "vaegan, GAN off": ("vaegan", GAN_OFF, None),
        "reference with LDM's model ops, GAN on": ("reference", GAN_ON, "ldm_ops"),
    }
    peaks, unit = {}, "CUDA max allocated" if ctx.device.type == "cuda" else "RSS"
    for name, (design, phase, changes) in cases.items():
        spec = {"design": design, "changes": changes, "device": str(ctx.device),
                "overrides": ctx.overrides(*COMPUTE, phase), "warmup": ctx.profile.warmup,
                "steps": 2}
        try:
            peaks[name] = measure_here(spec)["peak_mb"] / 1024
        except Exception as err:  # noqa: BLE001 - e.g. out of memory: say so, keep going
            plan.rows.append(failed_row("gpu", f"peak memory, {name}", err))
            continue
        plan.rows.append(Row("gpu", f"peak memory ({unit}), {name}", f"{peaks[name]:.1f} GiB"))
    for ours, theirs in (("vaegan, GAN on", "reference, GAN on"),
                         ("vaegan, GAN on", "reference with LDM's model ops, GAN on")):
        if ours in peaks and theirs in peaks:
            ratio = peaks[ours] / peaks[theirs]
            plan.rows.append(Row("gpu", f"peak memory, {ours} / {theirs}", f"{ratio:.2f}×",
                                 f"{peaks[ours]:.1f} vs {peaks[theirs]:.1f} GiB",
                                 Target(0.6, at_most=True), ratio))
    if "vaegan, GAN on" in peaks:
        ratio = peaks["vaegan, GAN on"] * 2**30 / 1e9 / LDM_GB
        plan.rows.append(Row("gpu", f"peak memory, vaegan GAN on / LDM's {LDM_GB} GB (H100)",
                             f"{ratio:.2f}×", "", Target(0.6, at_most=True), ratio))


def _train_command() -> list[str]:
    """The installed ``vaegan-train`` next to this Python (DDP re-launches it per rank)."""
    script = Path(sys.executable).with_name("vaegan-train")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "vaegan.train"]


def _ddp(ctx: Context, plan: Plan) -> None:
    """``vaegan-train`` in a fresh process (DDP re-launches it); the dry run: one CPU process."""
    gpus = torch.cuda.device_count() if ctx.device.type == "cuda" else 0
    trainer = ["trainer=ddp", f"trainer.devices={gpus}"] if gpus else ["trainer=cpu"]
    steps = plan.steps_ddp
    with tempfile.TemporaryDirectory(prefix="vaegan-gpu-ddp-") as tmp:
        command = [*_train_command(), *ctx.profile.size, *trainer, f"steps={steps}",
                   "gan_start=100", "diagnose=false", "trainer.limit_val_batches=0", "logger=csv",
                   f"hydra.run.dir={tmp}/run", f"paths.output_dir={tmp}/run"]
        start = time.perf_counter()
        completed = subprocess.run(command, capture_output=True, text=True, check=False,
                                   timeout=max(plan.left(), 60),
                                   env={**os.environ, "HYDRA_FULL_ERROR": "1"})  # its traceback
        wall = time.perf_counter() - start
        metrics = Path(tmp) / "run" / "csv" / "metrics.csv"
        lines = metrics.read_text().splitlines() if metrics.is_file() else []
    what = f"`vaegan-train {shlex.join([SD[0], *trainer, f'steps={steps}'])}`"
    if completed.returncode != 0:
        tail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        plan.rows.append(Row("gpu", f"DDP run {what}", "failed",
                             f"exit {completed.returncode}: {tail}"[:200]))
        return
    where = f"{gpus} GPU(s)" if gpus else "1 CPU process (dry run: no GPU)"
    plan.rows.append(Row("gpu", f"DDP run {what} on {where}", f"{wall:.0f} s wall",
                         f"{wall / steps:.2f} s per step incl. start-up; "
                         f"{max(len(lines) - 1, 0)} metrics rows", value=wall))


def _flags(ctx: Context, plan: Plan) -> None:
    cfg = ctx.config()
    flags = flag_list(ctx.device, with_compile=False,
                      baseline_ac=str(cfg.model.get("activation_checkpointing", "none")))
    plan.rows += flag_rows(ctx, flags)


SECTIONS: tuple[tuple[str, Callable[[Context, Plan], None]], ...] = (
    ("designs", _designs),
    ("memory", _memory),
    ("ddp", _ddp),
    ("flags", _flags),
)


def report(plan: Plan, device: torch.device, command: str) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run)"
    minutes = (time.perf_counter() - plan.started) / 60
    lines = [
        "# vaegan on one GPU: Stable Diffusion kl-f8 scale",
        "",
        f"`{command}` — {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, {name}, "
        f"{torch.cuda.device_count() if device.type == 'cuda' else 0} visible GPU(s), "
        f"torch {torch.__version__}; {minutes:.1f} min.",
        "",
        *(["**Dry run**: tiny sizes on the CPU, to check the code path; no number here says "
           "anything about a GPU or about Stable Diffusion's scale.", ""] if plan.dry_run
          else []),
        f"Size: `{' '.join(size_overrides(plan.dry_run))}`. Each timing is `Trainer.fit` on a "
        "fixed batch (see `vaegan/bench/gpu.py`).",
        "",
        render(plan.rows),
        "",
        *(f"- {note}" for note in plan.notes),
        f"- not measured (no vaegan option): {', '.join(NOT_OPTIONS)}",
        *(f"- **skipped**: {skipped}" for skipped in plan.skipped),
        "",
    ]
    return "\n".join(lines)


def run(plan: Plan, device: torch.device, out: Path, command: str) -> str:
    profile = replace(FULL, warmup=1 if plan.dry_run else 3, steps=1 if plan.dry_run else 8,
                      repeats=1 if plan.dry_run else 2, size=size_overrides(plan.dry_run),
                      compile=False)
    backbone = "alex" if plan.dry_run else "vgg"
    if not backbone_path(backbone).is_file():
        plan.notes.append(f"LPIPS backbone not at {backbone_path(backbone)}: a random backbone "
                          "(same cost, not LPIPS's values)")
    with tempfile.TemporaryDirectory(prefix="vaegan-gpu-") as tmp:
        ctx = Context(profile, device, Path(tmp))
        for name, section in SECTIONS:
            if plan.left() <= 0:
                plan.skipped.append(f"{name}: the {plan.budget_s:.0f} s budget was spent")
                continue
            print(f"[bench-gpu] {name} ({plan.left():.0f} s left) ...", file=sys.stderr,
                  flush=True)
            try:
                section(ctx, plan)
            except Exception as err:  # noqa: BLE001 - one failed section must not lose the rest
                plan.rows.append(failed_row("gpu", f"section `{name}`", err))
            out.write_text(report(plan, device, command))
    text = report(plan, device, command)
    out.write_text(text)
    return text


def main(argv: list[str] | None = None) -> str:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m vaegan.bench.gpu", description=__doc__)
    parser.add_argument("--dry-run", action="store_true",
                        help="the same code on the CPU at tiny sizes (~15 s; the test suite)")
    parser.add_argument("--out", type=Path, default=Path("bench/RESULTS-gpu.md"),
                        help="the report's file (default: %(default)s)")
    parser.add_argument("--budget", type=float, default=360.0,
                        help="seconds after which no section starts (default 360: done by ~8 min)")
    parser.add_argument("--ddp-steps", type=int, default=200,
                        help="generator steps of the DDP run (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.dry_run:  # code paths, not speed: one thread is fastest on a shared CPU
        device = torch.device("cpu")
        torch.set_num_threads(1)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
        torch.backends.cudnn.benchmark = False  # the flags section measures it
    else:
        raise SystemExit("error: no CUDA GPU here (python -m vaegan.bench.gpu --dry-run runs "
                         "the same code on the CPU at tiny sizes)")
    plan = Plan(args.dry_run, args.budget, 2 if args.dry_run else args.ddp_steps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = run(plan, device, args.out, shlex.join(["python", "-m", "vaegan.bench.gpu", *argv]))
    print(text)
    return text


if __name__ == "__main__":
    main()
