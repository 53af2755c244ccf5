"""The peers of `xlstm-seq forecast m4`: statsforecast's automatic models and neuralforecast's NHITS on one M4 group.

Each peer forecasts the test horizon from the end of every train series, as ours does, and returns its frame in
Nixtla's long format (``unique_id, ds, <name>[, <name>-lo/hi-<level>]``). statsforecast comes with the ``compare``
extra and neuralforecast with its ``forecast`` extra; a peer whose package is missing, or that fails, is reported
as such in the table rather than stopping the run (both are measurements too).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas

SF_PEERS = ("sf_autoets", "sf_autotheta", "sf_autoarima")
NF_PEERS = ("nf_nhits",)
PEERS = SF_PEERS + NF_PEERS

LABELS = {
    "sf_autoets": ("AutoETS", "statsforecast"),
    "sf_autotheta": ("AutoTheta", "statsforecast"),
    "sf_autoarima": ("AutoARIMA", "statsforecast"),
    "nf_nhits": ("NHITS", "neuralforecast"),
}


@dataclass
class PeerResult:
    """One peer's forecast frame (None when it could not run) and the wall-clock seconds of fit plus forecast."""

    name: str
    package: str
    frame: pandas.DataFrame | None
    seconds: float | None
    failure: str | None = None


def run_peer(
    peer: str, train_df: pandas.DataFrame, h: int, season: int, level: list[int], *, input_size: int, max_steps: int,
    seed: int, n_jobs: int,
) -> PeerResult:  # fmt: skip
    """Fits ``peer`` on ``train_df`` (integer ds, one row per step) and forecasts h steps after every series."""
    name, package = LABELS[peer]
    try:
        if peer in SF_PEERS:
            frame, seconds = _statsforecast(peer, train_df, h, season, level, n_jobs)
        else:
            frame, seconds = _nhits(train_df, h, input_size, max_steps, seed)
    except ImportError as err:
        return PeerResult(name, package, None, None, f"not installed here ({err.name or err})")
    except Exception as err:  # a peer failing is a measurement to report, not a reason to stop
        return PeerResult(name, package, None, None, f"failed: {type(err).__name__}: {str(err)[:120]}")
    return PeerResult(name, package, frame, seconds)


def _statsforecast(peer: str, train_df, h: int, season: int, level: list[int], n_jobs: int):
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta

    model = {"sf_autoets": AutoETS, "sf_autotheta": AutoTheta, "sf_autoarima": AutoARIMA}[peer](season_length=season)
    sf = StatsForecast(models=[model], freq=1, n_jobs=n_jobs)
    started = time.perf_counter()
    frame = sf.forecast(df=train_df, h=h, level=list(level))  # fits and forecasts every series in one call
    seconds = time.perf_counter() - started
    return _long(frame.rename(columns={str(model): LABELS[peer][0]})), seconds


def _nhits(train_df, h: int, input_size: int, max_steps: int, seed: int):
    from neuralforecast import NeuralForecast
    from neuralforecast.models import NHITS

    # Scaled per window (median and interquartile range), as ours is by RevIN: M4 series differ in level by orders
    # of magnitude, and NHITS's default (no scaling) scored below Naive2 on Hourly in a first run (MASE 3.65).
    model = NHITS(h=h, input_size=input_size, max_steps=max_steps, scaler_type="robust", random_seed=seed,
                  enable_progress_bar=False, enable_model_summary=False, logger=False, accelerator="cpu")  # fmt: skip
    nf = NeuralForecast(models=[model], freq=1)
    started = time.perf_counter()
    nf.fit(train_df)
    seconds = time.perf_counter() - started
    return _long(nf.predict().rename(columns={str(model): "NHITS"})), seconds


def _long(frame: pandas.DataFrame) -> pandas.DataFrame:
    """Nixtla frames keep unique_id as the index in some versions and as a column in others: make it a column."""
    return frame.reset_index() if "unique_id" not in frame.columns else frame.reset_index(drop=True)
