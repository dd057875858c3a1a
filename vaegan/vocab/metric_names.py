"""Every logged metric name, defined once: CSV, TensorBoard, wandb, the analysis and the
notebook all read these (the public list is the metrics table in docs/INTERFACES.md).

Training terms are ``train/<term>`` where ``<term>`` is the objective's own name for it, so
the module logs ``train(name)`` for each term it computed and nothing here can drift from it.
"""

from __future__ import annotations

TRAIN, VAL, LATENT, GRAD = "train/", "val/", "latent/", "grad/"
GEN_STEP = "gen_step"  # the generator step a row's values were computed at (the x axis)


def train(term: str) -> str:
    return TRAIN + term


def grad(term: str, part: str) -> str:
    """Gradient norm (or share) of one loss term on one part of the autoencoder."""
    return f"{GRAD}{term}/{part}"


# The objective's own names for its terms (GeneratorTerms.logs, the discriminator's terms, the
# guard's fixes); each is logged as train(<name>).
LOSS, REC, REC_PER_PIXEL, NLL, LOGVAR = "loss", "rec", "rec_per_pixel", "nll", "logvar"
PERCEPTUAL, PERCEPTUAL_WEIGHTED = "perceptual", "perceptual_weighted"
KL, KL_MU, KL_VAR, KL_WEIGHTED = "kl", "kl_mu", "kl_var", "kl_weighted"
BETA, CAPACITY = "beta", "capacity"
G_ADV, G_ADV_WEIGHTED, ADV_WEIGHT = "g_adv", "g_adv_weighted", "adv_weight"
ADAPTIVE_WEIGHT, ADAPTIVE_CLAMPED = "adaptive_weight", "adaptive_clamped"
D_LOSS, D_REAL, D_FAKE, D_ACC = "d_loss", "d_real", "d_fake", "d_acc"
ADV = "adv"  # λ·g_adv as it enters the loss: the name of the adversarial part in grad/<term>/

# the parts grad(term, part) is logged for (callbacks/gradients.py, callbacks/kl_push.py)
ENCODER, DECODER, SHARE, ENCODER_SHARE = "encoder", "decoder", "share", "encoder_share"
POSTERIOR_MU, POSTERIOR_LOGVAR = "mu", "logvar"  # the gradient on the posterior's μ, log σ²
KL_PUSH, KL_PUSH_MU, KL_PUSH_VAR = "kl_push", "kl_push_mu", "kl_push_var"
KL_PUSH_SGD = "kl_push_sgd"
KL_PUSHES = (KL_PUSH, KL_PUSH_MU, KL_PUSH_VAR, KL_PUSH_SGD)
GRAD_PARTS = (ENCODER, DECODER, POSTERIOR_MU, POSTERIOR_LOGVAR, ENCODER_SHARE, SHARE, *KL_PUSHES)
GRAD_TERMS = (REC, PERCEPTUAL, KL, ADV)  # the loss terms, as GeneratorTerms.parts names


def latent_kl_dim(channel: int) -> str:
    return f"{LATENT_KL_DIM}{channel}"


# generator terms (unweighted unless the name says so)
TRAIN_LOSS = train(LOSS)
TRAIN_REC = train(REC)
TRAIN_REC_PER_PIXEL = train(REC_PER_PIXEL)
TRAIN_PERCEPTUAL = train(PERCEPTUAL)
TRAIN_PERCEPTUAL_WEIGHTED = train(PERCEPTUAL_WEIGHTED)
TRAIN_NLL = train(NLL)
TRAIN_LOGVAR = train(LOGVAR)
TRAIN_KL = train(KL)
TRAIN_KL_MU = train(KL_MU)
TRAIN_KL_VAR = train(KL_VAR)
TRAIN_KL_WEIGHTED = train(KL_WEIGHTED)
TRAIN_BETA = train(BETA)
TRAIN_CAPACITY = train(CAPACITY)
TRAIN_G_ADV = train(G_ADV)
TRAIN_G_ADV_WEIGHTED = train(G_ADV_WEIGHTED)
TRAIN_ADV_WEIGHT = train(ADV_WEIGHT)
TRAIN_ADAPTIVE_WEIGHT = train(ADAPTIVE_WEIGHT)
TRAIN_ADAPTIVE_CLAMPED = train(ADAPTIVE_CLAMPED)
TRAIN_ADAPTIVE_CLAMP_HITS = train("adaptive_clamp_hits")
TRAIN_NONFINITE_STEPS = train("nonfinite_steps")
# discriminator
TRAIN_D_LOSS = train(D_LOSS)
TRAIN_D_REAL = train(D_REAL)
TRAIN_D_FAKE = train(D_FAKE)
TRAIN_D_ACC = train(D_ACC)
TRAIN_D_ACC_REAL = train("d_acc_real")
TRAIN_D_ACC_FAKE = train("d_acc_fake")
# validation
VAL_REC = VAL + "rec"
VAL_KL = VAL + "kl"
VAL_PSNR = VAL + "psnr"
VAL_SSIM = VAL + "ssim"
VAL_LPIPS = VAL + "lpips"
VAL_RFID = VAL + "rfid"
# posterior statistics (callbacks/latent.py)
LATENT_MU = LATENT + "mu"  # histograms
LATENT_LOGVAR = LATENT + "logvar"
LATENT_MU_MEAN = LATENT + "mu_mean"
LATENT_MU_STD = LATENT + "mu_std"
LATENT_LOGVAR_MEAN = LATENT + "logvar_mean"
LATENT_LOGVAR_MIN = LATENT + "logvar_min"
LATENT_LOGVAR_MAX = LATENT + "logvar_max"
LATENT_VAR_MEAN = LATENT + "var_mean"
LATENT_CLAMP_FRAC = LATENT + "clamp_frac"
LATENT_ACTIVE_UNITS = LATENT + "active_units"
LATENT_COLLAPSED_DIMS = LATENT + "collapsed_dims"
LATENT_TOTAL_DIMS = LATENT + "total_dims"
LATENT_KL_DIM = LATENT + "kl_dim/"  # + the channel index: latent_kl_dim(channel)
# the study's spectral probe (vaegan/study/probe.py)
PROBE = "probe/"
PROBE_HF_RATIO = PROBE + "hf_ratio"
PROBE_LOWPASS_L1 = PROBE + "lowpass_l1"


def is_metric(name: str) -> bool:
    """Whether ``name`` is a metric vaegan logs (``latent/kl_dim/<c>`` for any channel c)."""
    tail = name.removeprefix(LATENT_KL_DIM)
    return name in known() or (tail != name and tail.isdigit())


def known() -> frozenset[str]:
    """Every metric name defined here, ``grad(term, part)`` for each term and part included."""
    names = {value for key, value in globals().items()
             if key.isupper() and isinstance(value, str) and "/" in value
             and value not in (TRAIN, VAL, LATENT, GRAD, PROBE, LATENT_KL_DIM)}
    names.add(GEN_STEP)
    names.update(grad(term, part) for term in GRAD_TERMS for part in GRAD_PARTS)
    return frozenset(names)
