"""The two profiles every property-based test runs under, and the runner that applies them.

``default`` is derandomized with a fixed number of examples, so that CI sees the same cases every run; ``nightly``
draws NIGHTLY_FACTOR times as many, at random, and is marked ``slow`` (``pytest -m slow``).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

#: Examples per property in the default suite; the nightly profile runs NIGHTLY_FACTOR times as many.
NIGHTLY_FACTOR = 20
PROFILES = [pytest.param("default", id="default"), pytest.param("nightly", marks=pytest.mark.slow, id="nightly")]


def check_property(profile: str, examples: int, strategy: st.SearchStrategy, check) -> None:
    """Runs ``check(case)`` on ``examples`` cases drawn from ``strategy`` under ``profile`` (see the module)."""
    nightly = profile == "nightly"
    config = settings(
        max_examples=examples * NIGHTLY_FACTOR if nightly else examples,
        derandomize=not nightly,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    config(given(strategy)(check))()
