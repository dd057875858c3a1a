"""The GPU speed options change speed, not results: the same weights and batch give the same
loss and gradients with SDPA or LDM's softmax attention and with channels_last (fp32
rounding), and with bf16 autocast within bf16's tolerance (the KL stays fp32)."""

from __future__ import annotations

import copy

import pytest
import torch

from vaegan.bench.config import TINY, bench_config
from vaegan.bench.fit import synthetic_batch
from vaegan.bench.model_changes import CHANGES
from vaegan.train import build_module


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """A tiny module with mid-block attention (the flag must have something to swap), GAN on."""
    cfg = bench_config(tmp_path_factory.mktemp("flags"), [
        *TINY, "model.use_mid_attn=true", "gan_start=0", "trainer=cpu",
    ])
    torch.manual_seed(0)
    return build_module(cfg).train(), synthetic_batch(cfg, torch.device("cpu"))


def _loss_and_grads(module, x: torch.Tensor, autocast: bool = False):
    """The generator loss (deterministic latent, adaptive weight included) and its gradients."""
    module.zero_grad(set_to_none=True)
    ae = module.autoencoder
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        xrec, posterior = ae(x, sample_posterior=False)
        out = module.objective.generator_terms(
            x, xrec, posterior, beta=1e-6, adv_factor=1.0,
            logits_fake=module.discriminator(xrec), last_layer=ae.last_layer,
        )
    out.loss.backward()
    return out, [p.grad.float() for p in ae.parameters() if p.grad is not None]


@pytest.mark.parametrize("change", ["plain_attention", "channels_last"])
def test_layout_and_attention_flags_keep_the_loss(built, change: str) -> None:
    module, x = built
    want, want_grads = _loss_and_grads(copy.deepcopy(module), x)
    changed = copy.deepcopy(module)
    CHANGES[change](changed)
    if change == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    got, got_grads = _loss_and_grads(changed, x)
    torch.testing.assert_close(got.loss, want.loss, rtol=1e-5, atol=1e-5)
    got_all, want_all = torch.cat([g.flatten() for g in got_grads]), torch.cat(
        [w.flatten() for w in want_grads])
    relative = ((got_all - want_all).norm() / want_all.norm()).item()
    assert relative < 1e-4, f"{change}: gradients differ by {relative:.1e} of their norm"


def test_bf16_autocast_keeps_the_loss_within_bf16_tolerance(built) -> None:
    module, x = built
    want, _ = _loss_and_grads(copy.deepcopy(module), x)
    got, _ = _loss_and_grads(copy.deepcopy(module), x, autocast=True)
    assert got.logs["kl"].dtype == torch.float32  # the fp32 island (vaegan.losses.precision)
    for term in ("loss", "rec", "kl", "perceptual"):
        torch.testing.assert_close(got.logs[term].float(), want.logs[term], rtol=3e-2, atol=1e-4,
                                   msg=f"{term} moved beyond bf16 tolerance")


def test_fused_adam_takes_the_same_steps(built) -> None:
    """``optim.fused=true`` is a kernel choice: an Adam step lands on the same weights (one
    step: over several, Adam's normalisation amplifies rounding wherever a gradient is ~0)."""
    import dataclasses

    module, x = built
    weights = []
    for fused in (False, True):
        m = copy.deepcopy(module)
        m.optim = dataclasses.replace(m.optim, fused=fused)
        (opt_g, _), _ = m.configure_optimizers()
        assert opt_g.defaults["fused"] is fused
        _loss_and_grads(m, x)
        opt_g.step()
        weights.append(torch.cat([p.detach().flatten() for p in m.autoencoder.parameters()]))
    assert not torch.equal(weights[0], torch.cat(
        [p.detach().flatten() for p in module.autoencoder.parameters()])), "nothing was trained"
    torch.testing.assert_close(weights[1], weights[0], rtol=1e-5, atol=1e-6)
