"""The test suite itself: pytest's default import mode needs every test module name to be unique."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_basenames_are_unique():
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    duplicates = sorted(name for name, count in names.items() if count > 1)
    assert not duplicates, f"test modules share a basename (pytest cannot collect both): {duplicates}"
