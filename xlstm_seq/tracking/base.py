"""The ``Tracker`` protocol, a ``NullTracker`` that accepts every call, and ``flatten_dict``.

Training code talks to a ``Tracker`` and never branches on whether logging is on: when it is off
(disabled, or a process whose rank is not 0) it gets a ``NullTracker``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

__all__ = ["Tracker", "NullTracker", "TrackingWarning", "flatten_dict"]


class TrackingWarning(UserWarning):
    """Warned when tracking fails; training goes on and nothing is lost (it is written locally)."""


@runtime_checkable
class Tracker(Protocol):
    """What training, evaluation and benchmark code may call on an experiment tracker.

    One tracker is one run. Every method must be safe to call at any time: a tracker never raises
    because the tracking backend failed (it warns and keeps the data locally instead), and never keeps
    training waiting on a slow or silent backend for more than a bounded time.
    """

    @property
    def run_id(self) -> str | None:
        """The backend's id of this run, or None (null tracker, or the run could not be created)."""
        ...

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Logs parameters; nested mappings and dataclasses are flattened to dotted keys."""
        ...

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Logs scalar metrics at ``step`` (buffered; sent in batches)."""
        ...

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Logs a local file or folder as an artifact under ``artifact_path``."""
        ...

    def log_figure(self, fig: Any, name: str) -> None:
        """Logs a matplotlib figure as a PNG artifact ``name`` (``.png`` appended when missing)."""
        ...

    def log_text(self, text: str, name: str) -> None:
        """Logs ``text`` as an artifact file ``name``, e.g. the resolved YAML as ``config.yaml``."""
        ...

    def log_dict(self, data: Mapping[str, Any], name: str) -> None:
        """Logs a mapping as a YAML (``.yaml``/``.yml``) or JSON artifact file ``name``."""
        ...

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Sets run tags (values are converted to strings)."""
        ...

    def flush(self) -> None:
        """Sends buffered metrics now (a tracker that sends from a background thread waits a bounded time)."""
        ...

    def close(self, status: str = "FINISHED") -> None:
        """Flushes and ends the run with ``status`` (FINISHED, FAILED or KILLED); idempotent; bounded in time."""
        ...

    def __enter__(self) -> Tracker: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class NullTracker:
    """A tracker that accepts every call and does nothing (tracking disabled, or rank != 0)."""

    @property
    def run_id(self) -> str | None:
        return None

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        pass

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        pass

    def log_figure(self, fig: Any, name: str) -> None:
        pass

    def log_text(self, text: str, name: str) -> None:
        pass

    def log_dict(self, data: Mapping[str, Any], name: str) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self, status: str = "FINISHED") -> None:
        pass

    def __enter__(self) -> NullTracker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass

    def __repr__(self) -> str:
        return "NullTracker()"


def _leaf_value(value: Any) -> Any:
    """Turns a leaf into something a tracking backend stores faithfully (scalars stay, the rest is str)."""
    if isinstance(value, enum.Enum):
        return value.value if isinstance(value.value, (str, int, float, bool)) else value.name
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return str([_leaf_value(v) for v in value])
    return str(value)


def flatten_dict(data: Mapping[str, Any] | Any, sep: str = ".", prefix: str = "") -> dict[str, Any]:
    """Flattens nested mappings (and dataclass instances) into one level with dotted keys.

    ``{"model": {"num_blocks": 4, "dims": [1, 2]}, "lr": 1e-3}`` becomes
    ``{"model.num_blocks": 4, "model.dims": "[1, 2]", "lr": 0.001}``. Lists, tuples, paths and other
    objects become strings; ``None``, bools, ints, floats and strings are kept as they are. An empty
    nested mapping is kept as the string ``"{}"`` so that the key is not lost.

    Args:
        data: A mapping, or a dataclass instance (converted with ``dataclasses.asdict``).
        sep: Separator placed between nested keys. Default ``"."``.
        prefix: Prepended to every key (``prefix + sep + key``). Default ``""``.

    Returns:
        A new flat dict from dotted key to leaf value.
    """
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = dataclasses.asdict(data)
    if not isinstance(data, Mapping):
        raise TypeError(f"flatten_dict expects a mapping or a dataclass instance, got {type(data).__name__}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{sep}{key}" if prefix else str(key)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        if isinstance(value, Mapping):
            if value:
                out.update(flatten_dict(value, sep=sep, prefix=full))
            else:
                out[full] = "{}"
        else:
            out[full] = _leaf_value(value)
    return out
