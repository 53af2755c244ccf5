"""The time budget of an AutoXLSTMForecaster fit: the search, the tie check and the refit, all inside
``time_budget_s``.

Optuna's ``timeout`` only stops new trials from starting: the trial running at the deadline, the tie check's fits
and the refit all came on top of it (a search budget of 480 s took 15.4 min in all on ETTh2-336 once the tie check
and the ensemble's seeds were added). Here the search stops before a trial that would not leave time for what must
follow: after each trial, the time one more full trial may take (the longest complete trial so far) and the fits
that follow the search are set against the time left. Those fits are estimated by the trials they repeat, taking the
worse of two cases: the best trial so far stays the best, or the next trial becomes the best (a long last trial
that also wins sets the cost of every fit after it: on Weather-720 a reserve from the median trial overran the
budget by 2.7 min). The estimates come from trials timed on this machine, so the budget holds as well as those
estimates do, not to the second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["SearchBudget"]


@dataclass
class SearchBudget:
    """Decides after each trial whether the search may start another one."""

    seconds: float | None
    """The whole fit's budget (None: no time limit)."""
    check_fits: int
    """Fits of the tie check per candidate: the first trial's and the best trial's settings, this many times each."""
    refits: int
    """Fits of the chosen settings after the search (the refit on all rows, or more members of an ensemble)."""
    started: float = field(default_factory=lambda: time.perf_counter())

    def after_search_seconds(self, first_seconds: float | None, best_seconds: float, best_is_first: bool) -> float:
        """The estimated time of the fits that follow the search, were it to stop now."""
        checked = not best_is_first and first_seconds is not None
        tie_check = self.check_fits * (first_seconds + best_seconds) if checked else 0.0
        return tie_check + self.refits * best_seconds

    def leaves_room(self, complete_seconds: list[float], first_seconds: float | None, best_seconds: float | None,
                    best_is_first: bool) -> bool:  # fmt: skip
        """Whether one more trial and then the fits after the search still fit in the budget, whichever of the
        best so far and the next trial ends up the best."""
        if self.seconds is None:
            return True
        elapsed = time.perf_counter() - self.started
        if not complete_seconds or best_seconds is None:  # nothing to estimate from yet: a plain deadline
            return elapsed < self.seconds
        next_trial = max(complete_seconds)
        after = max(self.after_search_seconds(first_seconds, best_seconds, best_is_first),
                    self.after_search_seconds(first_seconds, next_trial, best_is_first=False))  # fmt: skip
        return elapsed + next_trial + after <= self.seconds
