"""What the tests share: each module has one job, and no test module imports another.

``run`` composes configs and trains tiny runs (in-process or through ``vaegan-train``'s
``main``), ``metrics`` reads a run's ``csv/metrics.csv``, ``synthetic`` writes run dirs with
known KL curves for the analysis tests, ``offline_wandb`` reads the files offline wandb writes,
``resume`` holds the settings of the exact-resume runs, ``faults`` injects NaNs into a real run,
and ``probes`` holds the test-only Lightning callbacks a run loads by ``_target_`` (DDP child
processes import them too).
"""
