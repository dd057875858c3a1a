"""The KL push (vaegan/callbacks/kl_push.py): each term's push is the first-order change of KL
along that term's (Adam-preconditioned) encoder step, checked against finite differences of KL
on the real objective's terms, on the same batch and the same posterior noise."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.helpers.run import compose_config
from vaegan.callbacks.gradients import (
    encoder_parameters,
    kl_part_gradients,
    term_gradient_norms,
)
from vaegan.callbacks.kl_push import adam_preconditioner, kl_push
from vaegan.train import build_module
from vaegan.vocab import metric_names as metric

TERMS = metric.GRAD_TERMS


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The tiny config's module in float64 (finite differences need the precision), one batch,
    the generator terms with the GAN on, and the encoder gradients of every term."""
    cfg = compose_config(tmp_path_factory.mktemp("push"), "loss.objective.rec_reduction=sum",
                         "beta=1e-3")
    module = build_module(cfg).double()
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32, dtype=torch.float64) * 2 - 1
    xrec, posterior = module.autoencoder(x)
    terms = module.objective.generator_terms(
        x, xrec, posterior, beta=1e-3, adv_factor=1.0,
        logits_fake=module.discriminator(xrec), last_layer=module.autoencoder.last_layer)
    encoder = encoder_parameters(module.autoencoder)
    grads = {term: torch.autograd.grad(part, encoder, retain_graph=True, allow_unused=True)
             for term, part in {**terms.parts, "loss": terms.loss}.items()}
    parts = kl_part_gradients(encoder, terms.kl_mu, terms.kl_var)
    return module, x, terms, encoder, grads, parts


def batch_kl(module, x: torch.Tensor) -> tuple[float, float, float]:
    """(KL, μ² part, variance part) of the batch, analytic: no posterior noise involved."""
    posterior = module.autoencoder.encode(x)
    mu, var = posterior.kl_parts()
    return float(posterior.kl().mean()), float(mu.mean()), float(var.mean())


def moved(module, encoder, direction, eps: float):
    """A copy of the module with the encoder moved by −eps · direction."""
    other = copy.deepcopy(module)
    index = {id(p): i for i, p in enumerate(encoder)}
    with torch.no_grad():
        for p, q in zip(module.autoencoder.parameters(), other.autoencoder.parameters(),
                        strict=True):
            i = index.get(id(p))
            if i is not None and direction[i] is not None:
                q -= eps * direction[i]
    return other


def finite_difference(module, x, encoder, direction) -> tuple[float, ...]:
    """Central differences of (KL, μ² part, variance part) along −direction, per unit step."""
    scale = torch.stack([d.norm() for d in direction if d is not None]).norm()
    eps = 1e-4 / float(scale)
    plus = batch_kl(moved(module, encoder, direction, eps), x)
    minus = batch_kl(moved(module, encoder, direction, -eps), x)
    return tuple((p - m) / (2 * eps) for p, m in zip(plus, minus, strict=True))


@pytest.mark.parametrize("term", TERMS)
def test_sgd_push_is_the_finite_difference_of_kl(setup, term):
    module, x, _, encoder, grads, parts = setup
    push = kl_push(parts, grads[term], [None] * len(encoder))
    kl, mu, var = finite_difference(module, x, encoder, grads[term])
    assert float(push["kl_push_sgd"]) == pytest.approx(kl, rel=1e-4, abs=1e-9)
    assert float(push["kl_push_mu"]) == pytest.approx(mu, rel=1e-4, abs=1e-9)
    assert float(push["kl_push_var"]) == pytest.approx(var, rel=1e-4, abs=1e-9)


def test_adam_push_is_the_finite_difference_along_the_preconditioned_step(setup):
    """With Adam's state after two steps, kl_push is KL's change along P·∇L_T, P = 1/(√v̂ + ε)
    with v̂ = v / (1 − β₂²); not along ∇L_T."""
    module, x, _, encoder, grads, parts = setup
    adam = torch.optim.Adam(encoder, lr=1e-3, betas=(0.5, 0.9), eps=1e-8)
    torch.manual_seed(1)
    for p in encoder:  # Adam's state as two steps leave it, without moving the weights
        adam.state[p] = {"step": torch.tensor(2.0), "exp_avg": torch.zeros_like(p),
                         "exp_avg_sq": torch.rand_like(p) * 1e-4}
    preconditioner = adam_preconditioner(adam, encoder)
    for p, scale in zip(encoder, preconditioner, strict=True):
        v_hat = adam.state[p]["exp_avg_sq"] / (1 - 0.9**2)
        torch.testing.assert_close(scale, 1 / (v_hat.sqrt() + 1e-8))
    step = [None if g is None else scale * g
            for scale, g in zip(preconditioner, grads["adv"], strict=True)]
    push = kl_push(parts, grads["adv"], preconditioner)
    kl, mu, var = finite_difference(module, x, encoder, step)
    assert float(push["kl_push"]) == pytest.approx(kl, rel=1e-4, abs=1e-9)
    assert float(push["kl_push_mu"]) == pytest.approx(mu, rel=1e-4, abs=1e-9)
    assert float(push["kl_push"]) != pytest.approx(float(push["kl_push_sgd"]), rel=1e-2)


def test_preconditioner_is_the_identity_before_the_first_step(setup):
    _, _, _, encoder, _, _ = setup
    adam = torch.optim.Adam(encoder, lr=1e-3)
    assert adam_preconditioner(adam, encoder) == [None] * len(encoder)
    assert adam_preconditioner(None, encoder) == [None] * len(encoder)


def test_plain_kl_term_never_pushes_kl_up_and_the_terms_add_up(setup):
    _, _, terms, encoder, grads, parts = setup
    precondition = [torch.rand_like(p) + 0.1 for p in encoder]  # any positive diagonal
    pushes = {term: kl_push(parts, grads[term], precondition) for term in [*TERMS, "loss"]}
    assert float(pushes["kl"]["kl_push_sgd"]) < 0 and float(pushes["kl"]["kl_push"]) < 0
    for name in ("kl_push", "kl_push_mu", "kl_push_var", "kl_push_sgd"):
        total = sum(float(pushes[term][name]) for term in TERMS)
        assert total == pytest.approx(float(pushes["loss"][name]), rel=1e-6), name
    for term in TERMS:
        push = pushes[term]
        assert float(push["kl_push_mu"] + push["kl_push_var"]) == pytest.approx(
            float(push["kl_push"]), rel=1e-9)


def test_a_capacity_objective_below_its_target_pushes_kl_up(setup):
    """β·|KL − C| with KL < C pulls KL towards C: its push is positive, by design."""
    module, x, _, encoder, _, parts = setup
    posterior = module.autoencoder.encode(x)
    kl = posterior.kl().mean()
    capacity = float(kl) + 100.0
    objective = module.objective._kl_objective(posterior, kl, beta=1e-3, capacity=capacity)
    grad = torch.autograd.grad(objective, encoder, allow_unused=True)
    assert float(kl_push(parts, grad, [None] * len(encoder))["kl_push_sgd"]) > 0


def test_term_gradient_norms_logs_the_push_of_every_term(setup):
    module, x, terms, encoder, _, parts = setup
    xrec, posterior = module.autoencoder(x)
    fresh = module.objective.generator_terms(
        x, xrec, posterior, beta=1e-3, adv_factor=1.0,
        logits_fake=module.discriminator(xrec), last_layer=module.autoencoder.last_layer)
    logged = term_gradient_norms(module.autoencoder, posterior, fresh.parts,
                                 kl_part_gradients(encoder, fresh.kl_mu, fresh.kl_var))
    for term in TERMS:
        for name in metric.KL_PUSHES:
            assert metric.grad(term, name) in logged
    without_kl_parts = term_gradient_norms(module.autoencoder, posterior, fresh.parts)
    assert metric.grad(metric.REC, metric.KL_PUSH) not in without_kl_parts
