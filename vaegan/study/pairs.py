"""A GAN run and its no-GAN branch (``gan_control=true``) read as one no-GAN trajectory.

The branch (``RUN_DIR/control``, ``Run.control`` from ``vaegan.analysis.load_run``) starts
from the GAN run's checkpoint at the fork (``gan_start``), so before the fork the GAN run *is*
the no-GAN run. ``nogan_view`` joins the two: the GAN run's points before the fork and the
branch's from there. Rules then compare GAN and no-GAN over the same steps, paired by seed,
with everything before the fork shared.
"""

from __future__ import annotations

import numpy as np

from vaegan.analysis.runs import Run, Series


def had_gan(run: Run) -> bool:
    """Whether the adversarial term was on in this run (a no-GAN run has no gan_start)."""
    if run.cfg("loss.gan") is False:
        return False
    return run.gan_start is not None


def nogan_view(run: Run) -> Run | None:
    """The run's trajectory without the GAN: the run itself when it never had one, else its
    points before the fork joined to its no-GAN branch's (None without a branch)."""
    if not had_gan(run):
        return run
    control = run.control
    if control is None:
        return None
    fork = float(run.fork_step)  # type: ignore[arg-type]
    series = {}
    for name in sorted(set(run.series) | set(control.series)):
        parts = []
        if (s := run.series.get(name)) is not None:
            parts.append(s.between(-np.inf, fork - 0.5))
        if (s := control.series.get(name)) is not None:
            parts.append(s.between(fork, np.inf))
        x = np.concatenate([p.x for p in parts])
        if len(x):
            series[name] = Series(x, np.concatenate([p.y for p in parts]))
    return Run(path=control.path, metrics_path=control.metrics_path, x_name=run.x_name,
               series=series, config=control.config or run.config, overrides=run.overrides,
               info={**run.info, "branch": "no-GAN view"})
