"""Lightning's DDP for a Hydra app with two players: the strategy that ``trainer=ddp`` builds.

Two problems are solved here, deliberately and in one place.

**Unused parameters.** Lightning wraps the *whole* LightningModule in one
``DistributedDataParallel``, so one reducer owns the autoencoder, the discriminator and the
learned output log-variance. The training step (manual optimisation) calls backward twice per
batch: the generator loss reaches the autoencoder only (before ``gan_start`` the discriminator
is not even run; after it, ``toggle_optimizer`` has switched off the discriminator's
``requires_grad``), and the discriminator loss reaches the discriminator only (it sees the
*detached* reconstruction). With ``find_unused_parameters=False`` the reducer waits for
gradients that never come and the second iteration fails ("Expected to have finished reduction
in the prior iteration"). ``static_graph=True`` is wrong too: the set of used parameters changes
between the two backwards of one step and again at ``gan_start``. Padding each loss with
``0 * sum(other player's params)`` would make every parameter "used", but it costs a pass over
all parameters, hands Adam zero gradients it would otherwise never see, and fights
``toggle_optimizer``. So the choice is ``find_unused_parameters=True``: before each
``manual_backward`` Lightning hands the loss to the reducer, which walks the autograd graph once
and marks the other player's parameters ready; a parameter unused on every rank keeps
``grad=None``, so its optimizer skips it exactly as in a single process. The walk is cheap next
to the convolutions (see ``vaegan.bench.ddp_cost``); ``tests/test_ddp.py`` checks that the
weights stay identical on both ranks with the GAN on.

**Hydra.** Lightning's ``ddp`` starts ranks 1..N-1 by running the script again. Its Hydra
support re-runs ``sys.argv`` with ``hydra.run.dir`` set to the *configured* run dir, so a
multirun job's children start a multirun of their own (with new sweep dirs, and ranks that join
the wrong job), and its environment variables (``LOCAL_RANK``, ``MASTER_PORT``) outlive the job,
so the next job of the sweep believes its processes are launched externally and waits forever.
``HydraJobLauncher`` starts each child as a single run of *this job*: the job's own overrides,
``hydra.run.dir`` = the job's run dir, no ``.hydra/`` output, and it restores the environment,
the thread count and the process group when the job ends, so the next job starts clean.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import torch
from lightning.fabric.utilities.distributed import _set_num_threads_if_needed
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

from vaegan.vocab.overrides import override_value

# Hydra overrides that describe the parent (its mode, sweep, launcher), not the child's run.
_PARENT_ONLY = re.compile(
    r"^[~+]*hydra(\.|/)(mode|run\.dir|sweep|launcher|sweeper|output_subdir|job\.name|callbacks)"
)
CHILD_WAIT_S = 120.0


def _override_key(override: str) -> str:
    return override.partition("=")[0].lstrip("~+")


def child_command(
    run_dir: str, local_rank: int, extra: Sequence[str] = ()
) -> tuple[list[str], str]:
    """argv and cwd that re-run the current Hydra job as rank ``local_rank`` in ``run_dir``;
    ``extra`` overrides replace the job's own for the same keys (a ``gan_control`` branch)."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    replaced = {_override_key(o) for o in extra}
    command = [sys.executable, "-m", "vaegan.train", f"--config-name={hc.job.config_name}"]
    for source in hc.runtime.config_sources:
        if source.schema != "file":
            continue
        if source.provider == "main":
            command.append(f"--config-path={source.path}")
        elif source.provider == "command-line":
            command.append(f"--config-dir={source.path}")
    command += [o for o in hc.overrides.task if _override_key(o) not in replaced]
    command += list(extra)
    command += [o for o in hc.overrides.hydra if not _PARENT_ONLY.match(o)]
    command += [
        f"hydra.run.dir={override_value(run_dir)}",
        "hydra.output_subdir=null",  # the parent alone writes .hydra/
        f"hydra.job.name=train_ddp_process_{local_rank}",  # its log: RUN_DIR/<name>.log
    ]
    return command, str(hc.runtime.cwd or os.getcwd())


def _hydra_active() -> bool:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.initialized()


class JobObserver(threading.Thread):
    """Watches one job's child ranks; stopped when the job ends.

    Lightning's observer outlives the job and SIGKILLs the main process as soon as any child
    has a non-zero exit code: in a multirun that kills the whole sweep when one DDP job fails
    (its children exit with the error, or are killed by ``launch``). Here a failed child first
    gives rank 0 ``grace_s`` to fail on its own (with gloo it does at once: the peer's socket
    closes; the same error on every rank raises on rank 0 too), which ``launch`` reports as a
    failed job. Only a rank 0 still running after that, hung in a collective with a dead
    peer, is ended as Lightning ends it.
    """

    def __init__(
        self, procs: list[subprocess.Popen], poll_s: float = 2.0, grace_s: float = CHILD_WAIT_S
    ) -> None:
        super().__init__(daemon=True, name="vaegan-child-observer")
        self.procs, self.poll_s, self.grace_s = procs, poll_s, grace_s
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        while not self._stopped.wait(self.poll_s):
            if any(proc.poll() not in (None, 0) for proc in self.procs):
                if self._stopped.wait(self.grace_s):
                    return
                for proc in self.procs:
                    proc.kill()
                os.kill(os.getpid(), signal.SIGKILL)


class HydraJobLauncher(_SubprocessScriptLauncher):
    """Lightning's subprocess launcher, with children that re-run this Hydra job, not argv, and
    an observer (`JobObserver`) that ends with the job."""

    def __init__(self, *args: Any, child_overrides: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._run_dir: str | None = None
        self.child_overrides = list(child_overrides)

    def launch(self, function: Callable, *args: Any, trainer: Any = None, **kwargs: Any) -> Any:
        """Lightning's launch, with a child-process observer that lives as long as this job."""
        self._run_dir = str(trainer.default_root_dir) if trainer is not None else None
        environ, threads = dict(os.environ), torch.get_num_threads()
        self.cluster_environment.validate_settings(
            num_devices=self.num_processes, num_nodes=self.num_nodes
        )
        observer = None
        try:
            if not self.cluster_environment.creates_processes_externally:
                self._call_children_scripts()
                observer = JobObserver(self.procs)
                observer.start()
            _set_num_threads_if_needed(num_processes=self.num_processes)
            return function(*args, **kwargs)
        except BaseException:
            for proc in self.procs:  # they would wait for rank 0 in a collective until timeout
                proc.kill()
            raise
        finally:
            if observer is not None:
                observer.stop()
            if self.procs or not self.cluster_environment.creates_processes_externally:
                self._end_job(environ, threads)

    def _end_job(self, environ: dict[str, str], threads: int) -> None:
        """Wait for the children, then leave the process as the job found it."""
        for proc in self.procs:
            try:
                proc.wait(timeout=CHILD_WAIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        os.environ.clear()
        os.environ.update(environ)
        torch.set_num_threads(threads)

    def _call_children_scripts(self) -> None:
        if self._run_dir is None or not _hydra_active():
            super()._call_children_scripts()
            return
        self._check_can_spawn_children()
        self.procs = []
        env = dict(os.environ)
        env.update(
            MASTER_ADDR=self.cluster_environment.main_address,
            MASTER_PORT=str(self.cluster_environment.main_port),
            NODE_RANK=str(self.cluster_environment.node_rank()),
            WORLD_SIZE=str(self.num_processes * self.num_nodes),
        )
        os.environ.update(env)  # rank 0 reads them too (restored when the job ends)
        for local_rank in range(1, self.num_processes):
            command, cwd = child_command(self._run_dir, local_rank, self.child_overrides)
            child_env = {**env, "LOCAL_RANK": str(local_rank)}
            self.procs.append(subprocess.Popen(command, env=child_env, cwd=cwd))


class HydraDDPStrategy(DDPStrategy):
    """``DDPStrategy`` with ``find_unused_parameters=True`` (see the module docstring) and
    ``HydraJobLauncher``. ``timeout_s`` bounds a collective (a hung rank fails, not waits);
    ``child_overrides`` are added to the child ranks' command (set by ``vaegan/app/control.py``)."""

    def __init__(
        self,
        find_unused_parameters: bool = True,
        timeout_s: float | None = None,
        process_group_backend: str | None = None,
        child_overrides: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        self.child_overrides = list(child_overrides)
        if timeout_s is not None:
            kwargs["timeout"] = timedelta(seconds=timeout_s)
        super().__init__(
            find_unused_parameters=find_unused_parameters,
            process_group_backend=process_group_backend,
            **kwargs,
        )

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if isinstance(self._launcher, _SubprocessScriptLauncher):
            self._launcher = HydraJobLauncher(
                self.cluster_environment, self.num_processes, self.num_nodes,
                child_overrides=self.child_overrides,
            )

