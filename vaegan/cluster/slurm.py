"""SLURM: the cluster environment for ``trainer=ddp`` and the resume of a requeued job.

Lightning picks TorchElastic, SLURM, LSF, MPI or its default environment by looking at the
process environment; this does the same, except that on SLURM its mid-step auto-requeue is
switched off. Lightning's requeue handler saves the checkpoint *inside* the signal handler,
wherever the main thread happens to be: between the generator and the discriminator step of a
batch, or, under DDP, while another rank is in an all-reduce (its save has a barrier).
``vaegan.cluster.requeue.RequeueOnSignal`` saves at the next generator-step boundary instead,
so a requeued run resumes exactly (``ckpt_path=last``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.fabric.plugins.environments import (
    ClusterEnvironment,
    LightningEnvironment,
    LSFEnvironment,
    MPIEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
)

log = logging.getLogger("vaegan")


def cluster_environment() -> ClusterEnvironment:
    """The environment Lightning would detect; SLURM without its mid-step auto-requeue."""
    if TorchElasticEnvironment.detect():  # first: torchrun may run inside a SLURM job
        return TorchElasticEnvironment()
    if SLURMEnvironment.detect():
        return SLURMEnvironment(auto_requeue=False)
    for env_type in (LSFEnvironment, MPIEnvironment):
        if env_type.detect():
            return env_type()
    return LightningEnvironment()


def resolve_ckpt_path(ckpt_path: str | None, run_dir: Path) -> str | None:
    """``ckpt_path=last``: RUN_DIR/checkpoints/last.ckpt when it exists, else a fresh start.

    What a requeued (or resubmitted) job passes: the same command resumes where the pre-empted
    one stopped, and starts from scratch the first time. Any other value is a path, unchanged.
    """
    if ckpt_path != "last":
        return ckpt_path
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        log.info("ckpt_path=last: resuming from %s", last)
        return str(last)
    log.info("ckpt_path=last: no %s yet, starting fresh", last)
    return None
