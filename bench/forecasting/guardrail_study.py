"""The guardrail study of `xlstm-seq forecast auto`: fits with ``fallback="baseline"`` on series where the last value
is hard to beat (seeded Gaussian random walks, and M4 Weekly from the data root), how often the guardrail fired,
and what serving the baseline changed on the held-out test windows.

Each fit holds out the last ``val_size`` steps of the training part for early stopping and the guardrail; the test
windows come after the training part and are never seen by the fit or the guardrail.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from xlstm_seq.forecasting import XLSTMForecaster
from xlstm_seq.forecasting.guardrails import GuardrailWarning, naive_forecast
from xlstm_seq.forecasting.validation import drop_last_steps


@dataclass
class GuardrailFit:
    """One fit of the study: what the guardrail saw on validation and what the test windows said."""

    data: str
    fired: bool
    served: str
    val_model: float
    val_best_baseline: float
    best_baseline: str
    test_model: float
    test_served: float
    test_naive: float
    seconds: float


def test_errors(fc: XLSTMForecaster, df: pd.DataFrame, n_windows: int, step: int, scaled: bool) -> tuple[float, ...]:
    """(model, served, naive) MSE over the last ``n_windows`` windows of each series of ``df`` (``step`` apart), each
    window divided by its look-back's std when ``scaled`` (series on different scales weigh alike)."""
    panels, starts = fc._rolling_windows(df, n_windows, step, None)
    idx = starts[:, None] + np.arange(fc.input_size)
    fut = starts[:, None] + fc.input_size + np.arange(fc.h)
    y, inputs = panels.y[fut].astype(np.float64), panels.y[idx]
    scale = inputs.std(axis=1)[:, None, :] if scaled else np.ones((len(starts), 1, y.shape[2]))
    scale = np.where(scale > 0, scale, 1.0)
    model = fc._forward_windows(panels, starts)[..., fc._point_index()]
    served = fc._served_columns(panels, starts, None)[fc.alias_]
    naive = naive_forecast(inputs, fc.h)
    return tuple(float(np.mean(((f - y) / scale) ** 2)) for f in (model, served, naive))


def _fit(name: str, fc: XLSTMForecaster, train: pd.DataFrame, full: pd.DataFrame, val_size: int, n_windows: int,
         step: int) -> GuardrailFit:  # fmt: skip
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GuardrailWarning)  # the study records what fired
        fc.fit(train, val_size=val_size)
    seconds = time.perf_counter() - started
    report = fc.validation_report_
    best = report.attrs["best_baseline"]
    model, served, naive = test_errors(fc, full, n_windows, step, bool(fc.scale_loss))
    return GuardrailFit(name, bool(report.attrs["fired"]), fc.served_, float(report.loc[fc.alias_, "score"]),
                        float(report.loc[best, "score"]), best, model, served, naive, seconds)  # fmt: skip


def random_walks(n_series: int, length: int, seed: int) -> pd.DataFrame:
    """``n_series`` Gaussian random walks of ``length`` steps (integer ds), seeded; each starts at 100."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 1.0, (n_series, length))
    return pd.DataFrame({"unique_id": np.repeat([f"walk{i}" for i in range(n_series)], length),
                         "ds": np.tile(np.arange(length), n_series),
                         "y": (100 + np.cumsum(steps, axis=1)).reshape(-1)})  # fmt: skip


def split_tail(df: pd.DataFrame, steps: int) -> pd.DataFrame:
    """``df`` without the last ``steps`` rows of each series."""
    return drop_last_steps(df, steps).reset_index(drop=True)


def random_walk_fits(settings: dict, n_sets: int, n_series: int, length: int, test_windows: int,
                     seed: int) -> list[GuardrailFit]:  # fmt: skip
    """One fit per seeded set of random walks (seeds seed, seed + 1, ...): library defaults but for ``settings``."""
    fits = []
    for s in range(n_sets):
        full = random_walks(n_series, length, seed + s)
        fc = XLSTMForecaster(**settings, fallback="baseline", random_seed=seed + s)
        h = fc.h
        train = split_tail(full, test_windows * h)
        fits.append(_fit(f"random walks {seed + s}", fc, train, full, 2 * h, test_windows, h))
    return fits


def m4_weekly_fits(settings: dict, n_groups: int, seed: int) -> tuple[list[GuardrailFit], int, int]:
    """One global fit per group of M4 Weekly series (series i goes to group i mod n_groups), the M4 test horizon
    scored; series too short for input_size + h + val_size rows are left out. Returns the fits, the series used and
    the series left out."""
    from xlstm_seq.forecasting import load_m4

    train, test, h, _ = load_m4("weekly", download=False)
    L = settings["input_size"]
    sizes = train.groupby("unique_id", sort=False).size()
    kept = sizes[sizes >= L + h + 2 * h].index
    ids = list(kept)
    fits = []
    for g in range(n_groups):
        group = set(ids[g::n_groups])
        tr = train[train["unique_id"].isin(group)].reset_index(drop=True)
        full = pd.concat([tr, test[test["unique_id"].isin(group)]]).sort_values(["unique_id", "ds"], kind="stable")
        fc = XLSTMForecaster(h=h, **settings, fallback="baseline", random_seed=seed + g)
        fits.append(_fit(f"M4 Weekly group {g}", fc, tr, full.reset_index(drop=True), 2 * h, 1, h))
    return fits, len(ids), len(sizes) - len(ids)
