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
from typing import Any

from lightning.fabric.plugins.environments import (
    ClusterEnvironment,
    LightningEnvironment,
    LSFEnvironment,
    MPIEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
)
from omegaconf import OmegaConf

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


def gpus_per_node(accelerator: str, devices: Any) -> Any:
    """What a SLURM job asks per node (``--gpus-per-node``): the trainer's devices, but none
    when it trains on CPU, where ``devices`` counts processes and a GPU request would make
    sbatch refuse the job on a cluster without GPUs ("Invalid generic resource")."""
    return 0 if str(accelerator) == "cpu" else devices


# conf/hydra/launcher/slurm.yaml: gpus_per_node: ${vaegan.gpus_per_node:...}
OmegaConf.register_new_resolver("vaegan.gpus_per_node", gpus_per_node, replace=True)
