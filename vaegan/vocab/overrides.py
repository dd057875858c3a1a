"""Values written back as Hydra overrides (``key=<value>``), quoted the one way Hydra reads
them back: the DDP children re-run the job, the no-GAN branch sets its own keys, and the study
states every setting of every run as an override."""

from __future__ import annotations

import re
from typing import Any

_PLAIN = re.compile(r"^[\w./:@+-]+$")  # what Hydra's override grammar takes unquoted


def override_value(value: Any) -> str:
    """A Python/YAML value as the right-hand side of a Hydra override: booleans and None as
    YAML words, lists as ``[a,b]``, plain strings as they are, anything else quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    text = str(value)
    if _PLAIN.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
