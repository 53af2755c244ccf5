"""Shared fixtures of the forecasting benchmark tests: one torch thread, a temporary MLflow store and working folder
(the same autouse pair as tests/forecasting/conftest.py, so a report written to its default path lands in tmp_path),
and the small synthetic long frames of the library's forecasting tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    """Every forecasting benchmark test on one torch thread (tests/conftest.py)."""


@pytest.fixture(autouse=True)
def tmp_mlflow(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


def make_frame(n_series: int = 1, length: int = 120, freq: str = "h") -> pd.DataFrame:
    """Seasonal series (period 12) with a trend, as tests/forecasting/conftest.py makes them."""
    rng = np.random.default_rng(0)
    parts = []
    for i in range(n_series):
        t = np.arange(length)
        y = 10 + i + np.sin(2 * np.pi * t / 12 + i) + 0.01 * t + rng.normal(0, 0.05, length)
        ds = pd.date_range("2024-01-01", periods=length, freq=freq)
        parts.append(pd.DataFrame({"unique_id": f"s{i}", "ds": ds, "y": y}))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture
def frame():
    return make_frame
