"""``gan_control=true``: the same run continued from ``gan_start`` with and without the GAN.

One run cannot say whether KL flattens *because* the GAN switched on: KL often flattens on its
own. The counterfactual can: the GAN branch trains in RUN_DIR as usual and writes
``checkpoints/gan_start.ckpt`` when ``gan_start`` generator steps are done; the no-GAN branch
resumes from that file in ``RUN_DIR/control/`` (a run dir of its own) to the same ``steps``.
Same weights, optimizer states, data position and RNG states at the fork, so the two branches
differ only in the adversarial term, and everything before ``gan_start`` is computed once.

The branches run one after the other in this process. Side by side would not be faster on the
machines the quickstart targets: each branch already keeps both cores of a 2-core machine busy
(torch intra-op threads), and two torch processes on 2 cores slow each other down more than
they overlap; on a GPU the two would compete for the same device. Sequential order also makes
the resume rule simple: ``ckpt_path=last`` (a requeued job) finishes the GAN branch if it is
unfinished, then the control from ``control/checkpoints/last.ckpt`` (or the fork).

Each branch is the plain training run under a few overrides (``branch_overrides``), so a DDP
child rank (``vaegan/cluster/ddp.py`` re-runs the Hydra job) trains exactly the branch
rank 0 trains.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf, open_dict

from vaegan.app.config import ConfigError
from vaegan.app.rundir import RunFinished, check_not_finished, resolve_ckpt_path
from vaegan.app.sweep import mark_run
from vaegan.loggers.hydra_names import sweep_group
from vaegan.loggers.wandb import finish_wandb
from vaegan.vocab.layout import RunLayout
from vaegan.vocab.overrides import override_value
from vaegan.vocab.redact import redact_config

log = logging.getLogger("vaegan")

GAN, CONTROL = "gan", "control"  # values of the `branch` key
STOPPED = ("stopped", "requeued")  # run_info.json statuses of a job a signal ended
_WANDB_TARGET = "vaegan.loggers.wandb.make_wandb_logger"


def fork_path(run_dir: Path) -> Path:
    """RUN_DIR/checkpoints/gan_start.ckpt: where the branches fork."""
    return RunLayout(run_dir).fork_ckpt


def fork_id(run_dir: Path) -> str | None:
    """The SHA-256 (first 16 hex digits) of the pair's fork checkpoint; None before it exists.

    Both branches record it in run_info.json, so the diagnosis can tell a control forked from
    this GAN run from one left over by another run (``vaegan.analysis.paired``).
    """
    path = fork_path(run_dir)
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def record_fork_id(run_dir: Path, fork: str | None) -> None:
    """Merge ``fork_id`` into RUN_DIR/run_info.json (the GAN branch wrote it before the fork)."""
    path = RunLayout(run_dir).run_info
    if fork is None or not path.is_file():
        return
    info = json.loads(path.read_text())
    if info.get("fork_id") == fork:  # a finished pair's re-run touches nothing
        return
    info["fork_id"] = fork
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2))
    tmp.replace(path)


class ForkCheckpoint(L.Callback):
    """Write ``gan_start.ckpt`` once ``at_gen_step`` generator steps are done.

    The save happens at a generator-step boundary (batch end), where a checkpoint resumes
    exactly (``tests/test_resume.py``); every rank calls it, rank 0 writes (atomically).
    """

    def __init__(self, path: str | Path, at_gen_step: int) -> None:
        self.path, self.at_gen_step = Path(path), int(at_gen_step)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if pl_module.gen_step == self.at_gen_step and not trainer.sanity_checking:
            trainer.save_checkpoint(self.path)
            log.info("gan_control: wrote the fork checkpoint %s", self.path)


def _wandb_nodes(cfg: DictConfig) -> list[DictConfig]:
    return [
        node for node in (cfg.get("logger") or {}).values()
        if isinstance(node, DictConfig) and node.get("_target_") == _WANDB_TARGET
    ]


def branch_overrides(cfg: DictConfig, branch: str, run_dir: Path) -> dict[str, Any]:
    """The config keys that turn the composed job config into one branch of the pair.

    The GAN branch is the job itself plus the fork checkpoint (``branch=gan``). The control is
    a plain run without the adversarial term (``loss.gan=false``: the discriminator is built,
    as in the GAN branch, and never used), resumed from its last checkpoint or the fork.
    """
    if branch == GAN:
        return {"branch": GAN}
    last = RunLayout(run_dir).control.last_ckpt
    return {
        "gan_control": False,
        "branch": CONTROL,
        "loss.gan": False,
        "ckpt_path": str(last if last.is_file() else fork_path(run_dir)),
    }


def branch_config(cfg: DictConfig, branch: str, run_dir: Path) -> tuple[DictConfig, Path]:
    """The branch's config and run dir; DDP child ranks get the same overrides."""
    overrides = branch_overrides(cfg, branch, run_dir)
    out = copy.deepcopy(cfg)
    branch_dir = RunLayout(run_dir).control.root if branch == CONTROL else Path(run_dir)
    with open_dict(out):
        for key, value in overrides.items():
            OmegaConf.update(out, key, value, force_add=True)
        out.paths.output_dir = str(branch_dir)
        strategy = OmegaConf.select(out, "trainer.strategy")
        if isinstance(strategy, DictConfig) and "child_overrides" in strategy:
            strategy.child_overrides = [f"{k}={override_value(v)}" for k, v in overrides.items()]
        for node in _wandb_nodes(out):  # the pair in one wandb group, the control named so
            if node.get("group") is None:
                node.group = _pair_group(cfg, run_dir)
            if branch == CONTROL:
                node.name_suffix = " [no-GAN control]"
    return out, branch_dir


def _pair_group(cfg: DictConfig, run_dir: Path) -> str:
    return sweep_group() or f"{cfg.run_name}-{Path(run_dir).name}"


def save_branch_config(cfg: DictConfig, branch_dir: Path) -> None:
    """``control/.hydra/config.yaml``: what analysis reads (Hydra writes only the job's own)."""
    hydra_dir = branch_dir / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    OmegaConf.save(redact_config(job), hydra_dir / "config.yaml")


def _finished(ckpt: str | Path | None, steps: int) -> bool:
    """The run-dir rule for one branch: finished at ``steps``; ``steps`` below it is an error."""
    try:
        check_not_finished(ckpt, steps)
    except RunFinished as done:
        log.warning("gan_control: %s", done)
        return True
    return False


def _status(run_dir: Path) -> str | None:
    path = RunLayout(run_dir).run_info
    return json.loads(path.read_text()).get("status") if path.is_file() else None


def run_pair(
    cfg: DictConfig, run_dir: Path, fit: Callable[[DictConfig, Path], dict[str, Any]]
) -> dict[str, Any]:
    """Train the GAN branch (unless finished), then the control (unless finished).

    ``fit(cfg, run_dir)`` trains one plain run. A branch stopped by a signal ends the job
    (status ``stopped``/``requeued``); the next ``ckpt_path=last`` run picks up from there.
    """
    steps = int(cfg.steps)
    result: dict[str, Any] = {"run_dir": str(run_dir), "metrics": {}, "gen_step": steps}
    gan_cfg, _ = branch_config(cfg, GAN, run_dir)
    gan_finished = _finished(resolve_ckpt_path(cfg.get("ckpt_path"), run_dir), steps)
    if not gan_finished:
        result = fit(gan_cfg, run_dir)
        if result["gen_step"] < steps:  # stopped (signal): the control must wait
            return result
        run_dir = Path(result["run_dir"])  # on_existing_run=sibling may have moved it
        finish_wandb()  # the control is a wandb run of its own
    fork = fork_path(run_dir)
    record_fork_id(run_dir, fork_id(run_dir))
    if not fork.is_file():
        raise ConfigError(
            f"gan_control=true: {fork} is missing, so the no-GAN branch has nowhere to start; "
            "it is written when gan_start is reached, so train the pair from step 0 (a run "
            "resumed past gan_start without gan_control has no fork)"
        )
    control_cfg, control_dir = branch_config(cfg, CONTROL, run_dir)
    if _finished(control_cfg.ckpt_path, steps):  # both finished: say so, touch nothing
        control_result = {"run_dir": str(control_dir), "gen_step": steps}
        return {**result, "finished": gan_finished, "control": control_result}
    log.info("gan_control: no-GAN branch from %s into %s", control_cfg.ckpt_path, control_dir)
    save_branch_config(control_cfg, control_dir)
    control = fit(control_cfg, control_dir)
    if control["gen_step"] < steps:  # the job's status is the unfinished branch's
        if (status := _status(control_dir)) is not None:
            mark_run(run_dir, status)
    elif _status(run_dir) in STOPPED:  # both done: no longer the earlier stop's status
        mark_run(run_dir, "completed")
    # a stop in the control is reported by exit_if_stopped from result["control"], with the
    # control's own step and checkpoint
    return {**result, "control": control}
