"""Bad frames and misuse: each raises a ValueError that names the series or the column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xlstm_seq.forecasting import XLSTMForecaster

H, L = 4, 12
TINY = dict(h=H, input_size=L, patch_len=4, embedding_dim=8, num_blocks=1, num_heads=2, max_steps=2, batch_size=4,
            progress=False, track=False)  # fmt: skip


def _fc(**kwargs):
    return XLSTMForecaster(**{**TINY, **kwargs})


@pytest.mark.parametrize("column", ["unique_id", "ds", "y"])
def test_missing_column_is_named(column, frame):
    with pytest.raises(ValueError, match=rf"missing column\(s\) \['{column}'\]"):
        _fc().fit(frame(length=30).drop(columns=column))


def test_duplicate_rows_name_the_series(frame):
    df = frame(n_series=2, length=30)
    df = pd.concat([df, df[df.unique_id == "s1"].iloc[[3]]], ignore_index=True).sort_values(["unique_id", "ds"])
    with pytest.raises(ValueError, match="duplicate .* series 's1'"):
        _fc().fit(df)


def test_unsorted_timestamps_name_the_series(frame):
    df = frame(n_series=2, length=30)
    rows = df.index[df.unique_id == "s1"]
    df.loc[rows[[4, 5]], "ds"] = df.loc[rows[[5, 4]], "ds"].to_numpy()
    with pytest.raises(ValueError, match="series 's1' are not sorted"):
        _fc().fit(df)


def test_irregular_timestamps_name_the_series(frame):
    df = frame(n_series=2, length=30)
    df = df.drop(df.index[df.unique_id == "s1"][10])
    with pytest.raises(ValueError, match="series 's1' is irregular"):
        _fc(freq="h").fit(df)
    with pytest.raises(ValueError, match="series 's1'"):
        _fc().fit(df)


def test_freq_mismatch_is_reported(frame):
    with pytest.raises(ValueError, match="does not match freq='D'"):
        _fc(freq="D").fit(frame(length=30))


def test_nan_in_y_names_series(frame):
    df = frame(n_series=2, length=30)
    df.loc[df.index[df.unique_id == "s1"][7], "y"] = np.nan
    with pytest.raises(ValueError, match="'y' has 1 NaN value.*series 's1'"):
        _fc().fit(df)


def test_non_numeric_y_is_named(frame):
    df = frame(length=30)
    df["y"] = df["y"].astype(str)
    with pytest.raises(ValueError, match="column 'y' must be numeric"):
        _fc().fit(df)


def test_short_series_is_named(frame):
    df = pd.concat([frame(n_series=1, length=30), frame(n_series=2, length=14).query("unique_id == 's1'")])
    with pytest.raises(ValueError, match=r"series 's1' has 14 rows but input_size \+ h \+ val_size = 16"):
        _fc().fit(df)
    with pytest.raises(ValueError, match=r"series 's0' has 30 rows but input_size \+ h \+ val_size = 36"):
        _fc().fit(frame(length=30), val_size=20)


def test_predict_before_fit():
    with pytest.raises(ValueError, match="not fitted yet"):
        _fc().predict()


def _exog_model(frame):
    df = frame(n_series=2, length=40, exog=True)
    last = df.groupby("unique_id").tail(H)
    fc = _fc(hist_exog_list=["hist_x"], futr_exog_list=["futr_x"]).fit(df.drop(last.index))
    return fc, df.drop(last.index), last[["unique_id", "ds", "futr_x"]]


def test_futr_df_missing_rows_or_values(frame):
    fc, train, futr = _exog_model(frame)
    with pytest.raises(ValueError, match="predict needs futr_df"):
        fc.predict()
    with pytest.raises(ValueError, match="futr_df lacks 1 future row.*series 's1'"):
        fc.predict(futr_df=futr.drop(futr.index[-1]))
    holes = futr.copy()
    holes.loc[holes.index[1], "futr_x"] = np.nan
    with pytest.raises(ValueError, match="futr_df column 'futr_x' is missing a value for series 's0'"):
        fc.predict(futr_df=holes)
    with pytest.raises(ValueError, match=r"futr_df is missing column\(s\) \['futr_x'\]"):
        fc.predict(futr_df=futr.drop(columns="futr_x"))


def test_exogenous_columns_must_match_between_fit_and_predict(frame):
    fc, train, futr = _exog_model(frame)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['hist_x'\]"):
        fc.predict(train.drop(columns="hist_x"), futr_df=futr)
    with pytest.raises(ValueError, match=r"differ between fit and predict: missing \[\], unexpected \['price'\]"):
        fc.predict(train.assign(price=1.0), futr_df=futr)


def test_bad_settings_and_types(frame):
    with pytest.raises(ValueError, match="loss must be one of"):
        _fc(loss="huber").fit(frame(length=30))
    with pytest.raises(ValueError, match="valid_loss must be None or one of"):
        _fc(valid_loss="rmse").fit(frame(length=30))
    with pytest.raises(ValueError, match="valid_loss='quantile' needs loss='quantile'"):
        _fc(valid_loss="quantile").fit(frame(length=30))
    for bad in (1.0, 0, "0.9"):
        with pytest.raises(ValueError, match="ema_decay must be None or a number in"):
            _fc(ema_decay=bad).fit(frame(length=30))
    with pytest.raises(ValueError, match="model must be one of"):
        _fc(model="transformer").fit(frame(length=30))
    with pytest.raises(ValueError, match="backbone must be one of"):
        _fc(backbone="gru").fit(frame(length=30))
    with pytest.raises(ValueError, match="input_size must be a positive integer"):
        _fc(input_size=0).fit(frame(length=30))
    with pytest.raises(TypeError, match="df must be a pandas DataFrame"):
        _fc().fit(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="needs every series on the same timestamps; series 's1'"):
        df = frame(n_series=2, length=30)
        _fc(mixing="variates").fit(df.drop(df.index[df.unique_id == "s1"][:2]))


def test_static_df_problems_name_the_series(frame, static):
    df = frame(n_series=2, length=30)
    with pytest.raises(ValueError, match="no static_df was given"):
        _fc(stat_exog_list=["size"]).fit(df)
    with pytest.raises(ValueError, match="static_df has no row for series 's1'"):
        _fc(stat_exog_list=["size"]).fit(df, static_df=static(1))
    holes = static(2)
    holes.loc[1, "size"] = np.nan
    with pytest.raises(ValueError, match="static_df column 'size' has 1 NaN value.*series 's1'"):
        _fc(stat_exog_list=["size"]).fit(df, static_df=holes)


def test_infinite_y_or_exogenous_value_is_named(frame):
    # One inf poisons the shared weights: every series' forecast would come out NaN.
    df = frame(n_series=2, length=30, exog=True)
    df.loc[df.index[df.unique_id == "s1"][5], "y"] = np.inf
    with pytest.raises(ValueError, match="'y' has 1 infinite value.*series 's1'"):
        _fc().fit(df)
    df = frame(n_series=2, length=30, exog=True)
    df.loc[df.index[df.unique_id == "s0"][3], "hist_x"] = -np.inf
    with pytest.raises(ValueError, match="'hist_x' has 1 infinite value.*series 's0'"):
        _fc(hist_exog_list=["hist_x"]).fit(df)


@pytest.mark.parametrize("column", ["unique_id", "ds"])
def test_missing_id_or_timestamp_is_named(frame, column):
    df = frame(n_series=2, length=30)
    df[column] = df[column].astype(object)
    df.loc[df.index[df.unique_id == "s1"], column] = None
    with pytest.raises(ValueError, match=f"column '{column}' is missing .* in 30 row"):
        _fc().fit(df)


def test_futr_df_duplicates_and_text_are_refused(frame):
    fc, train, futr = _exog_model(frame)
    # A repeated future row used to shift the look-back of its series by one step, silently.
    with pytest.raises(ValueError, match="futr_df has duplicate .* series 's0'"):
        fc.predict(futr_df=pd.concat([futr, futr.iloc[[1]]]))
    with pytest.raises(ValueError, match="futr_df column 'futr_x' must be numeric"):
        fc.predict(futr_df=futr.assign(futr_x="a"))


def test_static_df_at_predict_is_checked(frame, static):
    df = frame(n_series=2, length=30)
    fc = _fc(stat_exog_list=["size"]).fit(df, static_df=static(2))
    holes = static(2)
    holes.loc[0, "size"] = np.nan
    with pytest.raises(ValueError, match="static_df column 'size' has 1 NaN value.*series 's0'"):
        fc.predict(static_df=holes)
    with pytest.raises(ValueError, match="static_df column 'size' must be numeric"):
        fc.predict(static_df=static(2).assign(size="big"))
    with pytest.raises(ValueError, match="static_df has more than one row for series 's1'"):
        fc.predict(static_df=pd.concat([static(2), static(2).iloc[[1]]]))


def test_bad_val_size_level_and_freq_types(frame):
    df = frame(length=30)
    with pytest.raises(ValueError, match="val_size must be an integer number of steps, got 8.0"):
        _fc().fit(df, val_size=8.0)
    fc = _fc(level=[80]).fit(df)
    with pytest.raises(ValueError, match=r"level must be a list of percentages such as \[80, 95\], got 80"):
        fc.predict(level=80)
    with pytest.raises(ValueError, match="the level setting must be a list of percentages"):
        _fc(level=80).fit(df)
    with pytest.raises(ValueError, match="holds datetimes, so freq must be an alias; got freq=5"):
        _fc(freq=5).fit(df)
    ints = df.assign(ds=np.arange(30))
    with pytest.raises(ValueError, match="holds integers, so freq must be an integer step; got freq='h'"):
        _fc(freq="h").fit(ints)
    # numpy integers and pandas offsets are what users pass as often as plain ones
    assert _fc(freq=np.int64(1)).fit(ints).freq_ == 1
    assert _fc(freq=pd.offsets.Hour()).fit(df).freq_ == "h"


def test_bad_cross_validation_arguments(frame):
    df = frame(n_series=2, length=40)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="step_size must be None"):
            _fc().cross_validation(df, n_windows=2, step_size=bad)
    with pytest.raises(ValueError, match=r"series 's0' has 40 rows but cross_validation needs 48"):
        _fc().cross_validation(df, n_windows=8, step_size=4)
