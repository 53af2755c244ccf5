"""Scores of fitted forecasters over many rolling windows, for the long-horizon benchmark: MSE and MAE of the point
forecast (or of the mean point forecast of an ensemble), computed in chunks so that long horizons over many windows
and series fit in memory.

It reads the fitted forecaster's windows and network directly (``_rolling_windows``, ``_forward_windows``), which
``XLSTMForecaster.forecast_windows`` returns only whole.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from xlstm_seq.forecasting import XLSTMForecaster
from xlstm_seq.forecasting.validation import check_long_frame


def score_windows(
    forecaster: XLSTMForecaster,
    df: pd.DataFrame,
    n_windows: int,
    step_size: int = 1,
    static_df: pd.DataFrame | None = None,
    *,
    ensemble_with: Sequence[XLSTMForecaster] = (),
) -> dict[str, float]:
    """MSE and MAE of ``forecaster``'s point forecast over the windows of ``forecaster.forecast_windows(df,
    n_windows, step_size, static_df)``.

    ``ensemble_with``: other fitted forecasters of the same h, mixing, series and exogenous columns (e.g. the same
    settings under other seeds, or other look-backs); then the scored forecast is the mean of all their point
    forecasts. Windows are anchored at the series ends, so members with different ``input_size`` forecast the same
    targets, each from its own look-back.
    """
    forecaster._check_fitted()
    for other in ensemble_with:
        other._check_fitted()
        same = (other.h, other.mixing, other.series_) == (forecaster.h, forecaster.mixing, forecaster.series_)
        if not same or other._lists() != forecaster._lists():
            raise ValueError("ensemble_with: every forecaster needs the same h, mixing, series and exogenous "
                             "columns as this one")  # fmt: skip
    members = [forecaster, *ensemble_with]
    # The longest look-back's windows (its length check covers every member); each member's starts (n,) put the end
    # of its look-back at the same cutoff.
    longest = max(members, key=lambda m: m.input_size)
    hist, futr, _ = longest._lists()
    check_long_frame(df, "df", hist + futr, freq=longest.freq_)
    panels, starts = longest._rolling_windows(df, n_windows, step_size, static_df)
    member_starts = [starts + longest.input_size - m.input_size for m in members]
    sq, ab, count = 0.0, 0.0, 0
    for rows in np.array_split(np.arange(len(starts)), max(1, -(-len(starts) // 512))):
        fut = starts[rows, None] + longest.input_size + np.arange(forecaster.h)  # (n, h)
        forecasts = [m._forward_windows(panels, s[rows]) for m, s in zip(members, member_starts, strict=True)]
        point = np.mean([f[..., m._point_index()] for f, m in zip(forecasts, members, strict=True)], axis=0)
        error = point.astype(np.float64) - panels.y[fut]  # (n, h, C)
        sq, ab, count = sq + float((error**2).sum()), ab + float(np.abs(error).sum()), count + error.size
    return {"mse": sq / count, "mae": ab / count}
