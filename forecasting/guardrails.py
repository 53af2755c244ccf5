"""Baseline guardrails: a fitted forecaster is scored beside the naive, seasonal naive and DLinear forecasts on the
same validation windows, and it warns (or, with ``fallback="baseline"``, serves the best baseline) when it is not
better than the best of them.

The validation windows are those of the fit's validation split: every window whose h targets lie in the last
``val_size`` steps of a series (``val_size - h + 1`` windows per series, one step apart, the last ending at the
series end: ``cross_validation``'s windows with ``step_size=1``), at most 4096 spread evenly. The look-back of each
window reaches into the training rows, so every window has ``input_size`` inputs whatever ``val_size`` is.

    naive            the last observed value, repeated h times
    seasonal_naive   the last ``season`` values repeated (season from ``season_length`` or the frame's freq); left
                     out, and named in the report's note, when the season is 1, unknown, or longer than input_size
    dlinear          our DLinear, fitted on the same training rows with early stopping on the same windows

The score that decides is the fit's validation loss (``valid_loss``, else ``loss``; a quantile model is scored by
the MAE of its median), on the data scale, or divided by each window's look-back std when ``scale_loss`` is set, so
that every forecaster is compared on the number the model's own early stopping followed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.base import clone

from xlstm_seq.forecasting.calibration import Calibration, validation_windows
from xlstm_seq.forecasting.intervals import level_name, window_scale
from xlstm_seq.forecasting.metrics import seasonal_naive
from xlstm_seq.forecasting.panels import Panels

if TYPE_CHECKING:
    from xlstm_seq.forecasting.forecaster import XLSTMForecaster

NAIVE, SEASONAL_NAIVE, DLINEAR = "naive", "seasonal_naive", "dlinear"
BASELINES = (NAIVE, SEASONAL_NAIVE, DLINEAR)

# Seasons of the common pandas offsets (the base alias, without a multiple): one day of hours, one week of days,
# one year of weeks, months or quarters. Minute data takes one day of steps (see season_for_freq).
_SEASONS = {"h": 24, "H": 24, "D": 7, "B": 5, "W": 52, "M": 12, "MS": 12, "ME": 12, "Q": 4, "QS": 4, "QE": 4}


class GuardrailWarning(UserWarning):
    """A fitted forecaster was not better than a simple baseline on its validation windows."""


def season_for_freq(freq: str | int | None) -> int | None:
    """The seasonal period a frame's frequency suggests (hourly 24, daily 7, weekly 52, monthly 12, quarterly 4,
    k-minute data one day's steps); None for an integer step or an alias without a known season."""
    if freq is None or isinstance(freq, int):
        return None
    from pandas.tseries.frequencies import to_offset

    offset = to_offset(freq)
    base = offset.rule_code.split("-")[0]
    if base in ("min", "T"):
        return max(1, 24 * 60 // offset.n)
    if offset.n == 1:
        return _SEASONS.get(base)
    return None


def naive_forecast(y_inputs: np.ndarray, h: int) -> np.ndarray:
    """Look-backs (n, L, C) -> the last value repeated, (n, h, C)."""
    return np.repeat(y_inputs[:, -1:], h, axis=1)


def seasonal_naive_forecast(y_inputs: np.ndarray, h: int, season: int) -> np.ndarray:
    """Look-backs (n, L, C) -> the last ``season`` values repeated, (n, h, C); needs L >= season."""
    by_channel = seasonal_naive(np.moveaxis(y_inputs, 1, -1), h, season)  # (n, C, h)
    return np.moveaxis(by_channel, -1, 1)


def guardrail_metric(fc: XLSTMForecaster) -> str:
    """The point metric the guardrail compares on: the fit's validation loss ("mae" for a quantile model)."""
    metric = fc.valid_loss or fc.loss
    return "mae" if metric == "quantile" else metric


def window_errors(y: np.ndarray, y_hat: np.ndarray, y_inputs: np.ndarray, scaled: bool) -> dict[str, float]:
    """MSE and MAE of forecasts y_hat against y (n, h, C), each window divided by its look-back's std (n, L, C)
    when ``scaled``."""
    err = np.asarray(y_hat, np.float64) - np.asarray(y, np.float64)
    if scaled:
        err = err / window_scale(y_inputs)[:, None, :]
    return {"mse": float(np.mean(err**2)), "mae": float(np.mean(np.abs(err)))}


@dataclass
class Guardrail:
    """What the guardrail measured in one fit, and which forecaster predict serves."""

    report: pd.DataFrame
    """One row per forecaster (the model first): ``mse``, ``mae``, ``score`` (the deciding metric), ``windows``."""
    metric: str
    """The metric of ``score``: "mae" or "mse"."""
    best_baseline: str | None
    """The baseline with the lowest score (None when none could be scored)."""
    fired: bool
    """The model's score was not below the best baseline's."""
    served: str
    """"model", or the baseline name that predict serves (``fallback="baseline"`` and the guardrail fired)."""
    note: str
    """What was left out and why (empty when every baseline was scored)."""
    calibration: Calibration | None = None
    """Conformal scores of the served baseline's errors on the validation windows (intervals of a fallback)."""
    dlinear: XLSTMForecaster | None = None
    """The fitted DLinear of the comparison, kept when it is served."""

    def message(self, alias: str, val_size: int, h: int) -> str:
        """The warning text: both numbers, where they were measured, and what predict serves."""
        model = self.report.loc[alias, "score"]
        best = self.report.loc[self.best_baseline, "score"]
        windows = int(self.report.loc[alias, "windows"])
        served = (
            f"predict serves the {self.best_baseline} forecasts (fallback='baseline')"
            if self.served != "model"
            else "pass fallback='baseline' to serve the baseline instead"
        )
        note = f"; {self.note}" if self.note else ""
        return (
            f"{alias} is not better than the {self.best_baseline} baseline on the validation windows: "
            f"{self.metric.upper()} {model:.6g} vs {best:.6g} ({windows} windows of h={h} in the last "
            f"val_size={val_size} steps of each series); {served}{note}"
        )


def dlinear_twin(fc: XLSTMForecaster) -> XLSTMForecaster:
    """DLinear with the forecaster's data settings (look-back, horizon, exogenous columns, loss), the long-horizon
    grid's DLinear optimisation (learning rate 5e-3, no dropout, early stopping after 3 checks without improvement,
    here at most 500 steps checked every 50), and no guardrail or tracking of its own."""
    return clone(fc).set_params(
        model="dlinear", alias="DLinear", learning_rate=5e-3, dropout=0.0, weight_decay=0.0, ema_decay=None,
        max_steps=500, val_check_steps=50, early_stop_patience_steps=3, ensemble=1,
        freq_loss_weight=0.0, horizon_loss_decay=0.0, augment_freq_mask=0.0, revin_subtract_last=False,
        guardrail=False, fallback="none", track=False, progress=False,
    )  # fmt: skip


def run_guardrail(
    fc: XLSTMForecaster,
    df: pd.DataFrame,
    static_df: pd.DataFrame | None,
    val_size: int,
    panels: Panels,
    model_forecast: np.ndarray | None = None,
) -> Guardrail:
    """Scores the fitted ``fc`` and the baselines on the validation windows of ``panels`` (fit's panels of ``df``,
    whose last ``val_size`` steps per series were held out), warns when the model is not better, and says what
    predict serves.

    Args:
        model_forecast: the model's point forecasts (n, h, C) of the validation windows, when the caller has them
            (a search scores a trial this way); None forecasts them with ``fc``.
    """
    L, h = fc.input_size, fc.h
    starts = validation_windows(panels, L, h, val_size)
    idx = starts[:, None] + np.arange(L)  # (n, L)
    fut = starts[:, None] + L + np.arange(h)  # (n, h)
    y_inputs, y = panels.y[idx], panels.y[fut]  # (n, L, C), (n, h, C)
    metric, scaled = guardrail_metric(fc), bool(fc.scale_loss)
    if model_forecast is None:
        model_forecast = fc._forward_windows(panels, starts)[..., fc._point_index()]
    forecasts = {fc.alias_: model_forecast, NAIVE: naive_forecast(y_inputs, h)}
    notes = []
    season = fc.season_length or season_for_freq(fc.freq_)
    if season is None or season <= 1:
        notes.append(f"seasonal naive left out: no season (freq={fc.freq_!r}; set season_length)")
    elif season > L:
        notes.append(f"seasonal naive left out: season_length {season} > input_size {L}")
    else:
        forecasts[SEASONAL_NAIVE] = seasonal_naive_forecast(y_inputs, h, season)
    dlinear = None
    if fc.model == "dlinear":
        notes.append("DLinear left out: it is the model")
    else:
        dlinear = dlinear_twin(fc).fit(df, static_df=static_df, val_size=val_size)
        forecasts[DLINEAR] = dlinear._forward_windows(panels, starts)[..., dlinear._point_index()]
    rows = {}
    for name, y_hat in forecasts.items():
        errors = window_errors(y, y_hat, y_inputs, scaled)
        rows[name] = {**errors, "score": errors[metric], "windows": len(starts)}
    report = pd.DataFrame.from_dict(rows, orient="index")
    report.index.name = "forecaster"
    baselines = report.drop(index=fc.alias_)
    best = str(baselines["score"].idxmin())
    fired = not report.loc[fc.alias_, "score"] < baselines.loc[best, "score"]
    served = best if fired and fc.fallback == "baseline" else "model"
    calibration = None
    if served != "model":
        symmetric = Calibration.measure(y, forecasts[best][..., None], y_inputs, 0, None)
        calibration = Calibration(symmetric.scores)
    guard = Guardrail(report, metric, best, fired, served, "; ".join(notes), calibration,
                      dlinear if served == DLINEAR else None)  # fmt: skip
    if fired:
        warnings.warn(guard.message(fc.alias_, val_size, h), GuardrailWarning, stacklevel=3)
    return guard


def baseline_columns(fc: XLSTMForecaster, panels: Panels, starts: np.ndarray, level) -> dict[str, np.ndarray]:
    """The forecast columns (as ``forecast_columns``, under the model's alias) of the baseline that ``fc`` serves,
    for the windows at ``starts``; intervals are conformal, from the baseline's own validation errors."""
    guard = fc.guardrail_
    L, h = fc.input_size, fc.h
    y_inputs = panels.y[starts[:, None] + np.arange(L)]  # (n, L, C)
    if guard.served == NAIVE:
        point = naive_forecast(y_inputs, h)
    elif guard.served == SEASONAL_NAIVE:
        point = seasonal_naive_forecast(y_inputs, h, fc.season_length or season_for_freq(fc.freq_))
    else:
        point = guard.dlinear._forward_windows(panels, starts)[..., guard.dlinear._point_index()]
    point = point.astype(np.float64)
    columns = {fc.alias_: point}
    levels = sorted(float(v) for v in (level if level is not None else []))
    if not levels:
        return columns
    scale = window_scale(y_inputs)[:, None, :]  # (n, 1, C)
    lo, hi = guard.calibration.bounds("conformal", levels, point, point[..., None], scale, [0.5])
    for lv in reversed(levels):
        columns[f"{fc.alias_}-lo-{level_name(lv)}"] = lo[lv]
    for lv in levels:
        columns[f"{fc.alias_}-hi-{level_name(lv)}"] = hi[lv]
    return columns
