"""Where a generator pass's memory goes: the bytes each network saves for the backward pass.

Every design that trains the autoencoder holds one autoencoder graph, the perceptual graph
and (GAN on) the discriminator's graph on the reconstruction at the same time, so this split
bounds what any reordering of the step can save. Saved activations scale with batch × pixels,
so the split at a CPU-sized batch also holds at Stable Diffusion's 256 px, batch 12.

``SavedBytes`` counts them in the real ``VAEGAN.training_step``: from the start of the first
batch to the module's ``on_generator_output`` hook (every graph of the pass alive, before the
generator's backward).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn


def _tagging(networks: dict[str, nn.Module], running: list[str]) -> contextlib.ExitStack:
    """Keep ``running[-1]`` = the name of the network whose forward is running."""

    def leave(*_: object) -> None:  # a forward hook that returned a value would replace outputs
        running.pop()

    stack = contextlib.ExitStack()
    for name, network in networks.items():
        stack.enter_context(network.register_forward_pre_hook(
            lambda *_, name=name: running.append(name)))
        stack.enter_context(network.register_forward_hook(leave))
    return stack


class SavedBytes(L.Callback):
    """Bytes saved for backward by the first batch's generator pass, per network (``losses``:
    the rest); weights that convolutions save are parameters, not activations, and are left
    out. A tensor saved by two ops counts once."""

    def __init__(self) -> None:
        self.total: Counter[str] = Counter()
        self.counted = False
        self._counting: contextlib.ExitStack | None = None

    def on_train_batch_start(self, trainer: L.Trainer, module: Any, *args: Any) -> None:
        if self.counted or self._counting is not None:
            return
        networks = {"autoencoder": module.autoencoder, "perceptual": module.objective.perceptual,
                    "discriminator": module.discriminator}
        networks = {name: net for name, net in networks.items() if net is not None}
        seen = {tensor.untyped_storage()._cdata
                for net in (*networks.values(), module.objective)
                for tensor in (*net.parameters(), *net.buffers())}
        running = ["losses"]

        def pack(tensor: Tensor) -> Tensor:
            storage = tensor.untyped_storage()
            if storage._cdata not in seen:
                seen.add(storage._cdata)
                self.total[running[-1]] += storage.nbytes()
            return tensor

        self._counting = _tagging(networks, running)
        self._counting.enter_context(
            torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor))

    def on_generator_output(self, trainer: L.Trainer, module: Any, *args: Any) -> None:
        if self._counting is not None:
            self._counting.close()
            self._counting, self.counted = None, True

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self._counting is not None:
            self._counting.close()
            raise RuntimeError("the step called no on_generator_output hook: nothing counted")
