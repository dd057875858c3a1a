"""Where a generator pass's memory goes: the bytes each network saves for the backward pass.

Every design that trains the autoencoder holds one autoencoder graph, the perceptual graph
and (GAN on) the discriminator's graph on the reconstruction at the same time, so this split
bounds what any reordering of the step can save. Saved activations scale with batch × pixels,
so the split at a CPU-sized batch also holds at Stable Diffusion's 256 px, batch 12.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from vaegan.bench.players import Players


@contextmanager
def _tagging(modules: dict[str, nn.Module], stack: list[str]) -> Iterator[None]:
    """Keep ``stack[-1]`` = the name of the network whose forward is running."""

    def leave(*_: object) -> None:  # a forward hook that returned a value would replace outputs
        stack.pop()

    handles = []
    for name, module in modules.items():
        handles.append(module.register_forward_pre_hook(lambda *_, n=name: stack.append(n)))
        handles.append(module.register_forward_hook(leave))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def saved_bytes(p: Players, x: Tensor, gan_on: bool = True) -> Counter[str]:
    """Bytes saved for backward by one generator forward, per network (``losses``: the rest);
    weights that convolutions save are parameters, not activations, and are left out."""
    networks = {"autoencoder": p.ae, "perceptual": p.objective.perceptual, "discriminator": p.disc}
    networks = {k: v for k, v in networks.items() if v is not None}
    weights = {
        t.untyped_storage()._cdata
        for net in (*networks.values(), p.objective)
        for t in (*net.parameters(), *net.buffers())
    }
    stack, seen, total = ["losses"], set(weights), Counter()

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        if storage._cdata not in seen:  # a tensor saved by two ops counts once
            seen.add(storage._cdata)
            total[stack[-1]] += storage.nbytes()
        return t

    with _tagging(networks, stack), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        xrec, posterior = p.ae(x)
        with p.toggled(p.opt_g):
            p.objective.generator_terms(
                x, xrec, posterior, beta=p.beta(0), capacity=p.beta.capacity(0),
                adv_factor=1.0 if gan_on else 0.0,
                logits_fake=p.disc(xrec) if gan_on else None,
                last_layer=p.ae.last_layer if gan_on else None,
            )
    return total
