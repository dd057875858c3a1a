"""Peak training memory of one configuration, measured in a fresh process.

Each configuration runs in a fresh process, so no other's allocations or allocator state leak
in: build, warm up (Adam's state now exists), reset the peak resident set (``clear_refs``),
train ``steps`` batches, read the peak (``VmHWM``; ``ru_maxrss`` where there is no
``/proc``). What is reported is the peak *above* the idle process holding the models, data and
optimizer state: the activations, gradients and temporaries a training step adds. On a GPU:
CUDA's max allocated bytes, reset the same way.

``design``: ``vaegan`` (``VAEGAN.training_step``) or ``reference`` (``LDMReference``), both
under ``Trainer.fit`` on a fixed batch; ``changes``: ``+``-joined ``model_changes.CHANGES``
names applied to the built module.

``python -m vaegan.bench.memory '{"design": "vaegan", "overrides": [...], ...}'`` prints JSON.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from vaegan.bench.config import bench_config
from vaegan.bench.fit import BatchClock, SyntheticData, build, fit, with_steps

MB = 2**20
# Serve every large tensor from its own mmap so freed memory leaves the resident set at once
# (glibc would otherwise raise its threshold and keep freed arenas, hiding the peak).
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class Probe:
    """Idle and peak bytes on ``device``: CUDA's allocator stats, else the process RSS."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.idle = 0

    def reset(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.idle = torch.cuda.memory_allocated()
            return
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
        except OSError:
            pass  # no glibc or no /proc: the peak then includes the warm-up's
        self.idle = (_status_kb("VmRSS") or 0) * 1024

    def peak(self) -> int:
        if self.cuda:
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated()
        hwm = _status_kb("VmHWM")
        if hwm is None:
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return hwm * 1024


def measure_here(spec: dict[str, Any]) -> dict[str, float]:
    """Run ``spec`` in this process; peak and idle in MiB."""
    device = torch.device(spec.get("device", "cpu"))
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    probe = Probe(device)
    warmup, steps = int(spec.get("warmup", 1)), int(spec.get("steps", 2))
    peak: list[int] = []
    clock = BatchClock(warmup, warmup + steps, probe.reset, lambda: peak.append(probe.peak()))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = with_steps(bench_config(Path(tmp), spec.get("overrides", ())), clock.total,
                         Path(tmp))
        module = build(cfg, spec["design"], spec.get("changes"))
        fit(cfg, module, SyntheticData(cfg), Path(tmp), clock)
    idle = probe.idle / MB
    return {"idle_mb": idle, "peak_mb": peak[0] / MB, "step_mb": peak[0] / MB - idle}


def peak_memory(spec: dict[str, Any], timeout: float = 900) -> dict[str, float]:
    """``measure_here(spec)`` in a fresh Python process: an exact peak."""
    env = {**os.environ, **ALLOCATOR_ENV}
    completed = subprocess.run(
        [sys.executable, "-m", "vaegan.bench.memory", json.dumps(spec)],
        capture_output=True, text=True, env=env, timeout=timeout, check=False,
    )
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        tail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"memory probe {spec['design']} failed: {tail}")
    return json.loads(lines[-1])


if __name__ == "__main__":
    print(json.dumps(measure_here(json.loads(sys.argv[1]))))
