"""AirPassengers side by side: our xLSTM backbones against neuralforecast and statsforecast on one split.

A small, classic setting: train on the first 132 months, forecast the last 12, look-back 24, 200 training steps,
seeds 1-3, CPU. Every model is fitted and timed in this process, on the same torch threads. A peer whose package is
missing, or that fails, gets a row that says so: neuralforecast comes with the benchmark suite's ``forecast`` extra;
statsforecast and the official ``xlstm`` (which neuralforecast's xLSTM wraps) with its ``compare`` extra, whose
statsforecast pins pandas < 3, so that extra lives in an environment of its own.

    xlstm-seq forecast airpassengers --config configs/forecasting/air_passengers.yaml
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xlstm_seq.config import ConfigMixin
from xlstm_seq.tracking.provenance import Provenance, cpu_model, visible_cores

if TYPE_CHECKING:
    import pandas

NF_PEERS = ("nf_lstm", "nf_nhits", "nf_xlstm_mlstm", "nf_xlstm_slstm")
SF_PEERS = ("sf_autoarima", "sf_autoets")
BACKBONES = ("mlstm", "slstm", "mixed")
SEASON = 12


@dataclass
class AirPassengersConfig(ConfigMixin):
    """Settings of the AirPassengers comparison."""

    h: int = 12
    """Months held out and forecast."""
    input_size: int = 24
    """Look-back in months, for every trained model."""
    max_steps: int = 200
    """Training steps, for every trained model."""
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    backbones: list[str] = field(default_factory=lambda: list(BACKBONES))
    """Our xlstm_time forecaster once per backbone."""
    patch_len: int = 6
    embedding_dim: int = 32
    learning_rate: float = 3e-3
    """Ours: the quickstart's settings (examples/forecast_quickstart.py), not tuned for this table."""
    peers: list[str] = field(default_factory=lambda: [*NF_PEERS, *SF_PEERS])
    """neuralforecast models (their defaults, with this look-back and step budget) and statsforecast models."""
    num_threads: int = 1
    """torch threads for every model."""
    out: str = "benchmarks/forecasting/air_passengers.md"
    experiment: str = "xlstm-seq-forecast-air-passengers"

    def __post_init__(self) -> None:
        for name in ("h", "input_size", "max_steps", "num_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")
        unknown = sorted(set(self.backbones) - set(BACKBONES)) + sorted(set(self.peers) - {*NF_PEERS, *SF_PEERS})
        if unknown:
            raise ValueError(f"unknown backbone(s) or peer(s) {unknown}; backbones {BACKBONES}, peers "
                             f"{NF_PEERS + SF_PEERS}")  # fmt: skip


@dataclass
class Row:
    """One model's results over the seeds (one entry for a deterministic model)."""

    name: str
    package: str
    mae: list[float] = field(default_factory=list)
    smape: list[float] = field(default_factory=list)
    mase: list[float] = field(default_factory=list)
    fit_seconds: list[float] = field(default_factory=list)
    forecast: np.ndarray | None = None  # (h,) of the first seed, for the plot
    failure: str | None = None


def _split(config: AirPassengersConfig) -> tuple[pandas.DataFrame, pandas.DataFrame]:
    from xlstm_seq.forecasting.datasets import load_air_passengers

    df = load_air_passengers()
    return df.iloc[: -config.h].reset_index(drop=True), df.iloc[-config.h :].reset_index(drop=True)


def _score(row: Row, y: np.ndarray, y_hat: np.ndarray, train_y: np.ndarray, seconds: float) -> None:
    from xlstm_seq.forecasting.metrics import mae, mase, smape

    row.mae.append(mae(y, y_hat))
    row.smape.append(smape(y, y_hat))
    row.mase.append(mase(y, y_hat, train_y, SEASON))
    row.fit_seconds.append(seconds)
    if row.forecast is None:
        row.forecast = np.asarray(y_hat, dtype=np.float64)


def _ours(config: AirPassengersConfig, backbone: str, seed: int, train) -> tuple[np.ndarray, float]:
    from xlstm_seq.forecasting.forecaster import XLSTMForecaster

    fc = XLSTMForecaster(h=config.h, input_size=config.input_size, model="xlstm_time", backbone=backbone,
                         patch_len=config.patch_len, embedding_dim=config.embedding_dim,
                         num_blocks=_blocks(backbone), loss="mae", max_steps=config.max_steps,
                         learning_rate=config.learning_rate, random_seed=seed, progress=False, track=False,
                         device="cpu")  # fmt: skip
    started = time.perf_counter()  # the whole fit call, as for the peers (not only its training loop)
    fc.fit(train)
    seconds = time.perf_counter() - started
    return fc.predict()[fc.alias_].to_numpy(), seconds


def _blocks(backbone: str) -> int:
    return 2 if backbone == "mixed" else 1  # mixed alternates an mLSTM and an sLSTM block


def _neuralforecast_model(name: str, config: AirPassengersConfig, seed: int):
    from neuralforecast import models

    common = dict(h=config.h, input_size=config.input_size, max_steps=config.max_steps, random_seed=seed,
                  enable_progress_bar=False, enable_model_summary=False, logger=False, accelerator="cpu")  # fmt: skip
    if name == "nf_lstm":
        return models.LSTM(**common)
    if name == "nf_nhits":
        return models.NHITS(**common)
    return models.xLSTM(backbone="mLSTM" if name == "nf_xlstm_mlstm" else "sLSTM", **common)


def _neuralforecast(name: str, config: AirPassengersConfig, seed: int, train) -> tuple[np.ndarray, float]:
    from neuralforecast import NeuralForecast

    model = _neuralforecast_model(name, config, seed)
    nf = NeuralForecast(models=[model], freq="MS")
    started = time.perf_counter()
    nf.fit(train)
    seconds = time.perf_counter() - started
    return nf.predict()[str(model)].to_numpy(), seconds


def _statsforecast(name: str, config: AirPassengersConfig, train) -> tuple[np.ndarray, float]:
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS

    model = AutoARIMA(season_length=SEASON) if name == "sf_autoarima" else AutoETS(season_length=SEASON)
    sf = StatsForecast(models=[model], freq="MS")
    started = time.perf_counter()
    sf.fit(train)
    seconds = time.perf_counter() - started
    return sf.predict(h=config.h)[str(model)].to_numpy(), seconds


LABELS = {
    "nf_lstm": ("LSTM (neuralforecast)", "neuralforecast"),
    "nf_nhits": ("NHITS (neuralforecast)", "neuralforecast"),
    "nf_xlstm_mlstm": ("xLSTM, mLSTM backbone (neuralforecast + official xlstm)", "neuralforecast"),
    "nf_xlstm_slstm": ("xLSTM, sLSTM backbone (neuralforecast + official xlstm)", "neuralforecast"),
    "sf_autoarima": ("AutoARIMA (statsforecast)", "statsforecast"),
    "sf_autoets": ("AutoETS (statsforecast)", "statsforecast"),
}


def capture_provenance(config: AirPassengersConfig, command: str | None = None) -> Provenance:
    """The comparison's provenance, taken as it starts (``command``: the line that reruns it; None: this process's):
    this CPU with the torch threads every model gets, and the versions of pandas and the peers."""
    device = (f"{cpu_model()} (CPU, {visible_cores()} cores visible), CPU only, {config.num_threads} torch thread(s) "
              "for every model")  # fmt: skip
    return Provenance.capture(command, packages=("pandas", "neuralforecast", "statsforecast", "xlstm"),
                              threads=config.num_threads, device=device)  # fmt: skip


def run_air_passengers(
    config: AirPassengersConfig | None = None, *, track: bool = True, out=print, command: str | None = None
) -> list[Row]:
    """Fits every model of ``config`` on the same split; writes ``config.out`` (and a PNG beside it), naming
    ``command``, the command line that reruns it (None: this process's)."""
    import torch

    from xlstm_seq.forecasting.metrics import seasonal_naive

    config = config or AirPassengersConfig()
    provenance = capture_provenance(config, command)  # the revision that runs, even if the checkout changes meanwhile
    train, test = _split(config)
    y, train_y = test["y"].to_numpy(), train["y"].to_numpy()
    threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    rows: list[Row] = []
    try:
        for backbone in config.backbones:
            row = Row(f"xLSTMTime, {backbone} backbone, {_blocks(backbone)} block(s) (ours)", "xlstm-seq")
            for seed in config.seeds:
                y_hat, seconds = _ours(config, backbone, seed, train)
                _score(row, y, y_hat, train_y, seconds)
            rows.append(row)
        for name in config.peers:
            label, package = LABELS[name]
            row = Row(label, package)
            for seed in config.seeds if name in NF_PEERS else config.seeds[:1]:
                try:
                    if name in NF_PEERS:
                        y_hat, seconds = _neuralforecast(name, config, seed, train)
                    else:
                        y_hat, seconds = _statsforecast(name, config, train)
                except ImportError as err:
                    row.failure = f"not installed here: {str(err)[:100]}"
                    break
                except Exception as err:  # a peer failing is a measurement to report, not a reason to stop
                    row.failure = f"fails on this CPU: {type(err).__name__}: {str(err)[:120]}"
                    break
                _score(row, y, y_hat, train_y, seconds)
            rows.append(row)
        naive = Row(f"seasonal naive ({SEASON})", "xlstm-seq")
        _score(naive, y, seasonal_naive(train_y, config.h, SEASON), train_y, 0.0)
        rows.append(naive)
    finally:
        torch.set_num_threads(threads)
    provenance = provenance.finish()
    _log(config, rows, track, provenance)
    text = markdown(config, rows, len(train), provenance)
    if config.out:
        Path(config.out).parent.mkdir(parents=True, exist_ok=True)
        Path(config.out).write_text(text)
        figure(config, rows, train, test).savefig(Path(config.out).with_suffix(".png"), dpi=110, bbox_inches="tight")
        out(f"wrote {config.out}")
    out(text)
    return rows


def _log(config: AirPassengersConfig, rows: list[Row], track: bool, provenance: Provenance) -> None:
    from xlstm_seq.tracking import create_tracker

    for row in rows:
        with create_tracker(config.experiment, run_name=row.name, enabled=track, tags=provenance.tags()) as tracker:
            tracker.log_params({"model": row.name, "package": row.package, "h": config.h,
                                "input_size": config.input_size, "max_steps": config.max_steps,
                                "seeds": str(config.seeds), "failure": row.failure or ""})  # fmt: skip
            if row.mae:
                tracker.log_metrics({"test/mae": float(np.mean(row.mae)), "test/smape": float(np.mean(row.smape)),
                                     "test/mase": float(np.mean(row.mase)),
                                     "fit/seconds": float(np.mean(row.fit_seconds))})  # fmt: skip


def markdown(config: AirPassengersConfig, rows: list[Row], n_train: int, provenance: Provenance) -> str:
    """The comparison's table under the header of ``provenance`` (:func:`capture_provenance`, finished)."""
    from xlstm_seq_bench.forecasting.long_horizon_report import mean_std

    lines = [
        "# AirPassengers: our xLSTM backbones beside neuralforecast and statsforecast",
        "",
        *provenance.markdown(),
        f"- split: train on the first {n_train} months, forecast the last {config.h}; look-back "
        f"{config.input_size} and {config.max_steps} training steps for every trained model; seeds {config.seeds} "
        "(statsforecast and seasonal naive are deterministic: one run)",
        f"- ours: xlstm_time (RevIN, decomposition, patch {config.patch_len}, {config.embedding_dim}-dim, one "
        f"block (mixed: two), MAE loss, lr {config.learning_rate}): the quickstart's settings, not tuned on this "
        "split; neuralforecast's models: their defaults with the same look-back and steps",
        "- fit s: wall-clock seconds of the whole fit call (mean over seeds); MAE in passengers (thousands); "
        f"MASE scaled by the in-sample seasonal naive ({SEASON}) error",
        "",
        "| model | package | MAE (mean ± std) | MAE per seed | sMAPE % | MASE | fit s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.failure:
            lines.append(f"| {row.name} | {row.package} | {row.failure} | - | - | - | - |")
            continue
        per_seed = " / ".join(f"{v:.1f}" for v in row.mae)
        lines.append(
            f"| {row.name} | {row.package} | {mean_std(row.mae, 1)} | {per_seed} | {mean_std(row.smape, 2)} | "
            f"{mean_std(row.mase, 3)} | {np.mean(row.fit_seconds):.1f} |"
        )
    lines += ["", f"![forecasts of the first seed]({Path(config.out).with_suffix('.png').name})", ""]
    return "\n".join(lines)


def figure(config: AirPassengersConfig, rows: list[Row], train, test):
    """The last three years of history, the held-out year and every model's forecast (first seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(13, 4.5))
    history = train.iloc[-36:]
    ax.plot(history["ds"], history["y"], color="0.45", lw=1.2, label="history")
    ax.plot(test["ds"], test["y"], color="k", lw=2, label="actual")
    for row in rows:
        if row.forecast is not None:
            ours = row.package == "xlstm-seq" and "naive" not in row.name
            ax.plot(test["ds"], row.forecast, lw=1.8 if ours else 1.0, ls="-" if ours else "--",
                    label=f"{row.name}: MAE {row.mae[0]:.1f}")  # fmt: skip
    ax.set_ylabel("passengers (thousands)")
    ax.set_title(f"AirPassengers, last {config.h} months held out (seed {config.seeds[0]})", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: the lines stay visible
    fig.tight_layout()
    plt.close(fig)
    return fig
