"""Secrets never land in run dirs, saved configs or logger configs.

A key or value whose *name* contains one of ``SECRET_WORDS`` (key, token, secret, password,
passwd, passphrase, auth, credential, private, cookie, session, bearer, signature; any case)
is replaced by ``***``: in Hydra's saved ``.hydra/*.yaml`` and ``multirun.yaml``
(rewritten by the ``RedactSecrets`` Hydra callback right after Hydra writes them), in
``run_info.json`` and in the config sent to wandb. The *values* of such environment
variables (``WANDB_API_KEY``, ``HF_TOKEN``, ...) are replaced wherever they appear as text.
``sys.argv`` is redacted too, because wandb records the command line of every run.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

REDACTED = "***"
# Name fragments of credentials: api keys, tokens, passwords (passwd, passphrase), auth
# headers, credential files, private keys, cookies and session ids. Not "pwd": $PWD is a path.
SECRET_WORDS = (
    "key", "token", "secret", "password", "passwd", "passphrase", "auth", "credential",
    "private", "cookie", "session", "bearer", "signature",
)
_SECRET_WORDS = "|".join(SECRET_WORDS)
SECRET_NAME = re.compile(_SECRET_WORDS, re.IGNORECASE)
# Where a secret value starts inside a string: `name=` (a Hydra override, or Hydra's
# comma-joined override_dirname), or `name:` as a key of a flow mapping (a dict-valued
# override, `+headers={Authorization: …}`), at any depth.
_SECRET_START = re.compile(
    rf"(?P<assign>[\w.+~/-]*(?:{_SECRET_WORDS})[\w.-]*=)"
    rf"|(?<=[{{,])(?P<key>\s*(?P<q>[\"']?)[\w.-]*(?:{_SECRET_WORDS})[\w.-]*(?P=q)\s*:\s*)",
    re.IGNORECASE,
)
MIN_SECRET_LEN = 6  # shorter env values ("1", "true") would redact ordinary text


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def secret_env_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables with secret-looking names, longest first."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if is_secret_name(k) and len(v) >= MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


def _value_end(text: str, start: int, space_ends: bool) -> int:
    """Where the value starting at ``start`` ends: at a comma or a closing bracket outside
    brackets and quotes (a nested ``{…}`` or ``[…]`` is part of it), or at a newline, or
    (``space_ends``: an override's value) at whitespace."""
    depth, quote, i = 0, None, start
    while i < len(text):
        c = text[i]
        if quote:
            quote = None if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c in "{[":
            depth += 1
        elif c in "}]":
            if depth == 0:
                break
            depth -= 1
        elif c == "\n" or (depth == 0 and (c == "," or (space_ends and c.isspace()))):
            break
        i += 1
    return i


def _redact_assignments(text: str) -> str:
    """Every value after a secret ``name=`` or a secret mapping key, whole (nested too)."""
    out, pos = [], 0
    while (match := _SECRET_START.search(text, pos)) is not None:
        start = match.end()  # past the name: each match moves on
        end = _value_end(text, start, space_ends=match["assign"] is not None)
        out += [text[pos:start], REDACTED if end > start else ""]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def redact_text(text: str, values: list[str] | None = None) -> str:
    """Secret env values, the values of ``name=value`` pairs with secret names, and the values
    of secret keys inside ``{…}`` (a dict-valued override), replaced by ``***``."""
    for value in secret_env_values() if values is None else values:
        text = text.replace(value, REDACTED)
    return _redact_assignments(text)


def redact_tree(node: Any, values: list[str] | None = None, secret: bool = False) -> Any:
    """A plain container (dicts, lists, scalars) with every secret leaf replaced."""
    values = secret_env_values() if values is None else values
    if isinstance(node, Mapping):
        return {
            k: redact_tree(v, values, secret or is_secret_name(str(k))) for k, v in node.items()
        }
    if isinstance(node, (list, tuple)):
        return [redact_tree(v, values, secret) for v in node]
    if secret and node is not None and not isinstance(node, bool):
        return REDACTED
    return redact_text(node, values) if isinstance(node, str) else node


def redact_config(cfg: DictConfig) -> DictConfig:
    """A redacted, resolved copy of ``cfg`` (resolved first, so ``${oc.env:...}`` values are
    caught too; as written if something cannot resolve outside a Hydra run)."""
    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
    except Exception:
        plain = OmegaConf.to_container(cfg, resolve=False)
    return OmegaConf.create(redact_tree(plain))


def redact_overrides(overrides: list[str]) -> list[str]:
    return [redact_text(o) for o in overrides]


def redact_argv() -> None:
    """Redact ``sys.argv`` in place: wandb (and anything else) records the command line."""
    sys.argv[1:] = redact_overrides(sys.argv[1:])


def redact_yaml_file(path: Path) -> None:
    """Rewrite a saved YAML config with its secrets replaced (temp file, then rename)."""
    original = OmegaConf.load(path)
    redacted = OmegaConf.create(redact_tree(OmegaConf.to_container(original, resolve=False)))
    if redacted == original:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    OmegaConf.save(redacted, tmp)
    os.replace(tmp, path)
