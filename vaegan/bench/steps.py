"""Row 1's baseline: ``VAEGAN.training_step``'s work as a plain PyTorch step, no Lightning.

Every vaegan figure of the bench is ``VAEGAN.training_step`` under ``Trainer.fit``
(``vaegan.bench.fit``); this step exists only so that the framework-overhead row has a plain
loop to divide by. It does what the module does (one autoencoder forward, the generator step,
the discriminator on the detached reconstruction, nothing of the discriminator before
``gan_start``), and ``tests/test_bench.py`` holds it to that: the same seeds give the same
weights as ``Trainer.fit`` after a few steps.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from vaegan.bench.players import Players

Step = Callable[[Players, Tensor, int], None]


def plain_step(p: Players, x: Tensor, step: int) -> None:
    gan_on = p.gan.active(step)
    xrec, posterior = p.ae(x)
    with p.toggled(p.opt_g):
        out = p.objective.generator_terms(
            x, xrec, posterior,
            beta=p.beta(step),
            capacity=p.beta.capacity(step),
            adv_factor=p.gan(step),
            logits_fake=p.disc(xrec) if gan_on else None,
            last_layer=p.ae.last_layer if gan_on else None,
        )
        out.loss.backward()
        p.step(p.opt_g, p.sched_g)
    if gan_on:
        with p.toggled(p.opt_d):
            terms = p.objective.discriminator_terms(p.disc(x), p.disc(xrec.detach()))
            terms["d_loss"].backward()
            p.step(p.opt_d, p.sched_d)
