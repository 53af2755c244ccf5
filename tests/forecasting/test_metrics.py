"""Metrics on cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from xlstm_seq.forecasting.metrics import mae, mase, mse, msis, seasonal_naive, smape


def test_mse_mae_by_hand():
    y, y_hat = np.array([1.0, 2.0, 4.0]), np.array([2.0, 2.0, 1.0])
    assert mse(y, y_hat) == pytest.approx((1 + 0 + 9) / 3)
    assert mae(y, y_hat) == pytest.approx((1 + 0 + 3) / 3)


def test_smape_by_hand():
    # 200*|100-110|/(100+110) = 9.5238..., 200*|50-40|/(50+40) = 22.222..., 0/0 counts as 0.
    y, y_hat = np.array([100.0, 50.0, 0.0]), np.array([110.0, 40.0, 0.0])
    assert smape(y, y_hat) == pytest.approx((2000 / 210 + 2000 / 90 + 0) / 3)


def test_mase_by_hand():
    train = np.array([1.0, 3.0, 2.0, 4.0, 3.0])  # season 2: |2-1|, |4-3|, |3-2| -> scale 1
    assert mase(np.array([5.0, 6.0]), np.array([4.0, 8.0]), train, season=2) == pytest.approx(1.5)
    # season 1: |2|,|1|,|2|,|1| -> scale 1.5
    assert mase(np.array([5.0, 6.0]), np.array([4.0, 8.0]), train, season=1) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no seasonal variation"):
        mase(np.ones(2), np.ones(2), np.ones(6), season=2)
    with pytest.raises(ValueError, match="more than season=12"):
        mase(np.ones(2), np.ones(2), np.arange(5.0), season=12)


def test_seasonal_naive_repeats_the_last_season():
    np.testing.assert_array_equal(seasonal_naive(np.arange(10.0), 5, 3), [7, 8, 9, 7, 8])
    with pytest.raises(ValueError, match="same shape"):
        mae(np.ones(3), np.ones(2))


def test_msis_by_hand():
    train = np.array([1.0, 3.0, 2.0, 4.0, 3.0])  # season 2: scale 1
    y = np.array([5.0, 6.0, 1.0])
    lo, hi = np.array([4.0, 4.0, 2.0]), np.array([6.0, 5.0, 3.0])
    # widths 2, 1, 1; misses: 6 above 5 by 1, 1 below 2 by 1; alpha 0.05 -> each miss costs 40 per unit
    assert msis(y, lo, hi, train, season=2, level=95) == pytest.approx((2 + 1 + 1 + 40 + 40) / 3)
    with pytest.raises(ValueError, match="lo <= hi"):
        msis(y, hi, lo, train, season=2)
