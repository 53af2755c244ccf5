"""Shared fixtures of the forecasting tests: small synthetic long frames, one torch thread, a temporary MLflow store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    """Every forecasting test on one torch thread (tests/conftest.py)."""


@pytest.fixture(autouse=True)
def tmp_mlflow(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


def make_frame(n_series: int = 1, length: int = 120, exog: bool = False, freq: str = "h") -> pd.DataFrame:
    """Seasonal series (period 12) with a trend; with exog, a historic column and a future-known column."""
    rng = np.random.default_rng(0)
    parts = []
    for i in range(n_series):
        t = np.arange(length)
        y = 10 + i + np.sin(2 * np.pi * t / 12 + i) + 0.01 * t + rng.normal(0, 0.05, length)
        part = pd.DataFrame(
            {"unique_id": f"s{i}", "ds": pd.date_range("2024-01-01", periods=length, freq=freq), "y": y}
        )
        if exog:
            part["hist_x"] = np.cos(t / 7.0)
            part["futr_x"] = (t % 12) / 12.0
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def make_static(n_series: int) -> pd.DataFrame:
    return pd.DataFrame({"unique_id": [f"s{i}" for i in range(n_series)], "size": np.arange(n_series, dtype=float)})


@pytest.fixture
def frame():
    return make_frame


@pytest.fixture
def static():
    return make_static


@pytest.fixture
def tiny_fit() -> dict:
    """Settings of a forecaster small enough to fit in about a second (h=6, look-back 24, 30 steps)."""
    return dict(h=6, input_size=24, patch_len=6, embedding_dim=8, num_blocks=1, num_heads=2, max_steps=30,
                batch_size=8, progress=False, track=False)  # fmt: skip


def make_net_batch(B: int = 3, L: int = 32, C: int = 4, h: int = 8, X: int = 0, F: int = 0, S: int = 0) -> dict:
    """One random batch in the networks' contract (forecasting/models.py): y (B, L, C), x_hist (B, L, C, X),
    x_futr (B, h, C, F), x_stat (B, C, S)."""
    g = torch.Generator().manual_seed(0)
    return {
        "y": torch.randn(B, L, C, generator=g),
        "x_hist": torch.randn(B, L, C, X, generator=g),
        "x_futr": torch.randn(B, h, C, F, generator=g),
        "x_stat": torch.randn(B, C, S, generator=g),
    }


@pytest.fixture
def net_batch():
    return make_net_batch
