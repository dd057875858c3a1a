"""Loss formulas against hand computations and independent implementations."""

import pytest
import torch

from vaegan.losses.adversarial import adaptive_weight, gan_loss
from vaegan.losses.objective import VAEGANObjective
from vaegan.losses.reconstruction import reduction
from vaegan.models.distributions import DiagonalGaussian
from vaegan.vocab import metric_names as metric

REAL = torch.tensor([2.0, 0.5, -1.0])
FAKE = torch.tensor([-2.0, 0.0, 1.5])


@pytest.mark.parametrize(
    "kind, g_expected, d_expected",
    [
        # hinge: G = -mean(fake); D = 0.5*(mean relu(1-real) + mean relu(1+fake))
        ("hinge", -(-2.0 + 0.0 + 1.5) / 3, 0.5 * ((0 + 0.5 + 2.0) / 3 + (0 + 1.0 + 2.5) / 3)),
        ("lsgan", ((-3.0) ** 2 + 1 + 0.25) / 3, 0.5 * ((1 + 0.25 + 4) / 3 + (4 + 0 + 2.25) / 3)),
    ],
)
def test_gan_losses_by_hand(kind, g_expected, d_expected):
    assert gan_loss(kind).generator(FAKE).item() == pytest.approx(g_expected)
    assert gan_loss(kind).discriminator(REAL, FAKE).item() == pytest.approx(d_expected)


def test_vanilla_is_binary_cross_entropy():
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    g = bce(FAKE, torch.ones(3))
    d = 0.5 * (bce(REAL, torch.ones(3)) + bce(FAKE, torch.zeros(3)))
    vanilla = gan_loss("vanilla")
    assert vanilla.generator(FAKE).item() == pytest.approx(g.item(), rel=1e-6)
    assert vanilla.discriminator(REAL, FAKE).item() == pytest.approx(d.item(), rel=1e-6)


def test_unknown_gan_loss_names_allowed_values():
    with pytest.raises(ValueError, match="loss.objective.adv_loss='wgan' must .*allowed: hinge"):
        VAEGANObjective(adv_loss="wgan")


def test_adaptive_weight_matches_independent_computation():
    torch.manual_seed(0)
    w = torch.randn(4, 3, requires_grad=True)
    h = torch.randn(8, 3) @ w.T
    rec = (h - 1).abs().mean()
    adv = -(h * 0.01).mean()
    weight, clamped = adaptive_weight(rec, adv, w, max_weight=1e4)
    g_rec = torch.autograd.grad(rec, w, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv, w, retain_graph=True)[0]
    expected = g_rec.norm() / (g_adv.norm() + 1e-4)
    assert weight.item() == pytest.approx(expected.item(), rel=1e-5)
    assert clamped.item() == 0.0 and not weight.requires_grad
    small, hit = adaptive_weight(rec, adv, w, max_weight=1.0)
    assert small.item() == 1.0 and hit.item() == 1.0


def test_adaptive_weight_zero_adv_grad_is_finite():
    w = torch.ones(2, requires_grad=True)
    rec = (w * 3).sum()
    adv = (w * 0).sum()
    weight, _ = adaptive_weight(rec, adv, w, max_weight=1e4)
    assert torch.isfinite(weight) and weight.item() == 1e4


def test_reduction_scales():
    e = torch.ones(2, 3, 4, 4)
    assert reduction("sum")(e).item() == 48.0
    assert reduction("mean")(e).item() == 1.0


def _posterior(b=2, c=4, hw=4, scale=1.0):
    torch.manual_seed(1)
    return DiagonalGaussian(torch.randn(b, c, hw, hw) * scale, torch.randn(b, c, hw, hw))


def test_generator_terms_without_gan():
    obj = VAEGANObjective(perceptual_weight=0.0, rec_reduction="mean")
    x, xrec = torch.zeros(2, 3, 8, 8), torch.full((2, 3, 8, 8), 0.5)
    post = _posterior()
    out = obj.generator_terms(x, xrec, post, beta=0.1)
    kl = post.kl().mean()
    assert out.logs["rec"].item() == pytest.approx(0.5)
    assert out.logs["kl"].item() == pytest.approx(kl.item())
    assert out.logs["kl_weighted"].item() == pytest.approx(0.1 * kl.item())
    assert out.loss.item() == pytest.approx(0.5 + 0.1 * kl.item(), rel=1e-6)
    assert out.logs["adv_weight"].item() == 0.0 and "adv" not in out.parts
    parts = out.logs["kl_mu"] + out.logs["kl_var"]
    assert parts.item() == pytest.approx(kl.item(), rel=1e-5)


def test_learned_logvar_is_trainable_and_in_loss():
    obj = VAEGANObjective(perceptual_weight=0.0, learn_logvar=True, logvar_init=1.0)
    x, xrec = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.2)
    out = obj.generator_terms(x, xrec, _posterior(b=1), beta=0.0)
    assert out.logs["nll"].item() == pytest.approx(0.2 / torch.e + 1.0, rel=1e-5)
    out.loss.backward()
    # d/ds (r e^-s + s) = 1 - r e^-s
    assert obj.logvar.grad.item() == pytest.approx(1 - 0.2 / torch.e, rel=1e-5)


def test_capacity_and_free_bits():
    post = _posterior(scale=0.01)
    x = xrec = torch.zeros(2, 3, 8, 8)
    kl = post.kl().mean().item()
    cap = VAEGANObjective(perceptual_weight=0.0).generator_terms(
        x, xrec, post, beta=2.0, capacity=kl + 5.0
    )
    assert cap.logs["kl_weighted"].item() == pytest.approx(10.0, rel=1e-5)
    fb = VAEGANObjective(perceptual_weight=0.0, free_bits=1e3).generator_terms(
        x, xrec, post, beta=1.0
    )
    assert fb.logs["kl_weighted"].item() == pytest.approx(4 * 1e3)


def test_gan_terms_use_adaptive_weight_times_factor():
    obj = VAEGANObjective(perceptual_weight=0.0, disc_weight=0.5)
    layer = torch.nn.Conv2d(3, 3, 1)
    x = torch.zeros(2, 3, 8, 8)
    xrec = layer(torch.randn(2, 3, 8, 8))
    logits = xrec.mean(dim=1, keepdim=True) * 3
    out = obj.generator_terms(
        x, xrec, _posterior(), beta=0.0, adv_factor=0.5, logits_fake=logits,
        last_layer=layer.weight,
    )
    ratio = out.logs["adaptive_weight"].item()
    assert ratio > 0
    assert out.logs["adv_weight"].item() == pytest.approx(ratio * 0.5 * 0.5, rel=1e-6)
    assert out.logs["g_adv"].item() == pytest.approx(-logits.mean().item(), rel=1e-6)


def test_perceptual_random_backbone_runs_and_penalises_difference():
    obj = VAEGANObjective(perceptual_weight=1.0, perceptual={"pretrained": False})
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    same = obj.generator_terms(x, x.clone(), _posterior(), beta=0.0).logs["perceptual"]
    diff = obj.generator_terms(x, -x, _posterior(), beta=0.0).logs["perceptual"]
    assert same.item() == pytest.approx(0.0, abs=1e-6) and diff.item() > 0


def test_missing_pretrained_backbone_says_where(tmp_path):
    from vaegan.losses.perceptual import Perceptual, PretrainedWeightsMissing

    with pytest.raises(PretrainedWeightsMissing, match="pretrained=false"):
        Perceptual(net="alex", pretrained=True, weights_path=str(tmp_path / "nope.pth"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(PretrainedWeightsMissing, match="could not be read"):
        Perceptual(net="alex", pretrained=True, weights_path=str(bad))


def test_pretrained_backbone_loads_from_file(tmp_path):
    import torchvision

    from vaegan.losses.perceptual import Perceptual

    torch.manual_seed(3)
    ref = torchvision.models.alexnet()
    path = tmp_path / "alexnet.pth"
    torch.save(ref.state_dict(), path)
    p = Perceptual(net="alex", pretrained=True, weights_path=str(path))
    first_conv = p.lpips.net.slice1[0].weight
    assert torch.equal(first_conv, ref.features[0].weight)


def test_random_backbone_distance_is_non_negative():
    from vaegan.losses.perceptual import Perceptual

    torch.manual_seed(0)
    p = Perceptual(net="alex", pretrained=False)
    x, y = torch.rand(8, 3, 32, 32) * 2 - 1, torch.rand(8, 3, 32, 32) * 2 - 1
    assert (p(x, y) >= 0).all()


@pytest.mark.parametrize(
    "kind, as_real, as_fake",  # D's cost of one logit z called real / called fake, by hand
    [
        ("hinge", lambda z: torch.relu(1 - z), lambda z: torch.relu(1 + z)),
        ("vanilla", lambda z: torch.nn.functional.softplus(-z),
         lambda z: torch.nn.functional.softplus(z)),
        ("lsgan", lambda z: (z - 1) ** 2, lambda z: z**2),
    ],
)
def test_decision_boundary_is_where_d_is_indifferent(kind, as_real, as_fake):
    """At the boundary a logit costs D the same called real or fake; above it, real is cheaper."""
    grid = torch.linspace(-3, 3, 601)
    cheaper_as_real = grid[as_real(grid) < as_fake(grid)]
    assert float(cheaper_as_real.min()) == pytest.approx(gan_loss(kind).boundary, abs=0.011)


def test_d_accuracy_uses_the_losss_boundary():
    """LSGAN's targets are 1 (real) and 0 (fake): logits 0.8 on reals and 0.3 on fakes are both
    on the right side of 0.5; thresholding at 0 (hinge's boundary) would call the fakes real."""
    objective = VAEGANObjective(adv_loss="lsgan", perceptual_weight=0.0)
    terms = objective.discriminator_terms(torch.full((4, 1), 0.8), torch.full((4, 1), 0.3))
    assert float(terms[metric.D_ACC]) == 1.0
    hinge = VAEGANObjective(adv_loss="hinge", perceptual_weight=0.0)
    assert float(hinge.discriminator_terms(torch.full((4, 1), 0.8),
                                           torch.full((4, 1), 0.3))[metric.D_ACC]) == 0.5
