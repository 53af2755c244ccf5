"""XLSTMForecaster: the conformance check over every model, intervals, cross-validation, persistence, sklearn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from torch.optim.optimizer import register_optimizer_step_post_hook

from xlstm_seq.forecasting import XLSTMForecaster

H, L = 6, 24
TINY = dict(h=H, input_size=L, embedding_dim=8, num_blocks=1, num_heads=2, max_steps=4, batch_size=8,
            progress=False, track=False)  # fmt: skip
MODELS = [
    ("xlstm_time", "mlstm", "independent"),
    ("xlstm_time", "slstm", "variates"),
    ("xlstm_encoder", "mlstm", "independent"),
    ("xlstm_encoder", "slstm", "variates"),
    ("xlstm_mixer", "slstm", "variates"),
    ("xlstm_mixer", "mlstm", "independent"),
    ("dlinear", "mlstm", "independent"),
]
IDS = [f"{m}-{b}-{x}" for m, b, x in MODELS]


def _window_scores(fc, df, n_windows: int) -> dict[str, float]:
    """MSE and MAE of the point forecast (a quantile model's median) over the last n_windows windows (step 1)."""
    y, y_hat = fc.forecast_windows(df, n_windows=n_windows)
    error = y_hat[..., fc.quantiles_.index(0.5)].astype(np.float64) - y  # (n, h, C)
    return {"mse": float((error**2).mean()), "mae": float(np.abs(error).mean())}


def _forecaster(model, backbone, mixing, **kwargs):
    patch = 4 if model == "xlstm_encoder" else 8
    return XLSTMForecaster(model=model, backbone=backbone, mixing=mixing, patch_len=patch, **{**TINY, **kwargs})


@pytest.mark.parametrize(("model", "backbone", "mixing"), MODELS, ids=IDS)
@pytest.mark.parametrize("case", ["single", "many", "exogenous"])
def test_conformance_every_model_on_the_same_frames(model, backbone, mixing, case, frame, static):
    n_series = 1 if case == "single" else 3
    df = frame(n_series=n_series, length=60, exog=case == "exogenous")
    kwargs = {}
    if case == "exogenous":
        kwargs = dict(hist_exog_list=["hist_x"], futr_exog_list=["futr_x"], stat_exog_list=["size"])
    fc = _forecaster(model, backbone, mixing, **kwargs)
    last = df.groupby("unique_id").tail(H)
    train = df.drop(last.index)
    fc.fit(train, static_df=static(n_series) if case == "exogenous" else None, val_size=H)
    futr = last[["unique_id", "ds", "futr_x"]] if case == "exogenous" else None
    pred = fc.predict(futr_df=futr)
    assert list(pred.columns) == ["unique_id", "ds", fc.alias_]
    assert len(pred) == n_series * H
    assert np.isfinite(pred[fc.alias_]).all()
    # The forecast dates are exactly the held-out rows.
    merged = pred.merge(last, on=["unique_id", "ds"], how="left")
    assert merged["y"].notna().all()


@pytest.mark.parametrize("backbone", ["mlstm", "slstm", "mixed"])
def test_every_backbone_trains_on_cpu_and_lowers_the_loss(backbone, frame):
    df = frame(n_series=2, length=80)
    fc = XLSTMForecaster(model="xlstm_time", backbone=backbone, h=H, input_size=L, patch_len=6, embedding_dim=16,
                         num_blocks=2, num_heads=2, max_steps=60, batch_size=16, learning_rate=1e-2, progress=False,
                         track=False, val_check_steps=10)  # fmt: skip
    fc.fit(df, val_size=H * 2)
    assert fc.net_.stack.block_types == {"mlstm": ["m", "m"], "slstm": ["s", "s"], "mixed": ["m", "s"]}[backbone]
    # A trained model beats the untrained one on the validation windows (same seed, zero steps of training).
    untrained = clone(fc).set_params(max_steps=1, learning_rate=1e-9).fit(df, val_size=H * 2)
    y, trained_hat = fc.forecast_windows(df, n_windows=5)
    _, untrained_hat = untrained.forecast_windows(df, n_windows=5)
    assert np.abs(y - trained_hat[..., 0]).mean() < np.abs(y - untrained_hat[..., 0]).mean()


def test_seeded_cpu_runs_are_repeatable(frame):
    df = frame(n_series=2, length=60)
    a = _forecaster("xlstm_time", "mixed", "independent", num_blocks=2, random_seed=7).fit(df).predict()
    b = _forecaster("xlstm_time", "mixed", "independent", num_blocks=2, random_seed=7).fit(df).predict()
    c = _forecaster("xlstm_time", "mixed", "independent", num_blocks=2, random_seed=8).fit(df).predict()
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["xLSTMTime"], c["xLSTMTime"])


@pytest.mark.parametrize("intervals", ["quantile", "conformal"])
def test_quantile_loss_gives_nested_intervals(intervals, frame):
    df = frame(n_series=2, length=60)
    fc = _forecaster("xlstm_time", "mlstm", "independent", loss="quantile", level=[80, 95], intervals=intervals)
    pred = fc.fit(df).predict(level=[95, 80])
    assert list(pred.columns) == [
        "unique_id", "ds", "xLSTMTime", "xLSTMTime-lo-95", "xLSTMTime-lo-80", "xLSTMTime-hi-80", "xLSTMTime-hi-95"
    ]  # fmt: skip
    order = pred[["xLSTMTime-lo-95", "xLSTMTime-lo-80", "xLSTMTime", "xLSTMTime-hi-80", "xLSTMTime-hi-95"]]
    assert (np.diff(order.to_numpy(), axis=1) >= 0).all()
    if intervals == "quantile":
        with pytest.raises(ValueError, match="level 50 was not trained"):
            fc.predict(level=[50])
    else:  # conformal intervals serve any level from the same scores, and wider levels give wider bands
        width = lambda p, lv: (p[f"xLSTMTime-hi-{lv}"] - p[f"xLSTMTime-lo-{lv}"]).to_numpy()  # noqa: E731
        assert (width(fc.predict(level=[50]), 50) <= width(pred, 80)).all()


def test_level_needs_a_quantile_model_or_calibration(frame):
    fc = _forecaster("xlstm_time", "mlstm", "independent", loss="mse", intervals="quantile").fit(frame(length=60))
    with pytest.raises(ValueError, match="loss='quantile'"):
        fc.predict(level=[80])
    fc = _forecaster("xlstm_time", "mlstm", "independent", loss="mse").fit(frame(length=60))
    with pytest.raises(ValueError, match="needs conformal scores"):
        fc.predict(level=[80])
    # A point loss with level= set before fit is calibrated: its intervals are centred on the point forecast.
    fc = _forecaster("xlstm_time", "mlstm", "independent", loss="mse", level=[80]).fit(frame(length=60))
    pred = fc.predict(level=[80])
    np.testing.assert_allclose(pred["xLSTMTime-hi-80"] - pred["xLSTMTime"], pred["xLSTMTime"] - pred["xLSTMTime-lo-80"])
    assert (pred["xLSTMTime-hi-80"] > pred["xLSTMTime-lo-80"]).all()
    with pytest.raises(ValueError, match="intervals must be one of"):
        _forecaster("xlstm_time", "mlstm", "independent", intervals="bootstrap").fit(frame(length=60))


def test_cross_validation_has_cutoffs_and_actuals(frame):
    df = frame(n_series=2, length=70)
    fc = _forecaster("xlstm_time", "mlstm", "independent")
    cv = fc.cross_validation(df, n_windows=3, step_size=2, h=H)
    assert list(cv.columns) == ["unique_id", "ds", "cutoff", "y", "xLSTMTime"]
    assert len(cv) == 2 * 3 * H
    for (uid, cutoff), group in cv.groupby(["unique_id", "cutoff"]):
        assert (group["ds"] > cutoff).all()
        truth = df[(df.unique_id == uid) & df.ds.isin(group.ds)]["y"].to_numpy()
        np.testing.assert_allclose(group["y"].to_numpy(), truth, rtol=1e-6)
    cutoffs = sorted(cv["cutoff"].unique())
    assert cutoffs[-1] == df["ds"].max() - pd.Timedelta(hours=H)
    assert (np.diff(cutoffs) == pd.Timedelta(hours=2)).all()
    # The model never saw the rows after the first cutoff.
    assert fc.history_["ds"].max() == cutoffs[0]
    with pytest.raises(ValueError, match="differs from the forecaster's h"):
        fc.cross_validation(df, h=H + 1)


def test_save_load_round_trip_without_pickle(tmp_path, frame, static):
    df = frame(n_series=2, length=60, exog=True)
    fc = _forecaster("xlstm_time", "mixed", "variates", num_blocks=2, loss="quantile", hist_exog_list=["hist_x"],
                     futr_exog_list=["futr_x"], stat_exog_list=["size"])  # fmt: skip
    last = df.groupby("unique_id").tail(H)
    fc.fit(df.drop(last.index), static_df=static(2))
    futr = last[["unique_id", "ds", "futr_x"]]
    before = fc.predict(futr_df=futr, level=[80])
    fc.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "calibration.safetensors", "config.json", "history.csv", "model.safetensors", "static.csv"
    ]  # fmt: skip
    loaded = XLSTMForecaster.load(tmp_path / "model")
    pd.testing.assert_frame_equal(loaded.predict(futr_df=futr, level=[80]), before, check_exact=False, rtol=1e-5)
    assert loaded.get_params() == fc.get_params()


def test_sklearn_clone_and_set_params(frame):
    fc = _forecaster("xlstm_encoder", "slstm", "independent", level=[90])
    fc.fit(frame(length=60))
    twin = clone(fc)
    assert twin.get_params() == fc.get_params()
    assert not hasattr(twin, "net_")
    twin.set_params(h=3, alias="mine")
    assert (twin.h, twin.alias_) == (3, "mine")
    assert "mine" in twin.fit(frame(length=60)).predict().columns


def test_early_stopping_keeps_the_best_weights(frame):
    df = frame(n_series=1, length=80)
    # A huge learning rate makes validation worse after the first check, so training stops early.
    fc = _forecaster("xlstm_time", "mlstm", "independent", max_steps=200, val_check_steps=5,
                     early_stop_patience_steps=2, learning_rate=5.0)  # fmt: skip
    fc.fit(df, val_size=12)
    assert fc.steps_trained_ < 200


@pytest.mark.parametrize(("loss", "valid_loss"), [("mae", "mse"), ("mse", "mae"), ("quantile", "mae")])
def test_early_stopping_follows_valid_loss(frame, loss, valid_loss):
    df = frame(n_series=1, length=80)
    fc = _forecaster("xlstm_time", "mlstm", "independent", loss=loss, valid_loss=valid_loss, max_steps=20,
                     val_check_steps=5)  # fmt: skip
    fc.fit(df, val_size=12)
    # The kept weights score best_val_loss_ in valid_loss (a quantile model's median) on the validation windows.
    scores = _window_scores(fc, df, n_windows=12 - H + 1)
    assert fc.best_val_loss_ == pytest.approx(scores[valid_loss], rel=1e-4)
    assert fc.best_val_loss_ != pytest.approx(scores["mse" if valid_loss == "mae" else "mae"], rel=1e-2)


def test_ema_decay_keeps_the_moving_average_of_the_weights(frame):
    df = frame(n_series=2, length=60)
    decay = 0.6
    snapshots = []  # the raw weights after every optimiser step

    def record(optimizer, args, kwargs):
        snapshots.append([p.detach().clone() for group in optimizer.param_groups for p in group["params"]])

    handle = register_optimizer_step_post_hook(record)
    try:
        fc = _forecaster("xlstm_time", "mlstm", "independent", ema_decay=decay, max_steps=5).fit(df)
    finally:
        handle.remove()
    assert len(snapshots) == 5
    average = snapshots[0]
    for weights in snapshots[1:]:
        average = [decay * a + (1 - decay) * w for a, w in zip(average, weights, strict=True)]
    for kept, expected in zip(fc.net_.parameters(), average, strict=True):
        torch.testing.assert_close(kept, expected)
    assert not all(torch.equal(kept, last) for kept, last in zip(fc.net_.parameters(), snapshots[-1], strict=True))


def test_ema_decay_checks_and_keeps_the_averaged_weights(frame):
    df = frame(n_series=1, length=80)
    fc = _forecaster("xlstm_time", "mlstm", "independent", ema_decay=0.9, max_steps=20, val_check_steps=5)
    fc.fit(df, val_size=12)
    # The kept (averaged) weights score best_val_loss_ on the validation windows.
    assert fc.best_val_loss_ == pytest.approx(_window_scores(fc, df, n_windows=12 - H + 1)["mae"], rel=1e-4)


def test_predict_on_new_frame_and_integer_ds(frame):
    df = frame(n_series=2, length=60)
    df["ds"] = df.groupby("unique_id").cumcount() * 5
    fc = _forecaster("xlstm_time", "mlstm", "independent").fit(df)
    pred = fc.predict(df[df.unique_id == "s1"])
    assert pred["ds"].tolist() == [300 + 5 * k for k in range(H)]
    assert pred["unique_id"].eq("s1").all()


def test_every_fit_logs_a_forecast_png_to_mlflow(tmp_mlflow, frame):
    import matplotlib.pyplot as plt
    import mlflow

    fc = _forecaster("xlstm_time", "mlstm", "independent", track=True, experiment="fc-test")
    open_figures = len(plt.get_fignums())
    fc.fit(frame(n_series=2, length=60), val_size=H)
    assert len(plt.get_fignums()) == open_figures  # the logged figure is closed, not kept per fit
    client = mlflow.MlflowClient(tracking_uri=tmp_mlflow)
    runs = client.search_runs([client.get_experiment_by_name("fc-test").experiment_id])
    assert len(runs) == 1
    artifacts = [a.path for a in client.list_artifacts(runs[0].info.run_id)]
    assert "forecast.png" in artifacts and "model" in artifacts
    assert "train/loss" in runs[0].data.metrics and "val/loss" in runs[0].data.metrics


def test_the_logged_plot_says_whether_its_window_was_trained_on(frame, monkeypatch):
    import xlstm_seq.forecasting.plots as module

    titles = []
    real = module.forecast_figure
    monkeypatch.setattr(module, "forecast_figure", lambda *args: titles.append(args[-1]) or real(*args))
    _forecaster("xlstm_time", "mlstm", "independent", track=True).fit(frame(length=60), val_size=H)
    _forecaster("xlstm_time", "mlstm", "independent", track=True).fit(frame(length=60))
    assert titles == ["forecast of the held-out last window", "in-sample fit of the last window"]


def test_progress_bar_counts_the_steps(frame, capsys):
    _forecaster("xlstm_time", "mlstm", "independent", progress=True).fit(frame(length=60), val_size=H)
    err = capsys.readouterr().err
    assert "fit xLSTMTime" in err and f"{TINY['max_steps']}/{TINY['max_steps']}" in err and "val=" in err


def test_cross_validation_and_window_forecasts_with_exogenous(frame, static):
    df = frame(n_series=3, length=60, exog=True)
    fc = _forecaster("xlstm_time", "mlstm", "variates", hist_exog_list=["hist_x"], futr_exog_list=["futr_x"],
                     stat_exog_list=["size"])  # fmt: skip
    cv = fc.cross_validation(df, n_windows=2, static_df=static(3))
    assert len(cv) == 3 * 2 * H and np.isfinite(cv["xLSTMTime"]).all()
    y, y_hat = fc.forecast_windows(df, n_windows=4, step_size=3)
    assert y.shape == (4, H, 3) and y_hat.shape == (4, H, 3, 1) and np.isfinite(y_hat).all()
