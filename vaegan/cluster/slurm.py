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
