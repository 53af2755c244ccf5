"""score_windows: the long-horizon benchmark's MSE and MAE over many windows, of one forecaster or the mean point
forecast of an ensemble, equal to what the forecasts of ``XLSTMForecaster.forecast_windows`` give."""

from __future__ import annotations

import numpy as np
import pytest

from xlstm_seq.forecasting import XLSTMForecaster
from xlstm_seq_bench.forecasting.scoring import score_windows

H, L = 6, 24
TINY = dict(h=H, input_size=L, embedding_dim=8, num_blocks=1, num_heads=2, max_steps=4, batch_size=8, patch_len=8,
            progress=False, track=False)  # fmt: skip


def _forecaster(model, backbone, mixing, **kwargs):
    return XLSTMForecaster(model=model, backbone=backbone, mixing=mixing, **{**TINY, **kwargs})


def test_window_scores_are_those_of_the_window_forecasts(frame):
    df = frame(n_series=3, length=60)
    fc = _forecaster("xlstm_time", "mlstm", "variates").fit(df)
    y, y_hat = fc.forecast_windows(df, n_windows=4, step_size=3)
    scores = score_windows(fc, df, n_windows=4, step_size=3)
    assert scores["mse"] == pytest.approx(float(((y - y_hat[..., 0]) ** 2).mean()), rel=1e-5)
    assert scores["mae"] == pytest.approx(float(np.abs(y - y_hat[..., 0]).mean()), rel=1e-5)


def test_a_quantile_model_is_scored_by_its_median(frame):
    df = frame(n_series=2, length=60)
    fc = _forecaster("xlstm_time", "mlstm", "independent", loss="quantile", level=[80]).fit(df)
    y, y_hat = fc.forecast_windows(df, n_windows=3)
    median = y_hat[..., fc.quantiles_.index(0.5)]
    assert score_windows(fc, df, n_windows=3)["mae"] == pytest.approx(float(np.abs(y - median).mean()), rel=1e-5)


def test_many_windows_are_scored_in_chunks_as_one(frame):
    df = frame(n_series=2, length=600)
    fc = _forecaster("dlinear", "mlstm", "independent").fit(df)
    y, y_hat = fc.forecast_windows(df, n_windows=570)  # 1140 windows: three chunks of at most 512
    scores = score_windows(fc, df, n_windows=570)
    assert scores["mse"] == pytest.approx(float(((y - y_hat[..., 0].astype(np.float64)) ** 2).mean()), rel=1e-9)


def test_an_unfitted_forecaster_is_named(frame):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        score_windows(_forecaster("dlinear", "mlstm", "independent"), frame(length=60), n_windows=2)


def test_window_scores_of_an_ensemble_average_the_members_point_forecasts(frame):
    df = frame(n_series=2, length=60)
    a = _forecaster("xlstm_time", "mlstm", "independent", random_seed=0).fit(df)
    b = _forecaster("xlstm_time", "mlstm", "independent", random_seed=1).fit(df)
    y, y_hat_a = a.forecast_windows(df, n_windows=3, step_size=4)
    _, y_hat_b = b.forecast_windows(df, n_windows=3, step_size=4)
    assert not np.allclose(y_hat_a, y_hat_b)  # other seeds, other forecasts: the mean is a real ensemble
    mean = (y_hat_a[..., 0] + y_hat_b[..., 0]) / 2  # (n, h, C)
    scores = score_windows(a, df, n_windows=3, step_size=4, ensemble_with=[b])
    assert scores["mse"] == pytest.approx(float(((y - mean) ** 2).mean()), rel=1e-5)
    assert scores["mae"] == pytest.approx(float(np.abs(y - mean).mean()), rel=1e-5)
    other_horizon = _forecaster("xlstm_time", "mlstm", "independent", h=H + 1).fit(df)
    with pytest.raises(ValueError, match="ensemble_with: every forecaster needs the same h"):
        score_windows(a, df, n_windows=3, ensemble_with=[other_horizon])


def test_an_ensemble_of_two_look_backs_forecasts_the_same_targets(frame):
    df = frame(n_series=2, length=60)
    short = _forecaster("xlstm_time", "mlstm", "independent", input_size=16, random_seed=0).fit(df)
    long = _forecaster("xlstm_time", "mlstm", "independent", random_seed=1).fit(df)
    assert short.input_size != long.input_size
    y, y_hat_short = short.forecast_windows(df, n_windows=3, step_size=4)
    y_long, y_hat_long = long.forecast_windows(df, n_windows=3, step_size=4)
    np.testing.assert_array_equal(y, y_long)  # windows are anchored at the series ends: the same targets
    mean = (y_hat_short[..., 0] + y_hat_long[..., 0]) / 2  # (n, h, C)
    for first, other in ((short, long), (long, short)):
        scores = score_windows(first, df, n_windows=3, step_size=4, ensemble_with=[other])
        assert scores["mse"] == pytest.approx(float(((y - mean) ** 2).mean()), rel=1e-5)
        assert scores["mae"] == pytest.approx(float(np.abs(y - mean).mean()), rel=1e-5)
    score_windows(short, df, n_windows=35)  # 35 windows fit the short look-back alone, not the longer one
    with pytest.raises(ValueError, match=r"has 60 rows; 35 windows of step 1 need input_size \+ 40 = 64"):
        score_windows(short, df, n_windows=35, ensemble_with=[long])
