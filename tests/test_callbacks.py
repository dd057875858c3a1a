"""Diagnostics callbacks: what they log, when, that the numbers are right, and that they leave
training bit-for-bit unchanged."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.helpers.metrics import column, read_metrics
from tests.helpers.run import compose_config, train_tiny
from vaegan.callbacks.discriminator import DiscriminatorStats
from vaegan.callbacks.gradients import GradientAttribution, term_gradient_norms
from vaegan.callbacks.latent import LatentStats, posterior_stats, unit_activity
from vaegan.callbacks.progress import GenStepProgressBar
from vaegan.core.hooks import GeneratorOutput
from vaegan.loggers import once
from vaegan.models.autoencoder import AutoencoderKL
from vaegan.models.distributions import DiagonalGaussian
from vaegan.train import build_callbacks
from vaegan.vocab import metric_names as metric

LATENT = [metric.LATENT_MU_MEAN, metric.LATENT_MU_STD, metric.LATENT_LOGVAR_MEAN,
          metric.LATENT_LOGVAR_MIN, metric.LATENT_LOGVAR_MAX, metric.LATENT_VAR_MEAN,
          metric.LATENT_CLAMP_FRAC, metric.LATENT_TOTAL_DIMS]
TERMS = [metric.REC, metric.PERCEPTUAL, metric.KL, metric.ADV]
GRAD = [metric.ENCODER, metric.DECODER, metric.POSTERIOR_MU, metric.POSTERIOR_LOGVAR,
        metric.ENCODER_SHARE, metric.SHARE, *metric.KL_PUSHES]


# recon ``sum`` and a tiny adaptive clamp, so the clamp counter has something to count
TRAINING = ("loss.objective.rec_reduction=sum", "loss.objective.adaptive_max=1e-3")


@pytest.fixture(scope="module")
def diag_run(tmp_path_factory) -> tuple[Path, list[dict[str, str]], list[str]]:
    """One tiny run with every diagnostic on (debug=tiny intervals), GAN from step 6."""
    run_dir = tmp_path_factory.mktemp("diag")
    once._warned.discard("adaptive-clamp")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_tiny(run_dir, "logger=tensorboard", *TRAINING)
    return run_dir, read_metrics(run_dir), [str(w.message) for w in caught]


def test_latent_stats_at_their_interval_and_kl_per_channel_adds_up(diag_run):
    _, rows, _ = diag_run
    for name in LATENT + [metric.latent_kl_dim(c) for c in range(4)]:
        assert sorted(column(rows, name)) == [0, 2, 4, 6, 8, 10], name
    assert set(column(rows, metric.LATENT_TOTAL_DIMS).values()) == {4 * 16 * 16}
    kl = column(rows, metric.TRAIN_KL)
    for step in (0, 4, 10):  # the same posterior: Σ_c KL_c equals the logged train/kl
        per_channel = sum(column(rows, metric.latent_kl_dim(c))[step] for c in range(4))
        assert per_channel == pytest.approx(kl[step], rel=1e-4)
    units = column(rows, metric.LATENT_ACTIVE_UNITS)
    assert sorted(units) == [0, 6, 12] and all(0 <= u <= 1024 for u in units.values())
    assert sorted(column(rows, metric.LATENT_COLLAPSED_DIMS)) == [0, 6, 12]


def test_gradient_norms_per_term_and_adversarial_only_after_gan_start(diag_run):
    _, rows, _ = diag_run
    for term in (metric.REC, metric.PERCEPTUAL, metric.KL):
        for what in GRAD:
            assert sorted(column(rows, metric.grad(term, what))) == [0, 3, 6, 9], (term, what)
    assert sorted(column(rows, metric.grad(metric.ADV, metric.ENCODER))) == [6, 9]
    assert sorted(column(rows, metric.grad(metric.ADV, metric.KL_PUSH))) == [6, 9]
    # plain β·KL only ever pulls KL down; the parts of every push add up to it
    assert all(v <= 0 for v in column(rows, metric.grad(metric.KL, metric.KL_PUSH_SGD)).values())
    assert all(v <= 0 for v in column(rows, metric.grad(metric.KL, metric.KL_PUSH)).values())
    for term in TERMS:
        push, mu, var = (column(rows, metric.grad(term, name))
                         for name in (metric.KL_PUSH, metric.KL_PUSH_MU, metric.KL_PUSH_VAR))
        for step, value in push.items():
            assert mu[step] + var[step] == pytest.approx(value, rel=1e-4, abs=1e-9)
    kl_on_decoder = column(rows, metric.grad(metric.KL, metric.DECODER))
    assert all(v == 0 for v in kl_on_decoder.values())  # KL skips the decoder
    for step in (6, 9):
        shares = [column(rows, metric.grad(t, metric.SHARE))[step] for t in TERMS]
        assert sum(shares) == pytest.approx(1.0, abs=1e-5)


def test_discriminator_counts_clamp_hits_and_splits_accuracy(diag_run):
    _, rows, messages = diag_run
    # the clamp is hit on every GAN step (6, 7, ...); logged every 2 steps, counting this one
    assert column(rows, metric.TRAIN_ADAPTIVE_CLAMP_HITS) == {6: 1.0, 8: 3.0, 10: 5.0}
    d_acc = column(rows, metric.TRAIN_D_ACC)
    real, fake = column(rows, metric.TRAIN_D_ACC_REAL), column(rows, metric.TRAIN_D_ACC_FAKE)
    for step in (6, 8, 10):  # the same logits D's own step saw: their mean is train/d_acc
        assert (real[step] + fake[step]) / 2 == pytest.approx(d_acc[step], abs=1e-6)
    clamp = [m for m in messages if "adaptive_max" in m]
    assert len(clamp) == 1 and "rec_reduction=sum" in clamp[0]


def test_histograms_and_images_reach_tensorboard(diag_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _, _ = diag_run
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"histograms": 0})
    events.Reload()
    tags = events.Tags()
    assert {metric.LATENT_MU, metric.LATENT_LOGVAR} <= set(tags["histograms"])
    assert [e.step for e in events.Histograms(metric.LATENT_MU)] == [0, 6]
    assert "images/inputs_recs_prior" in tags["images"]


def test_diagnostics_leave_training_unchanged(diag_run, tmp_path):
    """Weights and buffers after 12 steps (6 with the GAN) are identical with every diagnostic
    firing several times and with none at all."""
    on, _, _ = diag_run
    off = tmp_path / "off"
    train_tiny(off, "callbacks=none", *TRAINING)
    assert not any(k.startswith((metric.GRAD, metric.LATENT)) for k in read_metrics(off)[0])
    weights = [torch.load(d / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
               for d in (on, off)]
    assert weights[0].keys() == weights[1].keys()
    different = [k for k in weights[0] if not torch.equal(weights[0][k], weights[1][k])]
    assert not different, different[:5]


def test_each_callback_can_be_switched_off(tmp_path):
    def kinds(*overrides: str) -> set[type]:
        return {type(c) for c in build_callbacks(compose_config(tmp_path, *overrides), tmp_path)}

    assert {LatentStats, GradientAttribution, DiscriminatorStats} <= kinds()
    off = kinds("~callbacks.gradients", "callbacks.latent=null")
    assert GradientAttribution not in off and LatentStats not in off
    assert DiscriminatorStats in off
    assert not {LatentStats, GradientAttribution, DiscriminatorStats} & kinds("callbacks=none")


def test_posterior_stats_clamp_fraction_only_for_the_clamp_parameterisation():
    logvar = torch.tensor([-10.0, -10.0, 0.0, 10.0]).reshape(1, 4, 1, 1)
    posterior = DiagonalGaussian(torch.zeros_like(logvar), logvar)
    bounds = {"logvar_min": -10.0, "logvar_max": 10.0}
    clamp = posterior_stats(posterior, {"parameterization": "clamp", **bounds})
    assert float(clamp[metric.LATENT_CLAMP_FRAC]) == pytest.approx(0.75)
    assert float(clamp[metric.LATENT_LOGVAR_MIN]) == -10.0
    assert float(clamp[metric.LATENT_LOGVAR_MAX]) == 10
    soft = posterior_stats(posterior, {"parameterization": "softplus", **bounds})
    assert float(soft[metric.LATENT_CLAMP_FRAC]) == 0.0
    kl_dims = [float(clamp[metric.latent_kl_dim(c)]) for c in range(4)]
    assert sum(kl_dims) == pytest.approx(float(posterior.kl()[0]))


def test_active_units_and_collapsed_dims_known_answer():
    """Channel 0 carries the input (active, not collapsed), channel 1 is the prior (collapsed)."""

    class Stub(torch.nn.Module):
        def encode(self, x: torch.Tensor) -> DiagonalGaussian:
            mean = torch.cat([x[:, :1], torch.zeros_like(x[:, :1])], dim=1)
            return DiagonalGaussian(mean, torch.zeros_like(mean))

    images = torch.randn(64, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    out = unit_activity(Stub(), images, batch_size=16, threshold=0.01)
    assert float(out[metric.LATENT_ACTIVE_UNITS]) == 4
    assert float(out[metric.LATENT_COLLAPSED_DIMS]) == 4


def test_term_gradient_norms_match_a_plain_backward():
    torch.manual_seed(0)
    ae = AutoencoderKL(ch=8, ch_mult=(1, 2), resolution=8)
    x = torch.randn(2, 3, 8, 8)
    xrec, posterior = ae(x)
    parts = {metric.REC: (x - xrec).abs().mean(), metric.KL: 1e-2 * posterior.kl().mean()}
    norms = term_gradient_norms(ae, posterior, parts)
    for term, part in parts.items():
        ae.zero_grad()
        part.backward(retain_graph=True)
        enc = torch.stack([p.grad.norm() for p in ae.encoder_parameters()]).norm()
        on_encoder = norms[metric.grad(term, metric.ENCODER)]
        assert float(on_encoder) == pytest.approx(float(enc), rel=1e-5)
    assert float(norms[metric.grad(metric.KL, metric.DECODER)]) == 0.0
    assert float(norms[metric.grad(metric.KL, metric.ENCODER_SHARE)]) == pytest.approx(1.0)
    shares = [norms[metric.grad(term, metric.SHARE)] for term in (metric.REC, metric.KL)]
    assert float(sum(shares)) == pytest.approx(1.0)


def test_hooks_do_nothing_between_intervals():
    """Off-interval steps touch neither the posterior nor the loss terms (no work, no sync)."""
    module = SimpleNamespace(gen_step=7)
    nothing = GeneratorOutput(None, None, None, None)
    LatentStats(every_n_steps=10, histograms_every=10).on_generator_output(None, module, nothing)
    GradientAttribution(every_n_steps=10).on_generator_output(None, module, nothing)
    stats = DiscriminatorStats(every_n_steps=10)
    terms = SimpleNamespace(logs={metric.ADAPTIVE_CLAMPED: torch.tensor(1.0)},
                            parts={metric.ADV: None})
    stats.on_generator_output(None, module, GeneratorOutput(None, None, None, terms))
    assert float(stats.clamp_hits) == 1.0  # counted on the device, logged later


def test_progress_bar_counts_generator_steps_toward_steps(tmp_path, monkeypatch):
    """The training bar's total is ``steps`` and it ends at ``steps``; a resumed run's bar
    starts at the checkpoint's generator step (its rate counts only this process's steps)."""
    import vaegan.train

    built: list = []

    def keep_callbacks(cfg, run_dir):
        built[:] = build_callbacks(cfg, run_dir)
        return built

    monkeypatch.setattr(vaegan.train, "build_callbacks", keep_callbacks)
    quick = ("gan_start=2", "~callbacks.images", "~callbacks.latent", "~callbacks.gradients",
             "~callbacks.discriminator",  # debug=tiny switches the bar off: the shipped node
             "callbacks.progress={_target_:vaegan.callbacks.progress.progress_bar,refresh_rate:20}")
    bars = []
    for steps, resume in ((4, ()), (7, ("ckpt_path=last",))):
        train_tiny(tmp_path, *quick, f"steps={steps}", *resume)
        bar = next(c for c in built if isinstance(c, GenStepProgressBar)).train_progress_bar
        bars.append((bar.initial, bar.n, bar.total, bar.desc))
    assert bars == [(0, 4, 4, "train"), (4, 7, 7, "train")]  # not "Epoch 0", batches of it
    off = build_callbacks(compose_config(tmp_path, "++trainer.enable_progress_bar=false",
                                         debug=None), tmp_path)
    assert not any(isinstance(c, GenStepProgressBar) for c in off)  # Lightning would refuse it
