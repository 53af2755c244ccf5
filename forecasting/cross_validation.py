"""Cross-validation of an XLSTMForecaster in Nixtla's sense: fit on the rows before each cutoff, forecast the window
after it, and return the forecasts beside the actual values (``cutoff`` and ``y`` columns).

The estimator's ``cross_validation`` method is this function; it lives here with its argument checks so that the
estimator's file holds the fitting and forecasting it builds on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from xlstm_seq.forecasting.panels import long_frame
from xlstm_seq.forecasting.settings import check_level_list, check_settings
from xlstm_seq.forecasting.validation import ID, check_long_frame

if TYPE_CHECKING:
    from xlstm_seq.forecasting.forecaster import XLSTMForecaster


def _refit_every(refit: object, n_windows: int) -> int:
    """Windows forecast by each fit: refit False -> all of them, True -> 1, an int k -> k."""
    if isinstance(refit, (bool, np.bool_)):
        return 1 if refit else n_windows
    if isinstance(refit, (int, np.integer)) and refit >= 1:
        return int(refit)
    raise ValueError(f"refit must be True, False or an integer >= 1 (refit every that many windows), got {refit!r}")


def _step(step_size: object, h: int) -> int:
    if step_size is None:
        return h
    if isinstance(step_size, bool) or not isinstance(step_size, (int, np.integer)) or step_size < 1:
        raise ValueError(f"step_size must be None (h) or an integer >= 1, got {step_size!r}")
    return int(step_size)


def cross_validation(
    fc: XLSTMForecaster,
    df: pd.DataFrame,
    n_windows: int = 1,
    step_size: int | None = None,
    h: int | None = None,
    static_df: pd.DataFrame | None = None,
    val_size: int = 0,
    level: Sequence[float] | None = None,
    refit: bool | int = False,
) -> pd.DataFrame:
    """See :meth:`XLSTMForecaster.cross_validation`, which calls this with the forecaster as ``fc``."""
    if h is not None and h != fc.h:
        raise ValueError(f"cross_validation h={h} differs from the forecaster's h={fc.h}")
    if isinstance(n_windows, bool) or not isinstance(n_windows, (int, np.integer)) or n_windows < 1:
        raise ValueError(f"n_windows must be an integer >= 1, got {n_windows!r}")
    every = _refit_every(refit, n_windows)
    step = _step(step_size, fc.h)
    check_settings(fc)
    check_level_list(level, "level")
    if level is not None and len(level) and fc.intervals != "quantile" and not fc._wants_calibration():
        raise ValueError(
            f"level={list(level)} needs conformal scores: set level=[...] (or loss='quantile') on the forecaster "
            f"so that each fit calibrates them"
        )
    hist, futr, _ = fc._lists()
    check_long_frame(df, "df", hist + futr, freq=fc.freq)
    sizes = df.groupby(ID, sort=False).size()
    need = fc.input_size + fc.h + fc._held_out_steps(val_size) + (n_windows - 1) * step + fc.h
    short = sizes[sizes < need]
    if len(short):
        raise ValueError(
            f"series {short.index[0]!r} has {int(short.iloc[0])} rows but cross_validation needs {need}: "
            f"input_size + h (+ val_size or calibration_size) before the first cutoff, then "
            f"(n_windows - 1) * step_size + h ({len(short)} series too short)"
        )
    pos = df.groupby(ID, sort=False).cumcount().to_numpy()
    all_starts, parts, panels = [], [], None
    for first in range(0, n_windows, every):
        held_out = (n_windows - 1 - first) * step + fc.h  # rows after the cutoff of window `first`
        fc.fit(df[pos < df[ID].map(sizes).to_numpy() - held_out], static_df=static_df, val_size=val_size)
        fc._check_level(level)
        windows = range(first, min(first + every, n_windows))
        panels, starts = fc._rolling_windows(df, n_windows, step, static_df, windows=windows)
        all_starts.append(starts)
        parts.append(fc._served_columns(panels, starts, level))
    starts = np.concatenate(all_starts)
    order = np.argsort(starts, kind="stable")  # by panel, then time, as one fit would give
    columns = {name: np.concatenate([p[name] for p in parts])[order] for name in parts[0]}
    return long_frame(panels, columns, starts[order], fc.input_size, fc.ds_kind_ == "datetime", cutoffs=True)
