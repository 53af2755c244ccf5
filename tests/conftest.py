"""Fixtures every test folder may use."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test, restored after: tiny models on a shared 2-core machine (CI's too) run far
    faster on one thread than on two contended ones. The forecasting, lm and rl folders use it for every test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def mlflow_in_tmp(tmp_path, monkeypatch) -> str:
    """A temporary SQLite MLflow store as ``MLFLOW_TRACKING_URI`` and ``tmp_path`` as the working folder (so a report
    written to its default path lands there); returns the store's URI."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri
