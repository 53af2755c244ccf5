"""The time budget of auto mode: the search stops in time for one more trial and the fits that follow it."""

import pytest

from xlstm_seq.forecasting import auto_budget
from xlstm_seq.forecasting.auto_budget import SearchBudget


@pytest.fixture
def clock(monkeypatch):
    now = {"t": 100.0}
    monkeypatch.setattr(auto_budget.time, "perf_counter", lambda: now["t"])
    return now


def test_no_budget_always_leaves_room(clock):
    budget = SearchBudget(None, check_fits=2, refits=1)
    clock["t"] += 1e6
    assert budget.leaves_room([10.0], 10.0, 10.0, best_is_first=False)


def test_before_any_complete_trial_the_budget_is_a_plain_deadline(clock):
    budget = SearchBudget(60.0, check_fits=2, refits=1)
    clock["t"] += 59.0
    assert budget.leaves_room([], None, None, best_is_first=True)
    clock["t"] += 2.0
    assert not budget.leaves_room([], None, None, best_is_first=True)


def test_the_tie_check_is_reserved_only_when_the_best_trial_is_not_the_first():
    budget = SearchBudget(900.0, check_fits=2, refits=1)
    assert budget.after_search_seconds(30.0, 50.0, best_is_first=True) == 50.0  # the refit alone
    assert budget.after_search_seconds(30.0, 50.0, best_is_first=False) == 2 * (30.0 + 50.0) + 50.0
    assert SearchBudget(900.0, check_fits=0, refits=5).after_search_seconds(30.0, 50.0, False) == 250.0


def test_the_search_stops_when_one_more_trial_and_the_fits_after_it_would_overrun(clock):
    budget = SearchBudget(600.0, check_fits=2, refits=1)
    complete = [40.0, 60.0, 50.0]  # the next trial may take as long as the longest, 60 s
    # after the search, the worse case: the next trial wins, so the tie check fits the first (40 s) and it (60 s)
    # twice each and the refit repeats it: 2 * (40 + 60) + 60 = 260 s; with the next trial 320 s
    clock["t"] += 280.0
    assert budget.leaves_room(complete, 40.0, 50.0, best_is_first=False)
    clock["t"] += 1.0
    assert not budget.leaves_room(complete, 40.0, 50.0, best_is_first=False)


def test_a_long_best_trial_sets_the_reserve_when_it_is_the_worse_case(clock):
    budget = SearchBudget(600.0, check_fits=2, refits=4)
    # the best so far took 90 s, longer than any other: 2 * (20 + 90) + 4 * 90 = 580 s after the search
    assert budget.after_search_seconds(20.0, 90.0, best_is_first=False) == 580.0
    assert not budget.leaves_room([20.0, 90.0], 20.0, 90.0, best_is_first=False)  # 0 + 90 + 580 > 600
    assert SearchBudget(800.0, check_fits=2, refits=4).leaves_room([20.0, 90.0], 20.0, 90.0, best_is_first=False)
