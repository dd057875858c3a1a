"""Running on a cluster: DDP child processes, SLURM environment, pre-emption and requeue."""
