"""Whether this batch's step metrics reach the logger: read from Lightning's internal logger
connector, checked against lightning 2.6.6 (``_LoggerConnector.should_update_logs``). Every
Lightning internal vaegan touches is listed in docs/INTERFACES.md ("Lightning internals"), and
tests/test_layers.py keeps that list complete.

Lightning writes step metrics every ``log_every_n_steps`` batches (and on the last batch and
under ``fast_dev_run``), keeping only the latest value of each, while every ``self.log`` call
has a fixed cost: ~25 terms logged on every batch showed in the CPU step time (``make bench``,
the framework row of bench/RESULTS.md). The module logs only on the batches Lightning writes.
Without the connector (a newer Lightning that renamed it) every batch logs: slower, still
correct.
"""

from __future__ import annotations

from typing import Any


def logger_writes_this_step(trainer: Any) -> bool:
    connector = getattr(trainer, "_logger_connector", None)
    if connector is None or not hasattr(connector, "should_update_logs"):
        return True
    return bool(connector.should_update_logs or trainer.fast_dev_run)
