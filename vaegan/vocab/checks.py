"""The one shape of a bad-value message: ``<full.key>=<value> must …; allowed: …``.

Each constructor checks its own ranges with ``require``; the Hydra run turns the ValueError
into one ``error:`` line (vaegan.app.errors), so the key a user typed is the key they read.
"""

from __future__ import annotations

from collections.abc import Iterable


def must(key: str, value: object, rule: str, allowed: str | Iterable[object] | None = None) -> str:
    """``key=value must rule; allowed: …`` (``allowed``: a hint, or the valid choices)."""
    shown = repr(value) if isinstance(value, str) else value
    message = f"{key}={shown} must {rule}"
    if allowed is None:
        return message
    if not isinstance(allowed, str):
        allowed = ", ".join(str(a) for a in allowed)
    return f"{message}; allowed: {allowed}"


def require(ok: bool, key: str, value: object, rule: str,
            allowed: str | Iterable[object] | None = None) -> None:
    """Raise ``ValueError(must(...))`` unless ``ok``."""
    if not ok:
        raise ValueError(must(key, value, rule, allowed))


def choice(key: str, value: str, options: Iterable[str]) -> str:
    """``value`` if it is one of ``options``; else the one-line error naming them."""
    options = tuple(options)
    require(value in options, key, value, "be one of the known names", options)
    return value
