"""Shared test settings for tests/bench/synthetic (as tests/lm's): one intra-op thread.

On the shared 2-core machine, two OpenMP threads of tiny ops spin against other processes and run up to
200x slower than one thread; a single thread keeps these tests fast and deterministic.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Every test here on one torch thread (tests/conftest.py)."""
