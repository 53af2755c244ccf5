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
