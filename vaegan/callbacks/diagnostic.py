"""What the five diagnostics callbacks (latent, gradients, discriminator, images, rfid) share.

Each measures on an interval and only reads what the step computed. Here, once: the check of
an interval (one message shape, naming ``callbacks.<name>.<key>``), whether a measurement is
due at this generator step, and the hook the module calls between the generator's forward and
its backward (``vaegan.core.hooks``; a callback that measures there overrides it).
"""

from __future__ import annotations

from typing import Any, ClassVar

import lightning as L

from vaegan.core.hooks import GeneratorOutput
from vaegan.vocab.checks import require


class Diagnostic(L.Callback):
    """A diagnostics callback; ``name`` is its key under ``callbacks.`` in the config."""

    name: ClassVar[str]

    def interval(self, key: str, value: int | None, *, off: bool = False) -> int | None:
        """``value`` if it is a valid interval: an integer >= 1 (or, with ``off``, 0 or null)."""
        if off and value in (None, 0):
            return value
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        require(ok, f"callbacks.{self.name}.{key}", value, "be an integer >= 1",
                "0 or null to switch it off" if off else None)
        return value

    @staticmethod
    def due(pl_module: Any, every: int | None) -> bool:
        """Whether the measurement with interval ``every`` (``None``/0: off) runs at this
        generator step."""
        return bool(every) and pl_module.gen_step % every == 0

    def on_generator_output(self, trainer: L.Trainer, pl_module: Any, out: GeneratorOutput) -> None:
        """Every training batch, between the generator's forward and backward; nothing here."""
