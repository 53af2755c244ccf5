"""The search's last check before it commits to a choice: is the best trial better than the first one (the grid-wide
settings) by more than the seeds' spread, or is it a tie?

One trial is one seed, and on a short validation split the seed can move the score as much as the settings do; a
search that takes the lowest single-seed score can pick noise over a sound default. So when the best trial is not
the first, both are fitted again with ``seeds`` more seeds on the same validation windows, and the best trial is
kept only if its mean score is below the first trial's by more than the larger std over seeds; a smaller gap is a
tie, and a tie keeps the first trial (the project's rule for every comparison: a difference within the seeds'
spread is not a win). What the check cannot catch is a choice that is truly better on the validation period and
worse on the test period after it (measured on ETTh1-96: 0.640 +- 0.002 against 0.724 +- 0.005 on validation over
3 seeds, and worse on test; benchmarks/forecasting/auto_etth1_96_tie_check.md).
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

__all__ = ["CONFIRMATION_COLUMNS", "confirm_choice", "validation_score"]

#: The columns of the tie check's table (``AutoXLSTMForecaster.confirmation_``): one row per candidate and seed.
CONFIRMATION_COLUMNS = ["candidate", "trial", "seed", "score"]


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
    first: dict[str, Any], best: dict[str, Any], df: pd.DataFrame, static_df, val_size: int, seeds: int
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The candidate to keep (``best`` or ``first``, the search's records: settings, score, model, number) and the
    table of every score behind the decision (candidate, trial, seed, score).

    Each candidate's model is refitted ``seeds`` times with the seeds after its own, its settings otherwise
    unchanged, and scored on the same validation windows.
    """
    rows = []
    for label, record in (("first trial", first), ("best trial", best)):
        model: XLSTMForecaster = record["model"]
        rows.append({"candidate": label, "trial": record["number"], "seed": model.random_seed,
                     "score": record["score"]})  # fmt: skip
        for j in range(1, seeds + 1):
            params = {**model.get_params(), "random_seed": model.random_seed + j, "progress": False,
                      "track": False, "guardrail": False, "fallback": "none"}  # fmt: skip
            refit = XLSTMForecaster(**params).fit(df, static_df=static_df, val_size=val_size)
            rows.append({"candidate": label, "trial": record["number"], "seed": model.random_seed + j,
                         "score": validation_score(refit, df, static_df, val_size)})  # fmt: skip
    table = pd.DataFrame(rows, columns=CONFIRMATION_COLUMNS)
    stats = table.groupby("candidate", sort=False)["score"].agg(["mean", "std"])
    gap = stats.loc["first trial", "mean"] - stats.loc["best trial", "mean"]
    spread = float(np.nanmax(stats["std"].to_numpy())) if seeds > 0 else 0.0
    return (best if gap > spread else first), table
