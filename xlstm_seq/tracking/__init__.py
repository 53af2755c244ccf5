"""Experiment tracking: a small ``Tracker`` protocol, an MLflow implementation and a null one.

Every fit, learn, train, evaluation and benchmark is one run::

    from xlstm_seq.tracking import create_tracker

    with create_tracker("forecasting", run_name="etth1-small") as tracker:
        tracker.log_params(config)  # nested -> dotted keys
        tracker.log_text(resolved_yaml, "config.yaml")
        for step in range(num_steps):
            tracker.log_metrics({"train/loss": loss}, step=step)  # buffered, sent in batches
        tracker.log_figure(fig, "forecast.png")

Training code never branches on whether logging is on: ``create_tracker`` returns a
``NullTracker`` when disabled or on a rank other than 0. ``mlflow`` itself is imported only when an
``MlflowTracker`` is created.
"""

from __future__ import annotations

import os
from typing import Any

from xlstm_seq.tracking.base import NullTracker, Tracker, TrackingWarning, flatten_dict
from xlstm_seq.tracking.mlflow_tracker import MlflowTracker
from xlstm_seq.tracking.provenance import Provenance

__all__ = [
    "Tracker",
    "NullTracker",
    "MlflowTracker",
    "Provenance",
    "TrackingWarning",
    "create_tracker",
    "flatten_dict",
    "rank",
]


def rank() -> int:
    """This process's rank from the ``RANK`` environment variable (0 when unset or not an integer)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def create_tracker(
    experiment: str,
    run_name: str | None = None,
    *,
    enabled: bool = True,
    tracking_uri: str | None = None,
    tags: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Tracker:
    """Starts a tracked run: an ``MlflowTracker`` on rank 0, else (or when disabled) a ``NullTracker``.

    Args:
        experiment: MLflow experiment name (created when missing).
        run_name: Run name; MLflow picks one when None.
        enabled: False gives a ``NullTracker``. Default True.
        tracking_uri: Store URI. Default: ``MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``.
        tags: Extra run tags (the git SHA, versions, device and hostname are added by default).
        **kwargs: Passed to :class:`MlflowTracker` (``flush_every``, ``flush_interval``, ``fallback_dir``, ...).

    Returns:
        The tracker; use it as a context manager or call ``close()``.
    """
    if not enabled or rank() != 0:
        return NullTracker()
    return MlflowTracker(experiment, run_name, tracking_uri=tracking_uri, tags=tags, **kwargs)
