"""Shared fixtures of the forecasting tests: small synthetic long frames, one torch thread, a temporary MLflow store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from long_frames import make_long_frame


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    """Every forecasting test on one torch thread (tests/conftest.py)."""


@pytest.fixture(autouse=True)
def tmp_mlflow(mlflow_in_tmp):
    """Every forecasting test logs to a temporary MLflow store, from tmp_path (tests/conftest.py)."""
    return mlflow_in_tmp


def make_static(n_series: int) -> pd.DataFrame:
    return pd.DataFrame({"unique_id": [f"s{i}" for i in range(n_series)], "size": np.arange(n_series, dtype=float)})


@pytest.fixture
def frame():
    return make_long_frame


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
