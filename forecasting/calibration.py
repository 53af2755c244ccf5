"""The calibration of a fitted forecaster's intervals: conformal and CQR score tables, and the intervals they give.

A :class:`Calibration` holds what fit measured on windows the model was not trained on (the validation split, or
the last ``calibration_size`` steps that a first fit left out, :func:`calibrate_by_refit`); the score and quantile
arithmetic itself is in ``forecasting.intervals``. ``predict(level=...)`` turns the tables into bounds:

    conformal   point -/+ q_level(scores) * scale                   symmetric about the point forecast
    cqr         heads' [lo, hi] widened (or narrowed) by q_level(cqr_scores) * scale, per trained level
    quantile    the quantile heads themselves (no calibration)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.base import clone

from xlstm_seq.forecasting.intervals import (
    conformal_quantile,
    conformal_scores,
    cqr_scores,
    level_name,
    window_scale,
)
from xlstm_seq.forecasting.losses import lower_quantile
from xlstm_seq.forecasting.panels import Panels, build_panels, window_starts
from xlstm_seq.forecasting.settings import check_level_list
from xlstm_seq.forecasting.validation import drop_last_steps

if TYPE_CHECKING:
    from xlstm_seq.forecasting.forecaster import XLSTMForecaster


def lower_quantiles(quantiles: Sequence[float]) -> list[float]:
    """The lower quantile of each trained central level, in the order of the CQR score tables (widest first); a level
    is found by ``lower_quantile(level)``, never by a level rebuilt from a rounded quantile (100/3 would not survive
    that round trip)."""
    return [q for q in quantiles if q < 0.5]


def head_bounds(out: np.ndarray, quantiles: Sequence[float], lower_q: float) -> tuple[np.ndarray, np.ndarray]:
    """The quantile heads (n, h, C) of outputs (n, h, C, Q) bounding the central interval whose lower quantile is
    ``lower_q``: that head and its mirror (the trained ``quantiles`` are symmetric about 0.5)."""
    lower = list(quantiles).index(lower_q)
    return out[..., lower], out[..., len(quantiles) - 1 - lower]


@dataclass
class Calibration:
    """Sorted conformal scores of a fitted forecaster, measured on windows it was not trained on."""

    scores: np.ndarray
    """(n, h) float32: scaled absolute errors of the point forecast, sorted per horizon step (n windows x channels)."""
    cqr_scores: np.ndarray | None = None
    """(levels, n, h) float32: CQR scores of each trained central level (widest first), sorted per step; None for a
    point-loss model, which has no quantile heads."""

    @classmethod
    def measure(
        cls, y: np.ndarray, out: np.ndarray, y_inputs: np.ndarray, point: int, quantiles: Sequence[float] | None
    ) -> Calibration:
        """The tables of forecasts ``out`` (n, h, C, Q) of targets ``y`` (n, h, C) from look-backs ``y_inputs``
        (n, L, C); ``point`` indexes the point forecast in Q; ``quantiles``: the trained quantiles of a quantile
        model (None: no CQR table)."""
        scale = window_scale(y_inputs)  # (n, C)
        symmetric = conformal_scores(y, out[..., point], scale).astype(np.float32)
        if quantiles is None:
            return cls(symmetric)
        per_level = [cqr_scores(y, *head_bounds(out, quantiles, q), scale) for q in lower_quantiles(quantiles)]
        return cls(symmetric, np.stack(per_level).astype(np.float32))

    def bounds(
        self,
        method: str,
        levels: Sequence[float],
        point: np.ndarray,
        out: np.ndarray,
        scale: np.ndarray,
        quantiles: Sequence[float],
    ) -> tuple[dict[float, np.ndarray], dict[float, np.ndarray]]:
        """Lower and upper bounds (n, h, C) per level (sorted ascending) by ``method`` ("conformal" or "cqr") around
        ``point`` (n, h, C) or the heads of ``out`` (n, h, C, Q); ``scale`` (n, 1, C) is each window's look-back std.
        The wider level's interval always contains the narrower one's."""
        lo, hi = {}, {}
        trained = lower_quantiles(quantiles)
        for lv in levels:
            if method == "conformal":
                half = conformal_quantile(self.scores, lv)[None, :, None] * scale  # (n, h, C)
                lo[lv], hi[lv] = point - half, point + half
                continue
            table = self.cqr_scores[trained.index(lower_quantile(lv))]  # (n_cal, h)
            shift = conformal_quantile(table, lv)[None, :, None] * scale  # (n, h, C); < 0 narrows the heads
            head_lo, head_hi = head_bounds(out, quantiles, lower_quantile(lv))
            middle = (head_lo + head_hi) / 2  # a narrowed interval never turns inside out
            lo[lv], hi[lv] = np.minimum(head_lo - shift, middle), np.maximum(head_hi + shift, middle)
        for narrow, wide in zip(levels, levels[1:], strict=False):  # each level's own table: keep them nested
            lo[wide], hi[wide] = np.minimum(lo[wide], lo[narrow]), np.maximum(hi[wide], hi[narrow])
        return lo, hi


def forecast_columns(
    fc: XLSTMForecaster, panels: Panels, starts: np.ndarray, out: np.ndarray, level: Sequence[float] | None
) -> dict[str, np.ndarray]:
    """The forecast columns of ``fc``'s outputs ``out`` (n, h, C, Q) for the windows at ``starts``, each (n, h, C):
    the point forecast, then the lo bounds of ``level`` (widest first), then the hi bounds, built as
    ``fc.intervals`` says."""
    alias = fc.alias_
    point = out[..., fc._point_index()]  # (n, h, C)
    columns = {alias: point}
    levels = sorted(float(v) for v in (level if level is not None else []))
    if not levels:
        return columns
    if fc.intervals == "quantile":
        lo, hi = {}, {}
        for lv in levels:
            lo[lv], hi[lv] = head_bounds(out, fc.quantiles_, lower_quantile(lv))
    else:
        idx = starts[:, None] + np.arange(fc.input_size)  # (n, L)
        scale = window_scale(panels.y[idx])[:, None, :]  # (n, 1, C)
        lo, hi = fc.calibration_.bounds(fc.intervals, levels, point, out, scale, fc.quantiles_)
    for lv in reversed(levels):
        columns[f"{alias}-lo-{level_name(lv)}"] = lo[lv]
    for lv in levels:
        columns[f"{alias}-hi-{level_name(lv)}"] = hi[lv]
    return columns


def calibrate(fc: XLSTMForecaster, panels: Panels, starts: np.ndarray) -> Calibration:
    """The calibration of the fitted ``fc`` on the windows at ``starts`` of ``panels`` (see Calibration.measure)."""
    idx = starts[:, None] + np.arange(fc.input_size)  # (n, L)
    fut = starts[:, None] + fc.input_size + np.arange(fc.h)  # (n, h)
    out = fc._forward_windows(panels, starts)  # (n, h, C, Q)
    quantiles = fc.quantiles_ if fc.loss == "quantile" else None
    return Calibration.measure(panels.y[fut], out, panels.y[idx], fc._point_index(), quantiles)


def validation_windows(panels: Panels, input_size: int, h: int, val_size: int, limit: int = 4096) -> np.ndarray:
    """The calibration windows of a fit with a validation split: every window whose targets lie in the last
    ``val_size`` rows of a panel (at most ``limit``, spread evenly)."""
    starts = window_starts(panels, input_size, h, -val_size, 0)
    if len(starts) > limit:
        starts = starts[np.linspace(0, len(starts) - 1, limit).astype(int)]
    return starts


def calibrate_by_refit(
    fc: XLSTMForecaster, df: pd.DataFrame, static_df: pd.DataFrame | None
) -> tuple[Calibration, float]:
    """The calibration of ``fc`` without a validation split, and the seconds it took: a twin fitted without the last
    calibration_size steps of each series forecasts every window whose targets lie in them."""
    steps = fc._calibration_steps()
    head = drop_last_steps(df, steps)
    twin = clone(fc).set_params(intervals="quantile", track=False)
    twin.fit(head, static_df=static_df)
    hist, futr, stat = fc._lists()
    static = static_df if static_df is not None else twin.static_
    panels = build_panels(df, fc.mixing, hist, futr, stat, static, order=twin.series_, scale=twin.exog_scale_)
    calibration = calibrate(twin, panels, window_starts(panels, fc.input_size, fc.h, -steps, 0))
    return calibration, twin.fit_seconds_  # the extra fit; fit_seconds_ counts the final fit only


def check_level(fc: XLSTMForecaster, level: Sequence[float] | None) -> None:
    """Raises before any work when ``level`` cannot be served by the fitted forecaster ``fc``."""
    check_level_list(level, "level")
    if level is None or len(level) == 0:
        return
    for lv in level:
        if not 0 < float(lv) < 100:
            raise ValueError(f"each level must be a percentage in (0, 100), got {lv!r}")
    if fc.intervals in ("quantile", "cqr"):
        if fc.loss != "quantile":
            raise ValueError(
                f"level={list(level)} with intervals={fc.intervals!r} needs a model trained with "
                f"loss='quantile'; this one used loss={fc.loss!r} (intervals='conformal' works with every loss)"
            )
        for lv in level:
            if lower_quantile(lv) not in fc.quantiles_:
                raise ValueError(f"level {lv} was not trained; trained levels: {fc._levels()} (set level= before fit)")
    calibration = getattr(fc, "calibration_", None)
    if fc.intervals == "cqr" and (calibration is None or calibration.cqr_scores is None):
        raise ValueError(
            f"level={list(level)} with intervals='cqr' needs CQR scores, which fit computes for a quantile "
            f"model with intervals='conformal' or 'cqr'; this one was fitted without them: refit it"
        )
    if fc.intervals == "conformal" and calibration is None:
        raise ValueError(
            f"level={list(level)} needs conformal scores, but this forecaster was fitted without level= and "
            f"with loss={fc.loss!r}: set level=[...] (or loss='quantile') before fit"
        )
