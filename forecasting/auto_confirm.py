"""The search's last check before it commits to a choice: is the best trial better than the first one (the grid-wide
settings) by more than the seeds' spread, or is it a tie?

One trial is one seed, and on a short validation split the seed can move the score as much as the settings do; a
search that takes the lowest single-seed score can pick noise over a sound default. So when the best trial is not
the first, both are fitted again with ``seeds`` more seeds on the same validation windows, and the best trial is
kept only if its mean score is below the first trial's by more than the larger std over seeds; a smaller gap is a
tie, and a tie keeps the first trial (the project's rule for every comparison: a difference within the seeds'
spread is not a win). What the seeds cannot catch is a choice that is truly better on the validation period and
worse on the test period after it (measured on ETTh1-96: 0.640 +- 0.002 against 0.724 +- 0.005 on validation over
3 seeds, and worse on test; benchmarks/forecasting/auto_etth1_96_tie_check.md). With ``earlier=True`` a winner
must also win on an earlier period: both candidates are fitted on the rows before the validation split and scored
on its last ``val_size`` steps, and a best trial that does not score lower there too is not kept (a choice that
holds on one period only is taken for that period's luck).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from xlstm_seq.forecasting.calibration import validation_windows
from xlstm_seq.forecasting.forecaster import XLSTMForecaster
from xlstm_seq.forecasting.guardrails import window_errors
from xlstm_seq.forecasting.panels import build_panels
from xlstm_seq.forecasting.validation import ID, drop_last_steps

__all__ = ["CONFIRMATION_COLUMNS", "confirm_choice", "earlier_period_rows", "validation_score"]

#: The columns of the tie check's table (``AutoXLSTMForecaster.confirmation_``): one row per candidate, seed and
#: period ("validation": the search's windows; "earlier": the last val_size steps before them).
CONFIRMATION_COLUMNS = ["candidate", "trial", "seed", "score", "period"]


def validation_score(fc: XLSTMForecaster, df: pd.DataFrame, static_df, val_size: int) -> float:
    """A fitted model's score on the guardrail's validation windows (valid_loss, on the scale the guardrail uses)."""
    hist, futr, stat = fc._lists()
    panels = build_panels(df, fc.mixing, hist, futr, stat, static_df if static_df is not None else fc.static_,
                          order=fc.series_, scale=fc.exog_scale_)  # fmt: skip
    starts = validation_windows(panels, fc.input_size, fc.h, val_size)
    idx = starts[:, None] + np.arange(fc.input_size)
    fut = starts[:, None] + fc.input_size + np.arange(fc.h)
    forecast = fc._forward_windows(panels, starts)[..., fc._point_index()]
    score = window_errors(panels.y[fut], forecast, panels.y[idx], bool(fc.scale_loss))[fc.valid_loss]
    return score if math.isfinite(score) else float("inf")


def confirm_choice(
    first: dict[str, Any],
    best: dict[str, Any],
    df: pd.DataFrame,
    static_df,
    val_size: int,
    seeds: int,
    earlier: bool = False,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The candidate to keep (``best`` or ``first``, the search's records: settings, score, model, number) and the
    table of every score behind the decision (candidate, trial, seed, score, period).

    Each candidate's model is refitted ``seeds`` times with the seeds after its own, its settings otherwise
    unchanged, and scored on the same validation windows. With ``earlier``, a best trial that wins there beyond the
    seeds' spread is fitted once more with the first trial on the earlier period (see the module docstring), when the
    series are long enough for it.
    """
    rows = []
    for label, record in (("first trial", first), ("best trial", best)):
        model: XLSTMForecaster = record["model"]
        rows.append({"candidate": label, "trial": record["number"], "seed": model.random_seed,
                     "score": record["score"], "period": "validation"})  # fmt: skip
        for j in range(1, seeds + 1):
            refit = _refit(model, df, static_df, val_size, model.random_seed + j)
            score = validation_score(refit, df, static_df, val_size)
            rows.append({"candidate": label, "trial": record["number"], "seed": model.random_seed + j,
                         "score": score, "period": "validation"})  # fmt: skip
    table = pd.DataFrame(rows, columns=CONFIRMATION_COLUMNS)
    stats = table.groupby("candidate", sort=False)["score"].agg(["mean", "std"])
    gap = stats.loc["first trial", "mean"] - stats.loc["best trial", "mean"]
    spread = float(np.nanmax(stats["std"].to_numpy())) if seeds > 0 else 0.0
    if gap <= spread:
        return first, table
    if not earlier:
        return best, table
    earlier_rows = earlier_period_rows(first, best, df, static_df, val_size)
    if not earlier_rows:  # too short for an earlier period: the validation split alone decides
        return best, table
    table = pd.concat([table, pd.DataFrame(earlier_rows, columns=CONFIRMATION_COLUMNS)], ignore_index=True)
    first_score, best_score = (row["score"] for row in earlier_rows)
    return (best if best_score < first_score else first), table


def earlier_period_rows(first: dict[str, Any], best: dict[str, Any], df: pd.DataFrame, static_df,
                         val_size: int) -> list[dict[str, Any]]:  # fmt: skip
    """Both candidates fitted on the rows before the validation split and scored on its last val_size steps (one
    row each); [] when the shortest series leaves too few rows to train on before that period."""
    before = drop_last_steps(df, val_size)
    shortest = int(before.groupby(ID, sort=False).size().min()) if len(before) else 0
    candidates = (("first trial", first), ("best trial", best))
    for _, record in candidates:  # checked for both before either is fitted
        model: XLSTMForecaster = record["model"]
        if shortest < model.input_size + model.h + model._held_out_steps(val_size):  # fit's own length rule
            return []
    rows = []
    for label, record in candidates:
        model = record["model"]
        refit = _refit(model, before, static_df, val_size, model.random_seed)
        rows.append({"candidate": label, "trial": record["number"], "seed": model.random_seed,
                     "score": validation_score(refit, before, static_df, val_size), "period": "earlier"})  # fmt: skip
    return rows


def _refit(model: XLSTMForecaster, df: pd.DataFrame, static_df, val_size: int, seed: int) -> XLSTMForecaster:
    """The model's settings fitted again on df with another seed, the validation split held out."""
    params = {**model.get_params(), "random_seed": seed, "progress": False, "track": False, "guardrail": False,
              "fallback": "none"}  # fmt: skip
    return XLSTMForecaster(**params).fit(df, static_df=static_df, val_size=val_size)
