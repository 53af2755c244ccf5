"""XLSTMForecaster.update: new observations appended to the kept history, predict() from the new end, nothing
refitted; the forecasts equal a forecast from the extended frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from xlstm_seq.forecasting import XLSTMForecaster


def split(df: pd.DataFrame, keep: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first ``keep`` rows of each series, and the rest."""
    pos = df.groupby("unique_id").cumcount()
    return df[pos < keep].reset_index(drop=True), df[pos >= keep].reset_index(drop=True)


@pytest.mark.parametrize("mixing", ["independent", "variates"])
def test_update_then_predict_equals_forecasting_the_extended_frame(frame, tiny_fit, mixing):
    df = frame(n_series=2, length=100, exog=True)
    head, tail = split(df, 90)
    fc = XLSTMForecaster(**tiny_fit, mixing=mixing, hist_exog_list=["hist_x"]).fit(head)
    weights = {k: v.clone() for k, v in fc.net_.state_dict().items()}
    first, second = split(tail, 4)
    fc.update(first).update(second)  # two batches of new rows, 10 per series
    pd.testing.assert_frame_equal(fc.predict(), fc.predict(df=df))
    assert fc.predict()["ds"].min() > df["ds"].max()
    assert all(torch.equal(weights[k], v) for k, v in fc.net_.state_dict().items())  # nothing refitted
    assert (fc.history_.groupby("unique_id").size() == fc.input_size).all()


def test_update_serves_the_fallback_from_the_new_end(tiny_fit):
    rng = np.random.default_rng(0)
    walks = [pd.DataFrame({"unique_id": f"w{i}", "ds": np.arange(170), "y": 50 + np.cumsum(rng.normal(size=170))})
             for i in range(3)]  # fmt: skip
    df = pd.concat(walks, ignore_index=True)
    head, tail = split(df, 160)
    fc = XLSTMForecaster(**{**tiny_fit, "max_steps": 20}, fallback="baseline")
    with pytest.warns(UserWarning, match="predict serves the"):
        fc.fit(head, val_size=18)
    assert fc.served_ != "model"
    pd.testing.assert_frame_equal(fc.update(tail).predict(level=[80]), fc.predict(df=df, level=[80]))


def test_update_refuses_gaps_overlaps_and_unknown_series(frame, tiny_fit):
    df = frame(n_series=1, length=80)
    head, tail = split(df, 70)
    fc = XLSTMForecaster(**tiny_fit).fit(head)
    with pytest.raises(ValueError, match=r"series 's0' starts at ds=.* but continues the kept history only at"):
        fc.update(tail.iloc[1:])  # a gap of one step
    with pytest.raises(ValueError, match="continues the kept history only at"):
        fc.update(head.tail(3))  # rows already seen
    with pytest.raises(ValueError, match="series 'new', which the forecaster was not fitted on"):
        fc.update(tail.assign(unique_id="new"))
    with pytest.raises(ValueError, match="exogenous columns differ"):
        fc.update(tail.assign(extra=1.0))
