"""Forecast accuracy metrics on numpy arrays: MSE, MAE, sMAPE, MASE and MSIS (as in the M4 competition)."""

from __future__ import annotations

import numpy as np


def _pair(y: np.ndarray, y_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, y_hat = np.asarray(y, dtype=np.float64), np.asarray(y_hat, dtype=np.float64)
    if y.shape != y_hat.shape:
        raise ValueError(f"y and y_hat must have the same shape, got {y.shape} and {y_hat.shape}")
    if y.size == 0:
        raise ValueError("y and y_hat are empty")
    return y, y_hat


def mse(y: np.ndarray, y_hat: np.ndarray) -> float:
    """Mean squared error."""
    y, y_hat = _pair(y, y_hat)
    return float(np.mean((y - y_hat) ** 2))


def mae(y: np.ndarray, y_hat: np.ndarray) -> float:
    """Mean absolute error."""
    y, y_hat = _pair(y, y_hat)
    return float(np.mean(np.abs(y - y_hat)))


def smape(y: np.ndarray, y_hat: np.ndarray) -> float:
    """Symmetric MAPE in percent (M4): mean of 200 |y - y_hat| / (|y| + |y_hat|); a 0/0 term counts as 0."""
    y, y_hat = _pair(y, y_hat)
    denom = np.abs(y) + np.abs(y_hat)
    terms = np.divide(200.0 * np.abs(y - y_hat), denom, out=np.zeros_like(denom), where=denom > 0)
    return float(np.mean(terms))


def mase(y: np.ndarray, y_hat: np.ndarray, y_train: np.ndarray, season: int = 1) -> float:
    """Mean absolute scaled error (M4): MAE of the forecast over the in-sample MAE of the seasonal naive
    forecast with period ``season`` on ``y_train``.

    Raises:
        ValueError: y_train has no more than ``season`` values, or its seasonal differences are all zero.
    """
    y, y_hat = _pair(y, y_hat)
    return float(np.mean(np.abs(y - y_hat)) / _seasonal_scale(y_train, season, "mase"))


def _seasonal_scale(y_train: np.ndarray, season: int, name: str) -> float:
    """In-sample MAE of the seasonal naive forecast: the scale of MASE and MSIS."""
    y_train = np.asarray(y_train, dtype=np.float64)
    if season < 1 or len(y_train) <= season:
        raise ValueError(f"{name} needs season >= 1 and more than season={season} training values, got {len(y_train)}")
    scale = float(np.mean(np.abs(y_train[season:] - y_train[:-season])))
    if scale == 0:
        raise ValueError(f"{name} is undefined: the training series has no seasonal variation (scale 0)")
    return scale


def msis(
    y: np.ndarray, lo: np.ndarray, hi: np.ndarray, y_train: np.ndarray, season: int = 1, level: float = 95
) -> float:
    """Mean scaled interval score (M4's interval metric, for level 95): the interval's width plus 2 / alpha times
    each miss, averaged over the horizon and scaled like MASE; lower is better. alpha = 1 - level / 100.

    Raises:
        ValueError: shapes differ, lo > hi somewhere, or the MASE scale is undefined (see ``mase``).
    """
    y, lo = _pair(y, lo)
    _, hi = _pair(y, hi)
    if np.any(lo > hi):
        raise ValueError("msis needs lo <= hi at every step")
    alpha = 1 - float(level) / 100
    score = (hi - lo) + 2 / alpha * (np.maximum(lo - y, 0) + np.maximum(y - hi, 0))
    return float(np.mean(score) / _seasonal_scale(y_train, season, "msis"))


def seasonal_naive(history: np.ndarray, h: int, season: int) -> np.ndarray:
    """Repeats the last ``season`` values of history (..., T) for h steps -> (..., h)."""
    history = np.asarray(history)
    if history.shape[-1] < season:
        raise ValueError(f"seasonal_naive needs at least season={season} values, got {history.shape[-1]}")
    last = history[..., -season:]
    reps = -(-h // season)
    return np.concatenate([last] * reps, axis=-1)[..., :h]
