"""Fixtures of the RL benchmark tests (as tests/rl's): seeded torch on one thread, MLflow in a temporary store."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_threads(one_torch_thread):
    # Tiny per-step tensors: one thread (tests/conftest.py) avoids thread-pool contention on the shared machine.
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _mlflow_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
