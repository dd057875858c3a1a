"""Non-finite losses and gradients: skip the optimizer step, count it, stop after K in a row.

A week-long VAE-GAN run dies from one NaN (an fp16 overflow, a zero gradient norm in the
adaptive weight, an exploding learned log-variance). One bad batch should cost one skipped
step, not the run; a run that keeps producing NaNs should stop with a checkpoint of its last
good weights and say which term broke and what usually fixes it.

Cost: one host sync per optimizer step (``bool(isfinite(loss) & isfinite(grad_norm))``, plus
under DDP one all-reduce of that flag so every rank skips together); the per-term search and
the last finite values are read only on the failure path.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor

from vaegan.vocab import metric_names as names
from vaegan.vocab.checks import require
from vaegan.vocab.layout import last_checkpoint_path

log = logging.getLogger("vaegan")

PLAYERS = {"generator": names.LOSS, "discriminator": names.D_LOSS}  # player -> its total loss
GENERIC_FIX = "lower optim.lr, or train in fp32 (trainer.precision=32-true)"
FIXES = {
    names.REC: "check the data for inf/NaN pixels; " + GENERIC_FIX,
    names.PERCEPTUAL: "LPIPS expects inputs in [-1, 1]; " + GENERIC_FIX,
    names.NLL: "the learned output log-variance diverged: lower optim.lr or set "
    "loss.objective.learn_logvar=false",
    names.LOGVAR: "the learned output log-variance diverged: lower optim.lr or set "
    "loss.objective.learn_logvar=false",
    names.KL: "clamp the posterior log-variance (model.posterior.parameterization=softplus, or a "
    "narrower model.posterior.logvar_min/logvar_max); " + GENERIC_FIX,
    names.G_ADV: "lower loss.objective.adaptive_max (the adaptive-weight clamp) or "
    "loss.objective.disc_weight; " + GENERIC_FIX,
    "adv_weight": "lower loss.objective.adaptive_max (the adaptive-weight clamp); " + GENERIC_FIX,
    names.D_LOSS: "lower optim.disc_lr, or set optim.disc_grad_clip; " + GENERIC_FIX,
    "grad": "set optim.grad_clip / optim.disc_grad_clip; " + GENERIC_FIX,
}


class NonFiniteLossError(RuntimeError):
    """Training stopped after too many consecutive non-finite steps; a checkpoint was saved."""


def _optimizer_grads(opt: Any) -> list[Tensor]:
    return [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]


class NonFiniteGuard:
    """Decides, per optimizer step, whether its loss and gradients are finite.

    Keeps the logs of the last finite step of each player (tensors, read only when failing),
    and the number of skipped steps (``skipped``, logged as ``train/nonfinite_steps``).
    """

    def __init__(self, max_consecutive_nonfinite: int = 5) -> None:
        require(max_consecutive_nonfinite >= 1, "faults.max_consecutive_nonfinite",
                max_consecutive_nonfinite, "be >= 1")
        self.max_consecutive = max_consecutive_nonfinite
        self.skipped = 0
        self._consecutive = dict.fromkeys(PLAYERS, 0)
        self._last_good: dict[str, tuple[int, dict[str, Tensor]]] = {}

    def state_dict(self) -> dict[str, Any]:
        """The counters a resumed run continues from (equal on every DDP rank: ranks skip
        together)."""
        return {"skipped": self.skipped, "consecutive": dict(self._consecutive)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.skipped = int(state.get("skipped", 0))
        self._consecutive.update({k: int(v) for k, v in state.get("consecutive", {}).items()})

    # ------------------------------------------------------------------ the check
    def check(
        self, module: Any, player: str, step: int, opt: Any, logs: dict[str, Tensor]
    ) -> bool:
        """True if ``opt`` may step; otherwise count, warn and (after K in a row) stop."""
        grads = _optimizer_grads(opt)
        loss = logs[PLAYERS[player]].detach()
        # A GradScaler (16-mixed) skips inf/NaN gradients itself and lowers its scale: leave
        # those to it, or it would never learn that the scale is too high.
        scaler = getattr(getattr(module.trainer, "precision_plugin", None), "scaler", None)
        if grads and scaler is None:
            grad_norm = torch.nn.utils.get_total_norm(grads).to(loss.device)
        else:
            grad_norm = torch.zeros((), device=loss.device)
        finite = bool(torch.isfinite(loss) & torch.isfinite(grad_norm))  # the one host sync
        # DDP: every rank skips (and stops) together, or the replicas' weights would drift.
        if module.trainer.strategy.reduce_boolean_decision(finite, all=True):
            self._consecutive[player] = 0
            logs = {k: v.detach() for k, v in logs.items()}
            self._last_good[player] = (step, {**logs, "grad": grad_norm.detach()})
            return True
        self.skipped += 1
        self._consecutive[player] += 1
        term = self._culprit(player, logs)
        log.warning(
            "skipped the %s step at gen_step %d: non-finite %s (%d in a row)",
            player, step, term, self._consecutive[player],
        )
        if self._consecutive[player] >= self.max_consecutive:
            self._stop(module, player, step, term)
        return False

    @staticmethod
    def _culprit(player: str, logs: dict[str, Tensor]) -> str:
        """The first non-finite term in the objective's order (parts before totals)."""
        total = PLAYERS[player]
        for name, value in logs.items():
            if name != total and not bool(torch.isfinite(value).all()):
                return name
        return total if not bool(torch.isfinite(logs[total]).all()) else "grad"

    def _last_finite(self, player: str, term: str) -> str:
        if player not in self._last_good:
            return "no finite value yet (it failed from the first step)"
        step, logs = self._last_good[player]
        value = logs.get(term, logs[PLAYERS[player]])
        return f"last finite value {float(value):.6g} at gen_step {step}"

    def _stop(self, module: Any, player: str, step: int, term: str) -> None:
        trainer = module.trainer
        path = last_checkpoint_path(trainer)
        # Skipped steps changed nothing: these are the weights of the last finite step.
        trainer.save_checkpoint(path, weights_only=False)
        k = self._consecutive[player]
        raise NonFiniteLossError(
            f"non-finite {term} in the {player} step for {k} consecutive steps "
            f"(gen_step {step - k + 1}..{step}); {self._last_finite(player, term)}. "
            f"Saved the last good weights to {path}. Likely fix: {FIXES.get(term, GENERIC_FIX)}"
        )
