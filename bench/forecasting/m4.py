"""M4 Hourly and Weekly: one global xLSTM forecaster per frequency, scored like the M4 competition.

    xlstm-seq forecast m4 --config configs/forecasting/m4.yaml

For each group the forecaster is fitted on every train series (the last h steps of each held out for early
stopping and for calibrating the conformal intervals), forecasts the test horizon from the end of each train
series, and is scored by sMAPE and MASE averaged over series, and by OWA relative to Naive2, next to Naive,
seasonal naive and Naive2 (M4's benchmark: naive on the seasonally adjusted series). The coverage of the 80/95 %
intervals is reported both from the quantile heads and from split-conformal calibration. Writes
benchmarks/forecasting/m4.md and logs each group to MLflow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xlstm_seq.config import ConfigMixin
from xlstm_seq_bench.forecasting.m4_peers import PEERS
from xlstm_seq_bench.forecasting.m4_report import capture_provenance, figure, markdown

if TYPE_CHECKING:
    import pandas


@dataclass
class M4ModelConfig(ConfigMixin):
    """Forecaster and peer settings for one M4 group."""

    input_size: int = 168
    """Look-back (steps)."""
    patch_len: int = 24
    """Steps per token."""
    max_steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 3e-3
    embedding_dim: int = 64
    num_blocks: int = 2
    val_check_steps: int = 100
    early_stop_patience_steps: int = 5
    """Validation checks without improvement before stopping (-1: never)."""
    peers: list[str] = field(default_factory=lambda: list(PEERS))
    """Peers fitted on the same series (m4_peers.py): statsforecast's AutoETS, AutoTheta and AutoARIMA
    (season as in M4) and neuralforecast's NHITS (our look-back and step budget); [] for none."""

    def __post_init__(self) -> None:
        for name in ("input_size", "patch_len", "max_steps", "batch_size", "embedding_dim", "num_blocks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        unknown = sorted(set(self.peers) - set(PEERS))
        if unknown:
            raise ValueError(f"unknown peer(s) {unknown}; peers are {list(PEERS)}")


@dataclass
class M4Config(ConfigMixin):
    """Settings of `xlstm-seq forecast m4`."""

    groups: list[str] = field(default_factory=lambda: ["hourly", "weekly"])
    """M4 groups to run: "hourly" (h 48, season 24) and/or "weekly" (h 13, season 1)."""
    hourly: M4ModelConfig = field(default_factory=M4ModelConfig)
    weekly: M4ModelConfig = field(default_factory=lambda: M4ModelConfig(input_size=52, patch_len=4))
    model: str = "xlstm_time"
    backbone: str = "mlstm"
    level: list[int] = field(default_factory=lambda: [80, 95])
    """Interval levels whose coverage is reported."""
    max_series: int | None = None
    """Use only the first N series of each group (quick runs and tests); None: all."""
    random_seed: int = 0
    num_threads: int = 1
    """torch threads (restored afterwards)."""
    out: str = "benchmarks/forecasting/m4.md"
    """Markdown written at the end ('' writes nothing)."""
    experiment: str = "xlstm-seq-forecast-m4"
    """MLflow experiment."""

    def __post_init__(self) -> None:
        from xlstm_seq.forecasting.datasets import M4_GROUPS

        bad = [g for g in self.groups if g not in M4_GROUPS]
        if bad or not self.groups:
            raise ValueError(f"groups must be a non-empty list from {sorted(M4_GROUPS)}, got {self.groups}")
        if self.max_series is not None and self.max_series < 1:
            raise ValueError(f"max_series must be None or >= 1, got {self.max_series}")
        if self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}")


# ---------------------------------------------------------------------------------------------- baselines
def seasonality_test(y: np.ndarray, season: int) -> bool:
    """M4's 90 % autocorrelation test: is the lag-``season`` autocorrelation of y significant?"""
    y = np.asarray(y, dtype=np.float64)
    if season <= 1 or len(y) < 3 * season:
        return False
    d = y - y.mean()
    denom = float((d**2).sum())
    if denom == 0:
        return False
    acf = np.array([float((d[k:] * d[:-k]).sum()) / denom for k in range(1, season + 1)])  # lags 1..season
    limit = 1.645 * np.sqrt((1 + 2 * float((acf[:-1] ** 2).sum())) / len(y))
    return bool(abs(acf[-1]) > limit)


def seasonal_indices(y: np.ndarray, season: int) -> np.ndarray:
    """Multiplicative seasonal indices (season,) of classical decomposition, position = t mod season, mean 1."""
    y = np.asarray(y, dtype=np.float64)
    # A 2 x season centred moving average for an even season, a plain one for an odd season.
    weights = np.r_[0.5, np.ones(season - 1), 0.5] / season if season % 2 == 0 else np.ones(season) / season
    trend = np.convolve(y, weights, mode="valid")  # (n - len(weights) + 1,)
    offset = (len(weights) - 1) // 2
    ratio = y[offset : offset + len(trend)] / trend
    pos = (np.arange(len(trend)) + offset) % season
    idx = np.array([ratio[pos == p].mean() for p in range(season)])
    return idx / idx.mean()


def naive2(y: np.ndarray, h: int, season: int) -> np.ndarray:
    """M4's Naive2: the last value of the seasonally adjusted series, reseasonalised when the series passes
    :func:`seasonality_test` (else plain naive) -> (h,)."""
    y = np.asarray(y, dtype=np.float64)
    if not seasonality_test(y, season):
        return np.repeat(y[-1], h)
    idx = seasonal_indices(y, season)
    n = len(y)
    level = y[-1] / idx[(n - 1) % season]
    return level * idx[(n + np.arange(h)) % season]


# ---------------------------------------------------------------------------------------------- run
def _scores(y: dict, forecasts: dict, train: dict, season: int) -> dict[str, float]:
    """Mean over series of sMAPE and MASE (M4 averages per-series scores)."""
    from xlstm_seq.forecasting.metrics import mase, smape

    s = [smape(y[u], forecasts[u]) for u in y]
    m = [mase(y[u], forecasts[u], train[u], season) for u in y]
    return {"smape": float(np.mean(s)), "mase": float(np.mean(m))}


def run_group(group: str, config: M4Config, *, track: bool = True, out=print, tags: dict | None = None) -> dict:
    """Fits and scores one M4 group; returns the rows of its table and run facts. ``tags``: of its MLflow run (the
    run's provenance)."""
    from xlstm_seq.forecasting.datasets import load_m4
    from xlstm_seq.forecasting.forecaster import XLSTMForecaster
    from xlstm_seq.forecasting.metrics import seasonal_naive
    from xlstm_seq.tracking import create_tracker
    from xlstm_seq_bench.forecasting.m4_peers import run_peer

    settings: M4ModelConfig = getattr(config, group)
    train_df, test_df, h, season = load_m4(group)
    if config.max_series is not None:
        keep = train_df["unique_id"].drop_duplicates().iloc[: config.max_series]
        train_df = train_df[train_df["unique_id"].isin(keep)].reset_index(drop=True)
        test_df = test_df[test_df["unique_id"].isin(keep)].reset_index(drop=True)
    train, test = _by_series(train_df, "y"), _by_series(test_df, "y")
    if set(train) != set(test) or any(len(v) != h for v in test.values()):
        raise ValueError(f"M4 {group}: the test file must hold h={h} values for every train series")
    fc = XLSTMForecaster(
        h=h, input_size=settings.input_size, model=config.model, backbone=config.backbone,
        patch_len=settings.patch_len, embedding_dim=settings.embedding_dim, num_blocks=settings.num_blocks,
        loss="quantile", level=config.level, intervals="conformal", scale_loss=True, max_steps=settings.max_steps,
        batch_size=settings.batch_size, learning_rate=settings.learning_rate, val_check_steps=settings.val_check_steps,
        early_stop_patience_steps=settings.early_stop_patience_steps, random_seed=config.random_seed,
        progress=True, track=track, experiment=config.experiment,
    )  # fmt: skip
    fc.fit(train_df, val_size=h)
    # One fit, three kinds of interval around the same median (INTERVAL_KINDS); the point forecast is shared.
    interval_frames = tuple(fc.set_params(intervals=kind).predict(level=config.level) for kind in INTERVAL_KINDS)
    fc.set_params(intervals="conformal")
    alias = fc.alias_
    forecasts = _by_series(interval_frames[0], alias)

    started = time.perf_counter()
    naive = {u: np.repeat(v[-1], h) for u, v in train.items()}
    snaive = {u: seasonal_naive(v, h, season) for u, v in train.items()}
    n2 = {u: naive2(v, h, season) for u, v in train.items()}
    baseline_seconds = time.perf_counter() - started
    ref = _scores(test, n2, train, season)
    truth = test_df.rename(columns={"y": "y_test"})

    def row_for(method: str, package: str, fcst: dict | None, seconds: float | None, failure: str | None = None):
        row = {"method": method, "package": package, "fit_seconds": seconds, "failure": failure, "intervals": {}}
        if fcst is not None:
            row.update(_scores(test, fcst, train, season))
            row["owa"] = 0.5 * (row["smape"] / ref["smape"] + row["mase"] / ref["mase"])
        return row

    ours = row_for(f"{alias} ({config.backbone}, global)", "xlstm-seq", forecasts, fc.fit_seconds_)
    for kind, frame in zip(INTERVAL_KINDS, interval_frames, strict=True):
        ours["intervals"][kind] = _interval_scores(frame, alias, truth, train, season, config.level)
    rows = [ours]
    for peer in settings.peers:
        result = run_peer(peer, train_df, h, season, config.level, input_size=settings.input_size,
                          max_steps=settings.max_steps, seed=config.random_seed, n_jobs=config.num_threads)  # fmt: skip
        out(f"M4 {group}: {result.name} ({result.package}) " + (result.failure or f"took {result.seconds:.1f} s"))
        fcst = None if result.frame is None else _by_series(result.frame, result.name)
        row = row_for(result.name, result.package, fcst, result.seconds, result.failure)
        if result.frame is not None and f"{result.name}-lo-{config.level[0]}" in result.frame.columns:
            row["intervals"]["model"] = _interval_scores(result.frame, result.name, truth, train, season,
                                                         config.level)  # fmt: skip
        rows.append(row)
    rows += [
        row_for("Naive", "-", naive, None),
        row_for(f"Seasonal naive (m={season})", "-", snaive, None),
        row_for("Naive2", "-", n2, baseline_seconds),
    ]
    facts = {"series": len(train), "h": h, "season": season, "steps": fc.steps_trained_,
             "best_val": fc.best_val_loss_, "settings": settings.to_dict()}  # fmt: skip
    with create_tracker(config.experiment, run_name=f"m4-{group}", enabled=track, tags=tags) as tracker:
        tracker.log_params({"group": group, "series": len(train), "h": h, **settings.to_dict(),
                            "peers": ",".join(settings.peers)})  # fmt: skip
        for row in rows:
            if row["failure"] is None:
                key = row["method"].split(" ")[0].lower()
                tracker.log_metrics({f"{key}/smape": row["smape"], f"{key}/mase": row["mase"],
                                     f"{key}/owa": row["owa"]})  # fmt: skip
                for kind, scores in row["intervals"].items():
                    tracker.log_metrics({f"{key}/{kind}_{name}": v for name, v in scores.items()})
    for row in rows:
        if row["failure"] is None:
            out(f"M4 {group}: {row['method']}: sMAPE {row['smape']:.3f}, MASE {row['mase']:.3f}, OWA {row['owa']:.3f}")
    return {"rows": rows, "facts": facts}


INTERVAL_KINDS = ("conformal", "cqr", "quantile")


def _by_series(frame: pandas.DataFrame, column: str) -> dict[str, np.ndarray]:
    """``column`` of each series of a long frame, in the frame's order of series."""
    return {u: g[column].to_numpy() for u, g in frame.groupby("unique_id", sort=False)}


def _interval_scores(frame, column: str, truth, train: dict, season: int, levels: list[int]) -> dict[str, float]:
    """Coverage of each level's interval ('80', '95') and, with 95 among the levels, M4's MSIS ('msis'), averaged
    over series."""
    from xlstm_seq.forecasting.intervals import interval_coverage
    from xlstm_seq.forecasting.metrics import msis

    merged = frame.merge(truth, on=["unique_id", "ds"], how="inner")
    scores = {str(lv): interval_coverage(merged, column, lv, target="y_test") for lv in levels}
    if 95 in levels:
        scores["msis"] = float(np.mean([
            msis(g["y_test"].to_numpy(), g[f"{column}-lo-95"].to_numpy(), g[f"{column}-hi-95"].to_numpy(), train[u],
                 season, 95)
            for u, g in merged.groupby("unique_id", sort=False)
        ]))  # fmt: skip
    return scores


def run_m4(
    config: M4Config | None = None, *, track: bool = True, out=print, command: str | None = None
) -> dict[str, dict]:
    """Runs every group of ``config`` and writes the markdown (``config.out``, naming ``command``, the command line
    that reruns it; None: this process's); returns the results per group."""
    import torch

    from xlstm_seq.tracking import create_tracker

    config = config or M4Config()
    provenance = capture_provenance(config, command)  # the revision that runs, even if the checkout changes meanwhile
    threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    started = time.perf_counter()
    try:
        results = {
            group: run_group(group, config, track=track, out=out, tags=provenance.tags()) for group in config.groups
        }
    finally:
        torch.set_num_threads(threads)
    wall = time.perf_counter() - started
    provenance = provenance.finish()
    plot = figure(results)
    if config.out:
        Path(config.out).parent.mkdir(parents=True, exist_ok=True)
        Path(config.out).write_text(markdown(config, results, wall, provenance))
        plot.savefig(Path(config.out).with_suffix(".png"), dpi=100, bbox_inches="tight")
        out(f"wrote {config.out}")
    with create_tracker(config.experiment, run_name="m4-summary", enabled=track, tags=provenance.tags()) as tracker:
        tracker.log_figure(plot, "m4")
    return results
