"""The baseline guardrail: the model beside naive, seasonal naive and DLinear on the validation windows, the warning,
the opt-in fallback and its save/load."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from xlstm_seq.forecasting import XLSTMForecaster
from xlstm_seq.forecasting.guardrails import GuardrailWarning, naive_forecast, season_for_freq, seasonal_naive_forecast


def random_walks(n_series: int = 3, length: int = 160, seed: int = 0) -> pd.DataFrame:
    """Gaussian random walks: the last value is the best forecast there is."""
    rng = np.random.default_rng(seed)
    parts = [
        pd.DataFrame({"unique_id": f"w{i}", "ds": np.arange(length), "y": 50 + np.cumsum(rng.normal(0, 1, length))})
        for i in range(n_series)
    ]
    return pd.concat(parts, ignore_index=True)


@pytest.fixture
def walk_fit(tiny_fit) -> dict:
    return {**tiny_fit, "max_steps": 20}


def test_guardrail_fires_on_random_walks_with_both_numbers(walk_fit):
    df = random_walks()
    fc = XLSTMForecaster(**walk_fit)
    with pytest.warns(GuardrailWarning, match=r"not better than the naive baseline.*MAE [0-9.]+ vs [0-9.]+") as rec:
        fc.fit(df, val_size=18)
    report = fc.validation_report_
    assert list(report.index) == ["xLSTMTime", "naive", "dlinear"]  # integer steps: no season
    assert "seasonal naive left out" in report.attrs["note"]
    assert report.attrs["fired"] and report.attrs["best_baseline"] == "naive"
    assert report.loc["xLSTMTime", "score"] >= report.loc["naive", "score"]
    assert (report["windows"] == 3 * (18 - 6 + 1)).all()  # val_size - h + 1 windows per series
    text = str(rec[0].message)
    assert f"{report.loc['xLSTMTime', 'score']:.6g}" in text and f"{report.loc['naive', 'score']:.6g}" in text
    assert fc.served_ == "model"  # fallback is opt-in


@pytest.mark.filterwarnings("ignore::xlstm_seq.forecasting.guardrails.GuardrailWarning")  # DLinear may win here
def test_seasonal_series_the_model_or_seasonal_naive_beats_naive(frame, tiny_fit):
    df = frame(n_series=2, length=160)  # period 12 with a trend
    fc = XLSTMForecaster(**{**tiny_fit, "max_steps": 60}, season_length=12).fit(df, val_size=24)
    report = fc.validation_report_
    assert set(report.index) == {"xLSTMTime", "naive", "seasonal_naive", "dlinear"}
    best_of_season_aware = min(report.loc["xLSTMTime", "score"], report.loc["seasonal_naive", "score"])
    assert best_of_season_aware < report.loc["naive", "score"]
    assert report.attrs["best_baseline"] != "naive"


def test_fallback_serves_the_naive_forecast_exactly(walk_fit):
    df = random_walks()
    fc = XLSTMForecaster(**walk_fit, fallback="baseline")
    with pytest.warns(GuardrailWarning, match="predict serves the naive forecasts"):
        fc.fit(df, val_size=18)
    assert fc.served_ == "naive"
    out = fc.predict(level=[80])
    last = df.groupby("unique_id")["y"].last()
    np.testing.assert_allclose(out["xLSTMTime"], out["unique_id"].map(last))
    assert (out["xLSTMTime-lo-80"] < out["xLSTMTime"]).all() and (out["xLSTMTime-hi-80"] > out["xLSTMTime"]).all()
    cv = fc.cross_validation(df, n_windows=2, val_size=18)
    cutoff_y = df.set_index(["unique_id", "ds"])["y"]
    expected = [cutoff_y[(u, c)] for u, c in zip(cv["unique_id"], cv["cutoff"], strict=True)]
    np.testing.assert_allclose(cv["xLSTMTime"], expected)


def test_fallback_survives_save_and_load(walk_fit, tmp_path):
    df = random_walks()
    fc = XLSTMForecaster(**walk_fit, fallback="baseline")
    with pytest.warns(GuardrailWarning):
        fc.fit(df, val_size=18)
    loaded = XLSTMForecaster.load(fc.save(tmp_path / "model"))
    assert loaded.served_ == fc.served_ == "naive"
    pd.testing.assert_frame_equal(loaded.validation_report_, fc.validation_report_)
    pd.testing.assert_frame_equal(loaded.predict(level=[90]), fc.predict(level=[90]))


def test_a_served_dlinear_is_saved_beside_the_model(tmp_path):
    """A strong linear seasonal pattern that an untrained xLSTM misses: the fitted DLinear is served and saved."""
    t = np.arange(200)
    df = pd.DataFrame({"unique_id": "s", "ds": t, "y": 5 * np.sin(2 * np.pi * t / 7) + 0.05 * t})
    fc = XLSTMForecaster(h=7, input_size=28, patch_len=7, embedding_dim=8, num_blocks=1, num_heads=2, max_steps=1,
                         learning_rate=1e-6, progress=False, track=False, fallback="baseline")  # fmt: skip
    with pytest.warns(GuardrailWarning):
        fc.fit(df, val_size=21)
    assert fc.served_ == "dlinear"
    loaded = XLSTMForecaster.load(fc.save(tmp_path / "model"))
    assert (tmp_path / "model" / "baseline" / "model.safetensors").is_file()
    pd.testing.assert_frame_equal(loaded.predict(), fc.predict())
    np.testing.assert_allclose(fc.predict()["xLSTMTime"], fc.guardrail_.dlinear.predict()["DLinear"])


def test_guardrail_scores_are_logged_to_the_mlflow_run(walk_fit, mlflow_in_tmp):
    fc = XLSTMForecaster(**{**walk_fit, "track": True})
    with pytest.warns(GuardrailWarning):
        fc.fit(random_walks(), val_size=18)
    runs = mlflow.search_runs(experiment_names=[fc.experiment], output_format="list")
    data = runs[0].data
    assert data.metrics["guardrail/naive/score"] == pytest.approx(fc.validation_report_.loc["naive", "score"])
    assert data.tags["guardrail.fired"] == "True" and data.tags["guardrail.served"] == "model"


def test_no_validation_split_no_report(walk_fit):
    fc = XLSTMForecaster(**walk_fit).fit(random_walks())
    assert fc.validation_report_ is None and fc.served_ == "model"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"fallback": "naive"}, "fallback must be one of"),
        ({"season_length": 0}, "season_length must be None or a positive integer"),
        ({"guardrail": False, "fallback": "baseline"}, "fallback='baseline' needs guardrail=True"),
    ],
)
def test_bad_guardrail_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        XLSTMForecaster(**settings)


def test_baseline_forecasts_and_seasons():
    y = np.arange(10, dtype=float).reshape(1, 10, 1)
    np.testing.assert_array_equal(naive_forecast(y, 3)[0, :, 0], [9, 9, 9])
    np.testing.assert_array_equal(seasonal_naive_forecast(y, 5, 3)[0, :, 0], [7, 8, 9, 7, 8])
    assert [season_for_freq(f) for f in ("h", "D", "W-SUN", "MS", "15min", 1, None, "2h")] == [
        24, 7, 52, 12, 96, None, None, None
    ]  # fmt: skip
