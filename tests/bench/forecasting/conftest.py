"""Shared fixtures of the forecasting benchmark tests: one torch thread, a temporary MLflow store and working folder
(so a report written to its default path lands in tmp_path), and the small synthetic long frames of the library's
forecasting tests (all from tests/conftest.py)."""

from __future__ import annotations

import pytest
from long_frames import make_long_frame


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    """Every forecasting benchmark test on one torch thread."""


@pytest.fixture(autouse=True)
def tmp_mlflow(mlflow_in_tmp):
    """Every forecasting benchmark test logs to a temporary MLflow store, from tmp_path."""
    return mlflow_in_tmp


@pytest.fixture
def frame():
    return make_long_frame
