"""Prediction intervals (split-conformal calibration, empirical coverage) and cross-validation with refit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from xlstm_seq.forecasting import XLSTMForecaster
from xlstm_seq.forecasting.intervals import (
    conformal_quantile,
    conformal_scores,
    cqr_scores,
    interval_coverage,
    window_scale,
)

H, L = 6, 24
TINY = dict(h=H, input_size=L, patch_len=8, embedding_dim=8, num_blocks=1, num_heads=2, max_steps=4, batch_size=8,
            progress=False, track=False)  # fmt: skip
SIGMA = 0.5


def noisy_seasonal(n_series: int = 4, length: int = 520, sigma: float = SIGMA, seed: int = 0) -> pd.DataFrame:
    """A known signal (period 12, a level per series) plus Gaussian noise of std ``sigma``."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    parts = [
        pd.DataFrame({"unique_id": f"s{i}", "ds": t,
                      "y": 5.0 + 2 * i + 2 * np.sin(2 * np.pi * t / 12 + i) + rng.normal(0, sigma, length)})
        for i in range(n_series)
    ]  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def test_conformal_quantile_uses_the_finite_sample_rank():
    scores = np.sort(np.arange(1.0, 11.0)[:, None].repeat(2, axis=1), axis=0)  # (10, 2): 1..10 per step
    assert conformal_quantile(scores, 80).tolist() == [9.0, 9.0]  # ceil(11 * 0.8) = 9th smallest
    assert conformal_quantile(scores, 50).tolist() == [6.0, 6.0]  # ceil(11 * 0.5) = 6th
    assert conformal_quantile(scores, 95).tolist() == [10.0, 10.0]  # rank 11 > n: the largest score
    with pytest.raises(ValueError, match="percentage in"):
        conformal_quantile(scores, 100)


def test_conformal_scores_are_scaled_by_the_lookback_std():
    y_in = np.array([[[0.0], [2.0]], [[5.0], [5.0]]])  # (n=2, L=2, C=1): std 1, then 0 (-> 1)
    np.testing.assert_allclose(window_scale(y_in), [[1.0], [1.0]])
    y_in[0, :, 0] = [0.0, 4.0]  # std 2
    scale = window_scale(y_in)
    scores = conformal_scores(np.array([[[4.0]], [[1.0]]]), np.array([[[0.0]], [[0.0]]]), scale)
    np.testing.assert_allclose(scores, [[1.0], [2.0]])  # |4| / 2 and |1| / 1, sorted
    with pytest.raises(ValueError, match="scale must be"):
        conformal_scores(np.zeros((2, 1, 1)), np.zeros((2, 1, 1)), np.ones((3, 1)))


def test_split_conformal_covers_exchangeable_errors():
    # Pure numpy: calibrate on 500 Gaussian errors, check coverage on 20,000 fresh ones (std of the estimate 0.3 %).
    rng = np.random.default_rng(1)
    scores = np.sort(np.abs(rng.normal(0, 2.0, (500, 3))), axis=0)
    fresh = np.abs(rng.normal(0, 2.0, (20_000, 3)))
    for level in (50, 80, 95):
        covered = (fresh <= conformal_quantile(scores, level)).mean()
        assert level / 100 - 0.03 < covered < level / 100 + 0.03


def test_conformal_intervals_reach_their_coverage_on_a_series_with_known_noise():
    """Fit on noisy seasonal series, then check the 80/95 % bands on 20 later non-overlapping windows per series
    (480 held-out values): empirical coverage must be near the nominal level, and the bands about as wide as the
    known noise allows (too narrow or too wide both fail)."""
    df = noisy_seasonal()
    fc = XLSTMForecaster(h=H, input_size=L, patch_len=6, embedding_dim=16, num_blocks=1, num_heads=2, max_steps=200,
                         batch_size=32, learning_rate=1e-2, loss="mae", level=[80, 95], random_seed=0, progress=False,
                         track=False)  # fmt: skip
    cv = fc.cross_validation(df, n_windows=20, step_size=H, val_size=120, level=[80, 95])
    assert len(cv) == 4 * 20 * H
    cover80, cover95 = interval_coverage(cv, "xLSTMTime", 80), interval_coverage(cv, "xLSTMTime", 95)
    assert 0.72 <= cover80 <= 0.88, cover80
    assert 0.90 <= cover95 <= 0.99, cover95
    # The ideal 80 % half-width with a perfect point forecast is 1.2816 * sigma; a good fit stays close to it.
    half80 = float(((cv["xLSTMTime-hi-80"] - cv["xLSTMTime-lo-80"]) / 2).mean())
    assert 1.2816 * SIGMA * 0.85 < half80 < 1.2816 * SIGMA * 1.6, half80


def test_cqr_scores_are_signed_distances_outside_the_heads():
    y = np.array([[[1.0]], [[5.0]], [[3.0]]])  # (n=3, h=1, C=1)
    lo, hi = np.full_like(y, 2.0), np.full_like(y, 4.0)
    scores = cqr_scores(y, lo, hi, np.array([[1.0], [2.0], [1.0]]))
    np.testing.assert_allclose(scores[:, 0], [-1.0, 0.5, 1.0])  # inside by 1; above by 1 / 2; below by 1
    with pytest.raises(ValueError, match="must all be"):
        cqr_scores(y, lo[:2], hi, np.ones((3, 1)))


def test_cqr_keeps_the_heads_asymmetry_and_reaches_its_coverage():
    """Right-skewed noise (exponential): the CQR band must cover about 80 % of 480 held-out values and, unlike the
    symmetric conformal band, reach further above the median than below it."""
    rng = np.random.default_rng(0)
    df = noisy_seasonal(sigma=0.0)
    df["y"] += rng.exponential(0.5, len(df))
    fc = XLSTMForecaster(h=H, input_size=L, patch_len=6, embedding_dim=16, num_blocks=1, num_heads=2, max_steps=200,
                         batch_size=32, learning_rate=1e-2, loss="quantile", level=[80], intervals="cqr",
                         random_seed=0, progress=False, track=False)  # fmt: skip
    cv = fc.cross_validation(df, n_windows=20, step_size=H, val_size=120, level=[80])
    cover = interval_coverage(cv, "xLSTMTime", 80)
    assert 0.72 <= cover <= 0.88, cover
    above = float((cv["xLSTMTime-hi-80"] - cv["xLSTMTime"]).mean())
    below = float((cv["xLSTMTime"] - cv["xLSTMTime-lo-80"]).mean())
    assert above > 1.5 * below, (above, below)


def test_one_quantile_fit_serves_all_three_interval_kinds(tmp_path):
    df = _cv_frame(length=90)
    fc = XLSTMForecaster(**TINY, loss="quantile", level=[80, 95], intervals="cqr").fit(df, val_size=H)
    cqr = fc.predict(level=[80, 95])
    heads = fc.set_params(intervals="quantile").predict(level=[80, 95])
    symmetric = fc.set_params(intervals="conformal").predict(level=[80, 95])
    for frame in (cqr, heads, symmetric):
        pd.testing.assert_series_equal(frame["xLSTMTime"], cqr["xLSTMTime"])
        assert (frame["xLSTMTime-lo-95"] <= frame["xLSTMTime-lo-80"]).all()
        assert (frame["xLSTMTime-hi-80"] <= frame["xLSTMTime-hi-95"]).all()
    # CQR moves both heads by the same calibrated amount (per step and window scale), in opposite directions.
    np.testing.assert_allclose(cqr["xLSTMTime-lo-80"] - heads["xLSTMTime-lo-80"],
                               heads["xLSTMTime-hi-80"] - cqr["xLSTMTime-hi-80"], atol=1e-5)  # fmt: skip
    fc.set_params(intervals="cqr").save(tmp_path / "m")
    pd.testing.assert_frame_equal(XLSTMForecaster.load(tmp_path / "m").predict(level=[80, 95]), cqr)
    with pytest.raises(ValueError, match="intervals='cqr' conformalizes quantile heads: it needs loss='quantile'"):
        XLSTMForecaster(**TINY, loss="mae", level=[80], intervals="cqr").fit(df)


def test_cqr_serves_levels_in_any_order_and_with_many_decimals():
    df = _cv_frame(length=90)
    fc = XLSTMForecaster(**{**TINY, "track": True}, loss="quantile", level=[95, 100 / 3], intervals="cqr")
    fc.fit(df, val_size=H)  # track=True draws the CQR band of the widest level while fitting
    pred = fc.predict(level=np.array([100 / 3, 95]))
    third = str(100 / 3)
    assert (pred["xLSTMTime-lo-95"] <= pred[f"xLSTMTime-lo-{third}"]).all()
    assert (pred[f"xLSTMTime-hi-{third}"] <= pred["xLSTMTime-hi-95"]).all()


def _cv_frame(n_series=2, length=70):
    rng = np.random.default_rng(3)
    t = np.arange(length)
    return pd.concat(
        [pd.DataFrame({"unique_id": f"s{i}", "ds": pd.date_range("2024-01-01", periods=length, freq="h"),
                       "y": 10 + i + np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.1, length)})
         for i in range(n_series)], ignore_index=True,
    )  # fmt: skip


@pytest.mark.parametrize("refit", [True, 2])
def test_cross_validation_refit_fits_on_everything_up_to_each_refit_cutoff(refit):
    df = _cv_frame()
    fc = XLSTMForecaster(**TINY, random_seed=4)
    cv = fc.cross_validation(df, n_windows=3, step_size=2, refit=refit)
    cutoffs = sorted(cv["cutoff"].unique())
    assert len(cutoffs) == 3 and len(cv) == 2 * 3 * H
    assert cv.groupby("unique_id")["cutoff"].is_monotonic_increasing.all()
    # Every window equals a fresh fit (same seed) on the rows up to the cutoff of the fit that served it.
    fitted_at = [0, 1, 2] if refit is True else [0, 0, 2]
    for w, cutoff in enumerate(cutoffs):
        fresh = clone(fc).fit(df[df["ds"] <= cutoffs[fitted_at[w]]])
        expected = fresh.predict(df[df["ds"] <= cutoff])
        got = cv[cv["cutoff"] == cutoff].reset_index(drop=True)
        np.testing.assert_allclose(got["xLSTMTime"], expected["xLSTMTime"], rtol=1e-5)
        assert (got["ds"].to_numpy() == expected["ds"].to_numpy()).all()
    # The forecaster keeps the last fit, which saw everything up to the last refit cutoff.
    assert fc.history_["ds"].max() == cutoffs[fitted_at[-1]]


def test_cross_validation_refit_false_matches_one_fit_and_bad_refit_values_raise():
    df = _cv_frame()
    once = XLSTMForecaster(**TINY).cross_validation(df, n_windows=3, step_size=2, refit=False)
    every_3 = XLSTMForecaster(**TINY).cross_validation(df, n_windows=3, step_size=2, refit=3)
    pd.testing.assert_frame_equal(once, every_3)
    for bad in (0, -1, 1.5, "yes"):
        with pytest.raises(ValueError, match="refit must be True, False or an integer"):
            XLSTMForecaster(**TINY).cross_validation(df, n_windows=2, refit=bad)


def test_cross_validation_with_refit_and_conformal_intervals():
    df = _cv_frame(length=90)
    fc = XLSTMForecaster(**TINY, level=[80])
    cv = fc.cross_validation(df, n_windows=2, step_size=3, refit=True, level=[80])
    assert {"xLSTMTime-lo-80", "xLSTMTime-hi-80"} <= set(cv.columns)
    assert (cv["xLSTMTime-hi-80"] > cv["xLSTMTime-lo-80"]).all()
    assert 0.0 <= interval_coverage(cv, "xLSTMTime", 80) <= 1.0


def test_cross_validation_level_without_calibration_fails_before_fitting():
    fc = XLSTMForecaster(**TINY, loss="mae")  # neither level= nor a quantile loss: nothing to calibrate
    with pytest.raises(ValueError, match="needs conformal scores"):
        fc.cross_validation(_cv_frame(), n_windows=2, level=[80])
    assert not hasattr(fc, "net_")


def test_a_model_saved_before_conformal_intervals_loads_with_its_quantile_heads(tmp_path):
    import json

    fc = XLSTMForecaster(**TINY, loss="quantile", level=[80]).fit(_cv_frame())
    fc.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    for key in ("intervals", "calibration_size", "scale_loss"):
        del meta["params"][key]  # the parameter set of the first format
    del meta["fitted"]["calibrated"]  # added later, within format 1
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    (tmp_path / "m" / "calibration.safetensors").unlink()
    old = XLSTMForecaster.load(tmp_path / "m")
    assert old.intervals == "quantile"
    pred = old.predict(level=[80])
    np.testing.assert_allclose(pred["xLSTMTime"], fc.predict()["xLSTMTime"], rtol=1e-5)
    assert (pred["xLSTMTime-hi-80"] >= pred["xLSTMTime-lo-80"]).all()
