"""`xlstm-seq forecast streaming`: StatefulXLSTMForecaster streaming over the test split, one observation at a time,
beside the windowed XLSTMForecaster and the naive forecasts; writes benchmarks/forecasting/streaming.md and a PNG.

Per cell (a long-horizon set of forecasting.datasets, its standard split, horizon h):

    stateful   each candidate setting is fitted on the training split with the validation split held out
               (early stopping); the candidate with the lowest validation MSE is kept. Its state then stands after
               the last validation row; over the test split it forecasts h steps, takes one new row per series
               with ``update``, forecasts again, ... (the rolling origin, one step at a time, nothing refitted)
    windowed   XLSTMForecaster with the library defaults (look-back ``input_size`` of the cell), fitted on the same
               rows with the same validation split, forecasting every test window from its own look-back (no refit)
    naive      the last value, and the seasonal naive forecast (the data set's season)

All four are scored on the same forecast origins: every test window whose h targets lie in the test split. The
update cost is timed at two history lengths (``replay`` sets the history, then ``cost_updates`` single-row updates
are timed), beside a from-scratch read of the same history.
"""

from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xlstm_seq.config import ConfigMixin
from xlstm_seq.forecasting import StatefulXLSTMForecaster, XLSTMForecaster
from xlstm_seq.forecasting.datasets import LongHorizonData, load_long_horizon
from xlstm_seq.forecasting.guardrails import GuardrailWarning
from xlstm_seq.tracking import create_tracker
from xlstm_seq_bench.forecasting.scoring import score_windows


@dataclass
class StreamingConfig(ConfigMixin):
    """Settings of `xlstm-seq forecast streaming` (configs/forecasting/streaming.yaml)."""

    cells: list[dict[str, Any]] = field(default_factory=lambda: [
        {"data": "ili", "h": 24, "input_size": 104, "candidates": [{"lags": 1}, {"lags": 4}],
         "cost_history": [200, 700]},
    ])  # fmt: skip
    """Per cell: data set, horizon h, the windowed model's look-back ``input_size``, the stateful ``candidates``
    (settings over ``stateful``; the lowest validation MSE is kept) and the two history lengths of the cost timing."""
    stateful: dict[str, Any] = field(default_factory=dict)
    """StatefulXLSTMForecaster settings common to every candidate (the library defaults otherwise)."""
    windowed: dict[str, Any] = field(default_factory=dict)
    """XLSTMForecaster settings over the library defaults (h and input_size come from the cell)."""
    cost_updates: int = 200
    """Single-row updates timed at each history length."""
    seed: int = 0
    num_threads: int = 1
    device: str = "cpu"
    out: str = "benchmarks/forecasting/streaming.md"
    experiment: str = "xlstm-seq-forecast-streaming"


@dataclass
class Candidate:
    """One stateful setting tried on the validation split."""

    settings: dict[str, Any]
    val_mse: float
    val_mae: float
    fit_seconds: float
    steps: int
    baselines: dict[str, float] = field(default_factory=dict)
    """Validation MSE of the naive and seasonal naive forecasts on the same origins (the fit's guardrail report)."""
    fired: bool = False
    """Whether the fit's guardrail warned (the model no better than the best baseline on validation)."""


@dataclass
class CellResult:
    """Test scores per method, the validation choice, the streaming check and the update cost of one cell."""

    data: str
    h: int
    input_size: int
    origins: int
    n_series: int
    season: int
    """The season of the seasonal naive forecast."""
    test_level: tuple[float, float]
    """Mean and largest value of the test split (standardised by the training rows: how far it lies from them)."""
    scores: dict[str, dict[str, float]]
    """method -> mse, mae, fit_seconds."""
    candidates: list[Candidate]
    chosen: int
    stream_vs_one_pass: float
    """Largest |forecast by update + predict - forecast of one pass from scratch| over the test origins."""
    update_seconds: float
    """All the test split's single-row updates together."""
    cost: list[dict[str, float]]
    """Per history length: rows, update_us (median per call), per_observation_us, network_us (the stack's step of
    every series, median), scratch_ms (from-scratch read)."""


def _origins(data: LongHorizonData, h: int) -> tuple[int, int]:
    """(first test row, number of test windows): window k forecasts rows first + k .. first + k + h - 1."""
    start, end = data.borders["test"]
    return start, end - start - h + 1


def _naive_scores(data: LongHorizonData, h: int) -> dict[str, dict[str, float]]:
    start, n = _origins(data, h)
    rows = start + np.arange(n)[:, None] + np.arange(h)  # (n, h) target rows
    actual = data.values[rows]  # (n, h, N)
    season = data.season
    seasonal = start + np.arange(n)[:, None] - season + np.arange(h) % season  # (n, h): the last season repeated
    forecasts = {"last value": data.values[rows[:, :1] - 1], "seasonal naive": data.values[seasonal]}
    return {name: _errors(np.broadcast_to(f, actual.shape), actual) | {"fit_seconds": 0.0}
            for name, f in forecasts.items()}  # fmt: skip


def _errors(forecast: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    error = forecast.astype(np.float64) - actual
    return {"mse": float((error**2).mean()), "mae": float(np.abs(error).mean())}


def _fit_candidates(config: StreamingConfig, cell: dict, train, val_size: int, season: int, track: bool):
    """Every candidate fitted on ``train`` with ``val_size`` held out; the candidates and the best fit."""
    results, best, best_fc = [], None, None
    for settings in cell["candidates"]:
        params = {**config.stateful, **settings, "h": int(cell["h"]), "random_seed": config.seed,
                  "season_length": season, "device": config.device, "progress": False, "track": track,
                  "experiment": config.experiment}  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GuardrailWarning)  # the page shows the guardrail's report
            fc = StatefulXLSTMForecaster(**params).fit(train, val_size=val_size)
        scores, report = fc.validation_scores_, fc.validation_report_
        baselines = {} if report is None else report.drop(index=fc.alias_)["mse"].to_dict()
        results.append(Candidate(settings, scores["mse"], scores["mae"], fc.fit_seconds_, fc.steps_trained_,
                                 baselines, bool(report is not None and report.attrs["fired"])))  # fmt: skip
        print(f"{cell['data']} h={cell['h']} stateful {settings}: validation MSE {scores['mse']:.4f} "
              f"({fc.fit_seconds_:.0f} s)", flush=True)  # fmt: skip
        if best is None or scores["mse"] < results[best].val_mse:
            best, best_fc = len(results) - 1, fc
    return results, best, best_fc


def _stream(fc: StatefulXLSTMForecaster, df, start: int, n: int) -> tuple[np.ndarray, float]:
    """Forecasts (N, n, h) from the test origins: predict, then update with the next row of every series, ...;
    the seconds spent in update."""
    rows = {ds: g for ds, g in df[(df["ds"] >= start) & (df["ds"] < start + n - 1)].groupby("ds")}
    out = np.empty((len(fc.series_), n, fc.h))
    spent = 0.0
    for k in range(n):
        out[:, k] = fc.predict()[fc.alias_].to_numpy().reshape(len(fc.series_), fc.h)
        if k < n - 1:
            began = time.perf_counter()
            fc.update(rows[start + k])
            spent += time.perf_counter() - began
    return out, spent


def _update_cost(fc: StatefulXLSTMForecaster, df, history: int, updates: int) -> dict[str, float]:
    """Median time of a single-row update (every series) after ``history`` rows, and of a from-scratch read of them."""
    head = df[df["ds"] < history]
    fc.replay(head)
    rows = {ds: g for ds, g in df[(df["ds"] >= history) & (df["ds"] < history + updates)].groupby("ds")}
    times = []
    for k in range(updates):
        began = time.perf_counter()
        fc.update(rows[history + k])
        times.append(time.perf_counter() - began)
    # The network's part of an update: one step of every series from the stored state (no frame checks).
    inputs = fc.recent_[:, None, :]  # (N, 1, lags)
    network = []
    with torch.no_grad():
        for _ in range(updates):
            began = time.perf_counter()
            fc.net_.encode(inputs, fc.state_)
            network.append(time.perf_counter() - began)
    scratch = []
    for _ in range(3):
        began = time.perf_counter()
        fc.predict(df=head)
        scratch.append(time.perf_counter() - began)
    per_call = float(np.median(times))
    return {"rows": history, "update_us": 1e6 * per_call, "per_observation_us": 1e6 * per_call / len(fc.series_),
            "network_us": 1e6 * float(np.median(network)), "scratch_ms": 1e3 * float(np.median(scratch))}  # fmt: skip


def run_cell(config: StreamingConfig, cell: dict, track: bool) -> CellResult:
    """Fits, streams and scores one cell (see the module docstring)."""
    data = load_long_horizon(cell["data"])
    h, L = int(cell["h"]), int(cell["input_size"])
    start, n = _origins(data, h)
    df = data.to_long(data.borders["test"][1], integer_ds=True)
    train = df[df["ds"] < start]
    val_size = data.borders["val"][1] - data.borders["val"][0]
    candidates, chosen, fc = _fit_candidates(config, cell, train, val_size, data.season, track)

    streamed, update_seconds = _stream(fc, df, start, n)
    one_pass = fc.forecast_steps(df[df["ds"] < start + n - 1], first=start - 1)  # (N, n, h)
    rows = start + np.arange(n)[:, None] + np.arange(h)  # (n, h)
    actual = data.values[rows].transpose(2, 0, 1)  # (N, n, h)
    scores = {"stateful (streamed)": _errors(streamed, actual) | {"fit_seconds": fc.fit_seconds_}}
    print(f"{cell['data']} h={h} stateful: test MSE {scores['stateful (streamed)']['mse']:.4f}", flush=True)

    windowed = XLSTMForecaster(**{**config.windowed, "h": h, "input_size": L, "random_seed": config.seed,
                                  "device": config.device, "progress": False, "track": track,
                                  "experiment": config.experiment, "guardrail": False})  # fmt: skip
    windowed.fit(train, val_size=val_size)
    scores["windowed (XLSTMForecaster defaults)"] = score_windows(windowed, df, n_windows=n) | {
        "fit_seconds": windowed.fit_seconds_}  # fmt: skip
    print(f"{cell['data']} h={h} windowed: test MSE {scores['windowed (XLSTMForecaster defaults)']['mse']:.4f}",
          flush=True)  # fmt: skip
    scores.update(_naive_scores(data, h))

    cost = [_update_cost(fc, df, int(rows_), config.cost_updates) for rows_ in cell["cost_history"]]
    test = data.values[data.borders["test"][0] : data.borders["test"][1]]
    return CellResult(cell["data"], h, L, n, len(fc.series_), data.season, (float(test.mean()), float(test.max())),
                      scores, candidates, chosen,
                      float(np.abs(streamed - one_pass).max()), update_seconds, cost)  # fmt: skip


def run_streaming(config: StreamingConfig, *, track: bool = True, command: str | None = None) -> Path:
    """Runs every cell and writes the page after each (a run stopped early leaves a page of what finished); returns
    its path."""
    from xlstm_seq_bench.forecasting.streaming_report import capture_provenance, write_report

    torch.set_num_threads(config.num_threads)
    provenance = capture_provenance(config, command)
    started = time.perf_counter()
    cells: list[CellResult] = []
    page = None
    with create_tracker(config.experiment, run_name="streaming-benchmark", enabled=track,
                        tags=provenance.tags()) as tracker:  # fmt: skip
        tracker.log_params({"cells": [c["data"] for c in config.cells], "seed": config.seed,
                            "num_threads": config.num_threads, "cost_updates": config.cost_updates})  # fmt: skip
        for cell in config.cells:
            result = run_cell(config, cell, track)
            cells.append(result)
            for method, s in result.scores.items():
                slug = re.sub(r"[^A-Za-z0-9]+", "_", method).strip("_")
                tracker.log_metrics({f"{result.data}-{result.h}/{slug}/{k}": v for k, v in s.items()})
            page = write_report(config, cells, time.perf_counter() - started, provenance.finish())
        if page is not None:
            tracker.log_artifact(page)
    return page
