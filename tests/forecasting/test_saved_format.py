"""A forecaster saved by earlier code (tests/forecasting/fixtures, format_version 1, written before forecaster.py
was split) loads with today's code and forecasts exactly what it forecast then, intervals included."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xlstm_seq.forecasting import XLSTMForecaster

FIXTURES = Path(__file__).parent / "fixtures"
METHODS = ("conformal", "cqr", "quantile")


@pytest.fixture
def saved() -> XLSTMForecaster:
    return XLSTMForecaster.load(FIXTURES / "saved_forecaster")


@pytest.fixture
def stored() -> pd.DataFrame:
    return pd.read_csv(FIXTURES / "saved_forecast.csv", parse_dates=["ds"])


def test_an_old_save_forecasts_what_it_forecast_when_saved(saved, stored):
    point = saved.predict()
    assert list(point.columns) == ["unique_id", "ds", "xLSTMTime"]
    assert point["unique_id"].tolist() == stored["unique_id"].tolist()
    assert (point["ds"] == stored["ds"]).all()
    np.testing.assert_allclose(point["xLSTMTime"], stored["xLSTMTime"], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_an_old_save_keeps_its_calibrated_intervals(saved, stored, method):
    frame = saved.set_params(intervals=method).predict(level=[80])
    assert list(frame.columns) == ["unique_id", "ds", "xLSTMTime", "xLSTMTime-lo-80", "xLSTMTime-hi-80"]
    for side in ("lo", "hi"):
        np.testing.assert_allclose(
            frame[f"xLSTMTime-{side}-80"], stored[f"xLSTMTime-{side}-80-{method}"], rtol=1e-6, atol=1e-6
        )
    assert (frame["xLSTMTime-lo-80"] <= frame["xLSTMTime-hi-80"]).all()


def test_an_old_save_serves_new_frames_and_saves_again(saved, stored, tmp_path):
    assert saved.conformal_scores_.shape[1] == saved.h and saved.cqr_scores_ is not None
    history = saved.history_.copy()
    again = saved.predict(df=history, static_df=saved.static_, level=[80])
    np.testing.assert_allclose(again["xLSTMTime"], stored["xLSTMTime"], rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="was not trained"):
        saved.set_params(intervals="quantile").predict(level=[95])
    copy = shutil.copytree(FIXTURES / "saved_forecaster", tmp_path / "copy")
    saved.set_params(intervals="conformal").save(copy)
    reloaded = XLSTMForecaster.load(copy)
    pd.testing.assert_frame_equal(reloaded.predict(level=[80]), saved.predict(level=[80]))
