"""Bridge from SB3's logger to the xlstm_seq tracker: a ``KVWriter`` that forwards numeric records as metrics.

from xlstm_seq.tracking import create_tracker
from xlstm_seq.rl.logger import tracked_logger

with create_tracker("rl", run_name="cartpole") as tracker:
    model.set_logger(tracked_logger(tracker))   # stdout table as usual, plus MLflow metrics
    model.learn(50_000)
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.logger import KVWriter, Logger, make_output_format

from xlstm_seq.tracking import Tracker

EXCLUDE_KEY = "mlflow"
"""Records logged with ``exclude="mlflow"`` (or a tuple containing it) are not forwarded."""


class TrackerOutputFormat(KVWriter):
    """Writes SB3's numeric key-values to a ``Tracker`` as metrics at SB3's step (the number of env steps).

    Strings, videos, figures and other non-scalars are skipped; the tracker is owned by the caller, so
    ``close`` only flushes it.
    """

    def __init__(self, tracker: Tracker):
        if not isinstance(tracker, Tracker):
            raise TypeError(f"tracker must implement xlstm_seq.tracking.Tracker, got {type(tracker).__name__}")
        self.tracker = tracker

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        metrics = {}
        for key, value in key_values.items():
            excluded = key_excluded.get(key) or ()
            if EXCLUDE_KEY in excluded:
                continue
            if isinstance(value, np.ndarray) and value.size == 1:
                value = value.item()
            if isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value):
                metrics[key] = float(value)
        if metrics:
            self.tracker.log_metrics(metrics, step=int(step))

    def close(self) -> None:
        self.tracker.flush()


def tracked_logger(tracker: Tracker, formats: Sequence[str] = ("stdout",), folder: str | None = None) -> Logger:
    """An SB3 ``Logger`` writing to ``formats`` (SB3's names: stdout, csv, log, json, tensorboard) and the tracker."""
    outputs = [make_output_format(name, folder or ".") for name in formats]
    return Logger(folder=folder, output_formats=[*outputs, TrackerOutputFormat(tracker)])
