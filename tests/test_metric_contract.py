"""The public metric names, spelled out on purpose: the one place outside
``vaegan/vocab/metric_names.py`` where a metric name is written as a literal. Renaming a public
metric fails here (and must change docs/INTERFACES.md with it); every other file, in vaegan/ and
in tests/, takes its names from the constants, which the last two tests enforce."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.helpers.metrics import CONTRACT_TRAIN, CONTRACT_VAL
from vaegan.vocab import metric_names as metric

ROOT = Path(__file__).resolve().parents[1]
INTERFACES = ROOT / "docs" / "INTERFACES.md"

# What every run logs (tests/helpers/metrics.py builds these lists from the constants).
CONTRACT_TRAIN_SPELLED = [
    "train/loss", "train/rec", "train/perceptual", "train/nll", "train/kl", "train/kl_weighted",
    "train/beta", "train/kl_mu", "train/kl_var", "train/g_adv", "train/adv_weight",
    "train/d_loss", "train/d_real", "train/d_fake",
]
CONTRACT_VAL_SPELLED = ["val/rec", "val/kl", "val/psnr", "val/ssim", "val/lpips"]

# Every public name of docs/INTERFACES.md's metrics table, as its constant and spelled out.
PUBLIC = [
    (metric.GEN_STEP, "gen_step"),
    (metric.TRAIN_LOSS, "train/loss"),
    (metric.TRAIN_REC, "train/rec"),
    (metric.TRAIN_REC_PER_PIXEL, "train/rec_per_pixel"),
    (metric.TRAIN_PERCEPTUAL, "train/perceptual"),
    (metric.TRAIN_PERCEPTUAL_WEIGHTED, "train/perceptual_weighted"),
    (metric.TRAIN_NLL, "train/nll"),
    (metric.TRAIN_LOGVAR, "train/logvar"),
    (metric.TRAIN_KL, "train/kl"),
    (metric.TRAIN_KL_MU, "train/kl_mu"),
    (metric.TRAIN_KL_VAR, "train/kl_var"),
    (metric.TRAIN_KL_WEIGHTED, "train/kl_weighted"),
    (metric.TRAIN_BETA, "train/beta"),
    (metric.TRAIN_CAPACITY, "train/capacity"),
    (metric.TRAIN_G_ADV, "train/g_adv"),
    (metric.TRAIN_ADV_WEIGHT, "train/adv_weight"),
    (metric.TRAIN_G_ADV_WEIGHTED, "train/g_adv_weighted"),
    (metric.TRAIN_ADAPTIVE_WEIGHT, "train/adaptive_weight"),
    (metric.TRAIN_ADAPTIVE_CLAMPED, "train/adaptive_clamped"),
    (metric.TRAIN_D_LOSS, "train/d_loss"),
    (metric.TRAIN_D_REAL, "train/d_real"),
    (metric.TRAIN_D_FAKE, "train/d_fake"),
    (metric.TRAIN_D_ACC, "train/d_acc"),
    (metric.TRAIN_NONFINITE_STEPS, "train/nonfinite_steps"),
    (metric.TRAIN_ADAPTIVE_CLAMP_HITS, "train/adaptive_clamp_hits"),
    (metric.TRAIN_D_ACC_REAL, "train/d_acc_real"),
    (metric.TRAIN_D_ACC_FAKE, "train/d_acc_fake"),
    (metric.LATENT_MU_MEAN, "latent/mu_mean"),
    (metric.LATENT_MU_STD, "latent/mu_std"),
    (metric.LATENT_LOGVAR_MEAN, "latent/logvar_mean"),
    (metric.LATENT_LOGVAR_MIN, "latent/logvar_min"),
    (metric.LATENT_LOGVAR_MAX, "latent/logvar_max"),
    (metric.LATENT_VAR_MEAN, "latent/var_mean"),
    (metric.LATENT_CLAMP_FRAC, "latent/clamp_frac"),
    (metric.LATENT_TOTAL_DIMS, "latent/total_dims"),
    (metric.latent_kl_dim(0), "latent/kl_dim/0"),
    (metric.latent_kl_dim(3), "latent/kl_dim/3"),
    (metric.LATENT_ACTIVE_UNITS, "latent/active_units"),
    (metric.LATENT_COLLAPSED_DIMS, "latent/collapsed_dims"),
    (metric.LATENT_MU, "latent/mu"),
    (metric.LATENT_LOGVAR, "latent/logvar"),
    (metric.grad(metric.REC, metric.ENCODER), "grad/rec/encoder"),
    (metric.grad(metric.PERCEPTUAL, metric.DECODER), "grad/perceptual/decoder"),
    (metric.grad(metric.KL, metric.POSTERIOR_MU), "grad/kl/mu"),
    (metric.grad(metric.ADV, metric.POSTERIOR_LOGVAR), "grad/adv/logvar"),
    (metric.grad(metric.REC, metric.ENCODER_SHARE), "grad/rec/encoder_share"),
    (metric.grad(metric.KL, metric.SHARE), "grad/kl/share"),
    (metric.grad(metric.REC, metric.KL_PUSH), "grad/rec/kl_push"),
    (metric.grad(metric.PERCEPTUAL, metric.KL_PUSH_MU), "grad/perceptual/kl_push_mu"),
    (metric.grad(metric.ADV, metric.KL_PUSH_VAR), "grad/adv/kl_push_var"),
    (metric.grad(metric.KL, metric.KL_PUSH_SGD), "grad/kl/kl_push_sgd"),
    (metric.VAL_REC, "val/rec"),
    (metric.VAL_KL, "val/kl"),
    (metric.VAL_PSNR, "val/psnr"),
    (metric.VAL_SSIM, "val/ssim"),
    (metric.VAL_LPIPS, "val/lpips"),
    (metric.VAL_RFID, "val/rfid"),
    (metric.PROBE_HF_RATIO, "probe/hf_ratio"),
    (metric.PROBE_LOWPASS_L1, "probe/lowpass_l1"),
]
# grad/<term>/<part>: the terms and the parts, in the order the docs list them
GRAD_TERMS_SPELLED = ("rec", "perceptual", "kl", "adv")
GRAD_PARTS_SPELLED = ("encoder", "decoder", "mu", "logvar", "encoder_share", "share",
                      "kl_push", "kl_push_mu", "kl_push_var", "kl_push_sgd")
# In the docs' table but without a constant in metric_names (callbacks/images.py spells it).
NOT_IN_METRIC_NAMES = {"images/inputs_recs_prior"}


@pytest.mark.parametrize(("constant", "spelled"), PUBLIC, ids=[s for _, s in PUBLIC])
def test_public_name_is_spelled_as_documented(constant, spelled):
    assert constant == spelled


def test_contract_lists_are_the_spelled_ones():
    assert CONTRACT_TRAIN == CONTRACT_TRAIN_SPELLED
    assert CONTRACT_VAL == CONTRACT_VAL_SPELLED


def test_grad_terms_and_parts_are_spelled_as_documented():
    assert metric.GRAD_TERMS == GRAD_TERMS_SPELLED
    assert metric.GRAD_PARTS == GRAD_PARTS_SPELLED
    for term in metric.GRAD_TERMS:
        for part in metric.GRAD_PARTS:
            assert metric.grad(term, part) == f"grad/{term}/{part}"


def documented_names() -> list[str]:
    """The names in the first column of docs/INTERFACES.md's metrics table, expanded:
    ``…/decoder`` after ``grad/<term>/encoder`` is ``grad/<term>/decoder``, and ``<term>`` runs
    over the terms its row lists (``<term>`` ∈ `rec`, ...); ``<c>`` stays as it is."""
    text = INTERFACES.read_text()
    table = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    names = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3 or set(cells[0]) <= {"-"}:
            continue
        if cells[0] == "name":
            continue
        terms = re.search(r"`<term>` ∈ ((?:`\w+`,? ?)+)", line)
        row, previous = [], None
        for name in re.findall(r"`([^`]+)`", cells[0]):
            if name.startswith("…/"):
                name = previous.rsplit("/", 1)[0] + name[1:]
            row.append(name)
            previous = name
        for name in row:
            if "<term>" in name:
                grad_terms = re.findall(r"`(\w+)`", terms[1]) if terms else GRAD_TERMS_SPELLED
                names += [name.replace("<term>", t) for t in grad_terms]
            else:
                names.append(name)
    return names


def produced_by_metric_names(name: str) -> bool:
    constants = {v for k, v in vars(metric).items() if k.isupper() and isinstance(v, str)}
    grads = {metric.grad(t, p) for t in metric.GRAD_TERMS for p in metric.GRAD_PARTS}
    if name.endswith("/<c>"):
        return name.replace("<c>", "7") == metric.latent_kl_dim(7)
    return name in constants | grads


def test_every_documented_name_comes_from_metric_names():
    names = documented_names()
    assert len(names) > 60 and "train/loss" in names and "grad/adv/kl_push_sgd" in names
    missing = [n for n in names if not produced_by_metric_names(n)]
    assert set(missing) == NOT_IN_METRIC_NAMES, missing


def test_every_spelled_name_is_documented():
    """The other way round: the names spelled here are the docs' (up to the channel index)."""
    documented = set(documented_names())
    spelled = [s for _, s in PUBLIC if s != "gen_step"]
    spelled = [re.sub(r"/kl_dim/\d+$", "/kl_dim/<c>", s) for s in spelled]
    assert not [s for s in spelled if s not in documented]
    assert "`gen_step`" in INTERFACES.read_text()


# ---------------------------------------------------------------- no other literal

PATTERN = re.compile(r"^(train|val|latent|grad|probe)/")


def metric_literals(path: Path) -> list[tuple[int, str]]:
    """Strings (and the literal head of f-strings) that start like a metric name; docstrings,
    which are prose, are not names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and node.values:
            head = node.values[0]
            if isinstance(head, ast.Constant) and PATTERN.match(head.value):
                found.append((node.lineno, ast.unparse(node)))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in skip and PATTERN.match(node.value)):
            found.append((node.lineno, node.value))
    return sorted(found)


def literals_under(folder: str, allowed: Path) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line}: {literal!r}"
            for path in sorted((ROOT / folder).rglob("*.py")) if path != allowed
            for line, literal in metric_literals(path)]


def test_the_scan_finds_what_it_should(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""train/kl in a docstring is prose."""\n'
                      'A = "train/kl"\nB = f"grad/{A}/encoder"\nC = f"{A}/x"\nD = "gen_step"\n')
    assert metric_literals(sample) == [(2, "train/kl"), (3, "f'grad/{A}/encoder'")]


def test_no_metric_name_literal_in_vaegan():
    found = literals_under("vaegan", ROOT / "vaegan" / "vocab" / "metric_names.py")
    assert not found, "use vaegan/vocab/metric_names.py's constants:\n" + "\n".join(found)


def test_no_metric_name_literal_in_tests():
    found = literals_under("tests", Path(__file__).resolve())
    assert not found, "use vaegan/vocab/metric_names.py's constants:\n" + "\n".join(found)
