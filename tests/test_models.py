"""Unit tests for vaegan.models: posterior math, autoencoder wiring, discriminator shapes."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vaegan.models import AutoencoderKL, PatchGANDiscriminator
from vaegan.models.autoencoder import (
    ACTIVATION_CHECKPOINTING,
    AttnBlock,
    Downsample,
    group_norm,
)
from vaegan.models.distributions import DiagonalGaussian, clamp_fraction, posterior_from_moments


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def random_posterior(shape: tuple[int, ...] = (5, 3, 4, 6)) -> DiagonalGaussian:
    return DiagonalGaussian(torch.randn(shape) * 2.0, torch.randn(shape) * 3.0)


# --- distributions -----------------------------------------------------------------------------


def test_kl_matches_torch_distributions() -> None:
    post = random_posterior()
    expected = kl_divergence(Normal(post.mean, post.std), Normal(0.0, 1.0)).sum(dim=(1, 2, 3))
    assert post.kl().shape == (5,)
    torch.testing.assert_close(post.kl(), expected, rtol=1e-5, atol=1e-4)


def test_kl_parts_are_mu_and_variance_terms() -> None:
    post = random_posterior()
    mu_part, var_part = post.kl_parts()
    torch.testing.assert_close(mu_part, 0.5 * post.mean.pow(2).sum(dim=(1, 2, 3)))
    torch.testing.assert_close(mu_part + var_part, post.kl())
    assert (var_part >= 0).all()


def test_kl_per_channel_and_per_element_agree_with_kl() -> None:
    post = random_posterior()
    per_channel = post.kl_per_channel()
    assert per_channel.shape == (3,)
    torch.testing.assert_close(per_channel.sum(), post.kl().mean())
    # Channel 1 alone made certain => only its share of the KL changes.
    post.mean[:, 1] = 0.0
    post.logvar[:, 1] = 0.0
    assert post.kl_per_channel()[1] == 0.0 and post.kl_per_channel()[0] > 0
    per_element = post.kl_per_element()
    assert per_element.shape == post.mean.shape
    torch.testing.assert_close(per_element.sum(dim=(1, 2, 3)), post.kl())


def test_deterministic_posterior_has_no_variance_or_kl() -> None:
    mean = torch.randn(2, 4, 3, 3)
    post = DiagonalGaussian(mean, torch.randn_like(mean), deterministic=True)
    assert torch.equal(post.sample(), mean)
    assert (post.var == 0).all() and (post.kl() == 0).all()


def test_sample_is_reparameterised_and_seedable() -> None:
    mean = torch.zeros(4, 2, 8, 8, requires_grad=True)
    logvar = torch.zeros(4, 2, 8, 8, requires_grad=True)
    post = DiagonalGaussian(mean, logvar)
    z1 = post.sample(torch.Generator().manual_seed(3))
    z2 = post.sample(torch.Generator().manual_seed(3))
    assert torch.equal(z1, z2) and z1.std() > 0.5
    d_mean, d_logvar = torch.autograd.grad(z1.pow(2).sum(), [mean, logvar])
    assert d_mean.abs().sum() > 0 and d_logvar.abs().sum() > 0
    shape = (64, 4, 8, 8)
    z = DiagonalGaussian(torch.full(shape, 3.0), torch.full(shape, math.log(4.0))).sample()
    assert z.mean().item() == pytest.approx(3.0, abs=0.05)
    assert z.std().item() == pytest.approx(2.0, rel=0.03)


def test_softplus_variance_is_floored_at_min_var() -> None:
    h = torch.full((2, 2, 3, 3), -100.0)
    h[:, :, 0, 0] = 5.0
    moments = torch.cat([torch.randn_like(h), h], dim=1)
    post = posterior_from_moments(moments, parameterization="softplus", min_var=1e-3)
    assert (post.var >= 1e-3 * (1 - 1e-5)).all()
    assert post.var.min() < 1.01e-3  # the floor is reached, not just respected
    clamped = posterior_from_moments(moments, parameterization="clamp")
    assert clamped.var.min() < 1e-3  # LDM's [-30, 20] clamp has no such floor


def test_clamp_bounds_and_none_parameterisation() -> None:
    h = torch.linspace(-50.0, 50.0, 2 * 2 * 5 * 5).reshape(2, 2, 5, 5)
    moments = torch.cat([torch.zeros_like(h), h], dim=1)
    clamped = posterior_from_moments(moments, logvar_min=-10.0, logvar_max=10.0)
    assert clamped.logvar.min() == -10.0 and clamped.logvar.max() == 10.0
    raw = posterior_from_moments(moments, parameterization="none")
    assert torch.equal(raw.logvar, h)
    expected = ((h <= -10.0) | (h >= 10.0)).float().mean()
    torch.testing.assert_close(clamp_fraction(clamped.logvar, -10.0, 10.0), expected)


def test_clamp_fraction_counts_exactly_the_elements_at_a_bound() -> None:
    logvar = torch.tensor([-10.0, -10.0 + 1e-7, -9.99, 0.0, 9.99, 10.0, 10.0, 3.0])
    assert clamp_fraction(logvar, -10.0, 10.0).item() == pytest.approx(4 / 8)
    assert clamp_fraction(logvar, -30.0, 20.0).item() == 0.0


def test_clamp_kills_the_gradient_at_the_bound() -> None:
    h = torch.tensor([-40.0, 1.0, 40.0]).reshape(1, 1, 1, 3).requires_grad_()
    post = posterior_from_moments(torch.cat([torch.zeros_like(h), h], dim=1), logvar_max=20.0)
    (grad,) = torch.autograd.grad(post.kl().sum(), h)
    assert grad.flatten()[0] == 0 and grad.flatten()[2] == 0 and grad.flatten()[1] != 0
    (grad_sp,) = torch.autograd.grad(
        posterior_from_moments(torch.cat([torch.zeros_like(h), h], 1), "softplus").kl().sum(), h
    )
    assert grad_sp.flatten()[2] != 0


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"parameterization": "tanh"}, "parameterization"),
        ({"logvar_min": 5.0, "logvar_max": 5.0}, "logvar_min"),
        ({"parameterization": "softplus", "min_var": 0.0}, "min_var"),
    ],
)
def test_bad_posterior_args_raise(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        posterior_from_moments(torch.zeros(1, 4, 2, 2), **kwargs)
    with pytest.raises(ValueError, match=key):
        AutoencoderKL(posterior=kwargs)


def test_unknown_parameterization_lists_the_allowed_values() -> None:
    with pytest.raises(ValueError, match="softplus"):
        posterior_from_moments(torch.zeros(1, 4, 2, 2), parameterization="exp")


# --- autoencoder -------------------------------------------------------------------------------

SMALL = {"ch": 16, "ch_mult": (1, 2, 2), "num_res_blocks": 1, "z_channels": 3, "embed_dim": 2,
         "attn_resolutions": (8,), "use_mid_attn": True, "resolution": 16, "in_channels": 1,
         "out_channels": 1, "posterior": {"parameterization": "softplus"}}


@pytest.mark.parametrize(
    ("kwargs", "image", "latent"),
    [
        ({}, (2, 3, 32, 32), (2, 4, 16, 16)),
        (SMALL, (2, 1, 16, 24), (2, 2, 4, 6)),
    ],
)
def test_autoencoder_round_trip_shapes(kwargs: dict, image: tuple, latent: tuple) -> None:
    model = AutoencoderKL(**kwargs)
    x = torch.randn(image)
    xrec, post = model(x)
    assert xrec.shape == x.shape
    assert post.mean.shape == latent and post.logvar.shape == latent
    assert model.latent_shape(image[2:]) == latent[1:]
    assert model.decode(post.mode()).shape == x.shape


def test_latent_shape_and_downsample_factor() -> None:
    model = AutoencoderKL(ch=8, ch_mult=(1, 1, 2, 2), embed_dim=3, resolution=64)
    assert model.downsample_factor == 8
    assert model.latent_shape(64) == (3, 8, 8)
    with pytest.raises(ValueError, match="image_size"):
        model.latent_shape(60)


def test_mode_forward_is_deterministic_sampling_is_not() -> None:
    model = AutoencoderKL().eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x, sample_posterior=False)[0], model(x, sample_posterior=False)[0])
    assert not torch.equal(model(x)[0], model(x)[0])


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"ch_mult": ()}, "ch_mult"),
        ({"z_channels": 0}, "z_channels"),
        ({"embed_dim": 0}, "embed_dim"),
        ({"ch_mult": (1, 2, 4), "resolution": 30}, "resolution"),
        ({"posterior": {"logvar_mn": -10.0}}, "logvar_mn"),
    ],
)
def test_bad_model_args_raise(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        AutoencoderKL(**kwargs)


def test_encoder_and_decoder_parameters_partition_the_model() -> None:
    model = AutoencoderKL(**SMALL)
    enc = {id(p) for p in model.encoder_parameters()}
    dec = {id(p) for p in model.decoder_parameters()}
    assert enc and dec and not enc & dec
    assert enc | dec == {id(p) for p in model.parameters()}
    assert id(model.quant_conv.weight) in enc and id(model.post_quant_conv.weight) in dec


def test_kl_gradient_stays_in_the_encoder() -> None:
    model = AutoencoderKL()
    _, post = model(torch.randn(2, 3, 32, 32))
    grads = torch.autograd.grad(
        post.kl().mean(), model.decoder_parameters() + model.encoder_parameters(),
        allow_unused=True,
    )
    n_dec = len(model.decoder_parameters())
    assert all(g is None for g in grads[:n_dec])
    assert any(g is not None and g.abs().sum() > 0 for g in grads[n_dec:])


def test_adversarial_gradient_reaches_last_layer() -> None:
    model = AutoencoderKL()
    disc = PatchGANDiscriminator(ndf=8, n_layers=2)
    assert model.last_layer is model.decoder.conv_out.weight
    assert model.last_layer.shape == (3, 32, 3, 3)
    xrec, _ = model(torch.randn(2, 3, 32, 32))
    g_adv = -disc(xrec).mean()
    (grad,) = torch.autograd.grad(g_adv, model.last_layer)
    assert grad.abs().sum() > 0


def test_attention_sits_at_the_requested_resolutions() -> None:
    def n_attn(module: torch.nn.Module) -> int:
        return sum(isinstance(m, AttnBlock) for m in module.modules())

    model = AutoencoderKL(**SMALL)  # attention at 8 px: 1 encoder / 2 decoder blocks, + mid
    assert (n_attn(model.encoder), n_attn(model.decoder)) == (2, 3)
    plain = AutoencoderKL(**{**SMALL, "attn_resolutions": (), "use_mid_attn": False})
    assert n_attn(plain) == 0


def test_downsample_pads_right_and_bottom_only() -> None:
    down = Downsample(1)
    with torch.no_grad():
        down.conv.weight.zero_()
        down.conv.weight[0, 0, 0, 0] = 1.0  # top-left tap only
        down.conv.bias.zero_()
    x = torch.randn(1, 1, 6, 6)
    torch.testing.assert_close(down(x), x[..., ::2, ::2])


def test_group_norm_falls_back_to_a_divisor_below_32_channels() -> None:
    assert group_norm(64).num_groups == 32
    assert group_norm(16).num_groups == 16
    assert group_norm(48).num_groups == 24
    assert group_norm(3).num_groups == 3


def test_kl_f8_config_has_sd_parameter_count() -> None:
    model = AutoencoderKL(ch=128, ch_mult=(1, 2, 4, 4), num_res_blocks=2, use_mid_attn=True,
                          resolution=256)
    assert sum(p.numel() for p in model.parameters()) == 83_653_863
    assert model.latent_shape(256) == (4, 32, 32)


# --- blocks and discriminator ------------------------------------------------------------------


def test_attention_block_is_softmax_attention_over_positions() -> None:
    block = AttnBlock(8)
    x = torch.randn(2, 8, 5, 3)
    out = block(x)
    assert out.shape == x.shape
    q, k, v = block.qkv(block.norm(x)).flatten(2).chunk(3, dim=1)  # [B, C, HW] each
    attn = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(8), dim=-1)  # [B, HW, HW]
    expected = x + block.proj_out((v @ attn.transpose(1, 2)).reshape(x.shape))
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("n_layers", "side"), [(2, 6), (3, 2)])
@pytest.mark.parametrize("norm", ["batch", "instance", "group", "none"])
def test_discriminator_patch_shape(n_layers: int, side: int, norm: str) -> None:
    disc = PatchGANDiscriminator(in_channels=3, ndf=16, n_layers=n_layers, norm=norm)
    assert disc(torch.randn(2, 3, 32, 32)).shape == (2, 1, side, side)


def test_discriminator_init_and_bias_policy() -> None:
    disc = PatchGANDiscriminator(ndf=32, norm="batch")
    convs = [m for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].bias is not None and convs[1].bias is None and convs[-1].bias is not None
    assert all(b.abs().sum() == 0 for b in (convs[0].bias, convs[-1].bias))
    assert convs[2].weight.std().item() == pytest.approx(0.02, rel=0.1)
    norms = [m for m in disc.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert abs(norms[0].weight.mean().item() - 1.0) < 0.01 and norms[0].weight.std() > 0


def test_bad_discriminator_norm_raises() -> None:
    with pytest.raises(ValueError, match="norm.*batch"):
        PatchGANDiscriminator(norm="layer")


def _saved_activation_bytes(model: AutoencoderKL, x: torch.Tensor) -> int:
    """Bytes the forward keeps for backward (each storage once, parameters left out)."""
    seen = {p.untyped_storage()._cdata for p in model.parameters()}
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        if t.untyped_storage()._cdata not in seen:
            seen.add(t.untyped_storage()._cdata)
            total += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return total


def test_activation_checkpointing_saves_memory_and_keeps_gradients() -> None:
    kwargs = {**SMALL, "dropout": 0.2}  # dropout: the recompute must replay the same masks
    x = torch.randn(2, 1, 16, 16)
    saved, grads = {}, {}
    for mode in ACTIVATION_CHECKPOINTING:
        torch.manual_seed(0)
        model = AutoencoderKL(**kwargs, activation_checkpointing=mode)
        saved[mode] = _saved_activation_bytes(model, x)
        torch.manual_seed(1)
        xrec, post = model(x)
        rec = (xrec - x).abs().sum()
        # LDM's adaptive weight: a gradient at the last layer, graph kept, then the backward
        (g_last,) = torch.autograd.grad(rec, model.last_layer, retain_graph=True)
        (rec + post.kl().sum()).backward()
        grads[mode] = torch.cat([g_last.flatten(), *(p.grad.flatten() for p in model.parameters())])
    assert saved["blocks"] < saved["norm_act"] < saved["none"], saved
    for mode in ("norm_act", "blocks"):
        torch.testing.assert_close(grads[mode], grads["none"], rtol=1e-5, atol=1e-5)


def test_activation_checkpointing_keeps_weights_and_inference() -> None:
    torch.manual_seed(0)
    plain = AutoencoderKL(**SMALL).eval()
    blocks = AutoencoderKL(**SMALL, activation_checkpointing="norm_act").eval()
    assert plain.state_dict().keys() == blocks.state_dict().keys()
    blocks.load_state_dict(plain.state_dict())
    blocks.set_activation_checkpointing("blocks")
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        expected = plain(x, sample_posterior=False)[0]
        assert torch.equal(blocks(x, sample_posterior=False)[0], expected)
    with pytest.raises(ValueError, match="activation_checkpointing"):
        plain.set_activation_checkpointing("everything")
