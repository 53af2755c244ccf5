"""Split-conformal prediction intervals and their empirical coverage.

A forecaster's quantile heads are fitted to the training windows, which a small model can nearly memorise, so
their intervals come out too narrow on new data (AirPassengers: the 80 % band covered 5 of 12 held-out months).
Split-conformal calibration instead measures the errors of the fitted model on windows it was not trained on:

    score = |y - y_hat| / scale        per calibration window, channel and horizon step (h,)
    width = q_level(score) * scale     the finite-sample (n + 1) quantile of the n scores of that step

``scale`` is the standard deviation of the window's look-back (the statistic RevIN normalises by), so scores of
series on different levels are comparable and one global model gets one table of scores.

Conformalized quantile regression (CQR, Romano et al., NeurIPS 2019) keeps the quantile heads' shape (asymmetric,
wider where the model is unsure) and corrects their coverage instead:

    score = max(lo - y, y - hi) / scale     negative inside the heads' interval, positive outside
    interval = [lo - q_level(score) * scale, hi + q_level(score) * scale]

one table per level, as each level has its own pair of heads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

INTERVAL_METHODS = ("conformal", "cqr", "quantile")


def window_scale(y_inputs: np.ndarray) -> np.ndarray:
    """Scale of each window and channel: the std of look-back y_inputs (n, L, C) -> (n, C); 1 where it is 0."""
    std = np.asarray(y_inputs, dtype=np.float64).std(axis=1)
    return np.where(std > 0, std, 1.0)


def conformal_scores(y: np.ndarray, y_hat: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Scaled absolute errors of y and y_hat (n, h, C) over scale (n, C) -> scores (n * C, h), sorted per step."""
    y, y_hat = np.asarray(y, dtype=np.float64), np.asarray(y_hat, dtype=np.float64)
    if y.shape != y_hat.shape or y.ndim != 3:
        raise ValueError(f"y and y_hat must both be (n, h, C), got {y.shape} and {y_hat.shape}")
    if scale.shape != (y.shape[0], y.shape[2]):
        raise ValueError(f"scale must be (n, C) = {(y.shape[0], y.shape[2])}, got {scale.shape}")
    scores = np.abs(y - y_hat) / scale[:, None, :]  # (n, h, C)
    return np.sort(scores.transpose(0, 2, 1).reshape(-1, y.shape[1]), axis=0)  # (n * C, h)


def cqr_scores(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """CQR scores of y and the heads' bounds lo, hi (n, h, C) over scale (n, C) -> (n * C, h), sorted per step."""
    y, lo, hi = (np.asarray(a, dtype=np.float64) for a in (y, lo, hi))
    if not (y.shape == lo.shape == hi.shape and y.ndim == 3):
        raise ValueError(f"y, lo and hi must all be (n, h, C), got {y.shape}, {lo.shape} and {hi.shape}")
    scores = np.maximum(lo - y, y - hi) / scale[:, None, :]  # (n, h, C)
    return np.sort(scores.transpose(0, 2, 1).reshape(-1, y.shape[1]), axis=0)  # (n * C, h)


def conformal_quantile(scores: np.ndarray, level: float) -> np.ndarray:
    """Per-step half-width (h,) in scale units for a central ``level`` % interval from sorted scores (n, h).

    The ceil((n + 1) * level / 100)-th smallest score: with exchangeable windows the interval covers a new value
    with probability >= level %. When n is too small for that rank the largest score is used (coverage then
    falls short of the guarantee; more calibration windows fix it).
    """
    if not 0 < float(level) < 100:
        raise ValueError(f"each level must be a percentage in (0, 100), got {level!r}")
    n = scores.shape[0]
    if n == 0:
        raise ValueError("no calibration scores: the forecaster was not calibrated")
    rank = min(int(np.ceil((n + 1) * float(level) / 100)), n)
    return scores[rank - 1]


def interval_coverage(frame: pd.DataFrame, alias: str, level: float, target: str = "y") -> float:
    """Share of rows of a cross-validation frame whose ``target`` lies inside ``<alias>-lo/hi-<level>``."""
    name = str(int(level)) if float(level).is_integer() else str(level)
    lo, hi = f"{alias}-lo-{name}", f"{alias}-hi-{name}"
    missing = [c for c in (target, lo, hi) if c not in frame.columns]
    if missing:
        raise ValueError(f"interval_coverage needs columns {missing}; the frame has {list(frame.columns)}")
    y = frame[target].to_numpy()
    return float(np.mean((y >= frame[lo].to_numpy()) & (y <= frame[hi].to_numpy())))


def check_method(method: str) -> None:
    if method not in INTERVAL_METHODS:
        raise ValueError(f"intervals must be one of {INTERVAL_METHODS}, got {method!r}")


def level_name(level: float) -> str:
    return str(int(level)) if float(level).is_integer() else str(level)


def sorted_levels(level: Sequence[float] | None) -> list[float]:
    return sorted(float(v) for v in (level or []))
