"""One training batch, two designs, the same losses.

``vaegan_step`` is ``VAEGAN.training_step`` without Lightning: one autoencoder forward, the
generator step, then the discriminator on the *detached* reconstruction, and no discriminator
work before ``gan_start``.

``reference_step`` is latent-diffusion's ``optimizer_idx`` design (``AutoencoderKL.training_step``
+ ``LPIPSWithDiscriminator`` under Lightning 1.x automatic optimisation): an autoencoder forward
for each optimizer, and before ``disc_start`` it still runs the discriminator, the adaptive
weight's two gradient calls and the whole second optimizer pass, multiplied by a factor of 0.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from vaegan.bench.players import Players

Step = Callable[[Players, Tensor, int], None]


def _generator_pass(p: Players, x: Tensor, step: int, with_disc: bool) -> Tensor:
    """Forward, generator loss, backward, Adam step; returns the reconstruction."""
    xrec, posterior = p.ae(x)
    with p.toggled(p.opt_g):
        out = p.objective.generator_terms(
            x,
            xrec,
            posterior,
            beta=p.beta(step),
            capacity=p.beta.capacity(step),
            adv_factor=p.gan(step),
            logits_fake=p.disc(xrec) if with_disc else None,
            last_layer=p.ae.last_layer if with_disc else None,
        )
        out.loss.backward()
        p.step(p.opt_g, p.sched_g)
    return xrec


def _discriminator_pass(p: Players, x: Tensor, xrec: Tensor, factor: float) -> None:
    with p.toggled(p.opt_d):
        terms = p.objective.discriminator_terms(p.disc(x), p.disc(xrec.detach()))
        (factor * terms["d_loss"]).backward()
        p.step(p.opt_d, p.sched_d)


def vaegan_step(p: Players, x: Tensor, step: int) -> None:
    gan_on = p.gan.active(step)
    xrec = _generator_pass(p, x, step, with_disc=gan_on)
    if gan_on:
        _discriminator_pass(p, x, xrec, 1.0)


def reference_step(p: Players, x: Tensor, step: int) -> None:
    _generator_pass(p, x, step, with_disc=True)  # optimizer_idx 0; adv weight x factor 0
    with p.toggled(p.opt_d):  # optimizer_idx 1 runs the autoencoder again (no graph: frozen)
        xrec, _ = p.ae(x)
    _discriminator_pass(p, x, xrec, 1.0 if p.gan.active(step) else 0.0)


STEPS: dict[str, Step] = {"vaegan": vaegan_step, "reference": reference_step}
