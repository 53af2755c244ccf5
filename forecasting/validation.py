"""Checks on Nixtla long frames (``unique_id``, ``ds``, ``y``, exogenous columns) and their frequency.

Every check raises ``ValueError`` naming the offending series or column, so a user sees at once which
row of their data is wrong. The frequency helpers cover both calendar timestamps (a pandas offset alias
such as ``"h"`` or ``"MS"``) and integer time indices (an integer step).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

ID, DS, Y = "unique_id", "ds", "y"


def require_frame(df: object, name: str, columns: Sequence[str]) -> pd.DataFrame:
    """Checks that ``df`` is a DataFrame holding ``columns``; returns it."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s) {missing}; it has {list(df.columns)}")
    return df


FLOAT32_MAX = float(np.finfo(np.float32).max)
"""The largest finite float32 (about 3.4e38): the networks compute in float32, so a larger value becomes inf."""


def check_numeric(df: pd.DataFrame, name: str, columns: Sequence[str], *, finite: bool = True) -> None:
    """Each column must be numeric (bool counts) and, with ``finite``, free of NaN and infinite values and within
    float32's finite range (one inf would turn the shared weights, and so every series' forecast, into NaN); the
    error names column and series."""
    for col in columns:
        if not (pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col])):
            raise ValueError(f"{name} column {col!r} must be numeric, got dtype {df[col].dtype}")
        if not finite:
            continue
        values = df[col].to_numpy(np.float64)
        with np.errstate(invalid="ignore"):
            too_large = np.abs(values) > FLOAT32_MAX
        checks = (
            ("NaN", np.isnan(values), ""),
            ("infinite", np.isinf(values), ""),
            ("too large", too_large, f" (|value| > {FLOAT32_MAX:.4g}, float32's largest; rescale the column)"),
        )
        for kind, bad, hint in checks:
            if bad.any():
                first = df.loc[bad].iloc[0]
                where = f" at ds={first[DS]}" if DS in first.index else ""
                raise ValueError(
                    f"{name} column {col!r} has {int(bad.sum())} {kind} value(s), first in series {first[ID]!r}"
                    f"{where}{hint}"
                )


def check_unique_rows(df: pd.DataFrame, name: str) -> None:
    """At most one row per (unique_id, ds); the error names the first repeated series and timestamp."""
    dup = df.duplicated([ID, DS]).to_numpy()
    if dup.any():
        row = df.loc[dup].iloc[0]
        raise ValueError(f"{name} has duplicate (unique_id, ds) rows, first in series {row[ID]!r} at ds={row[DS]}")


def check_static(static_df: object, stat: Sequence[str]) -> pd.DataFrame:
    """A static frame holds one row per series with finite numeric ``stat`` columns; returns it."""
    require_frame(static_df, "static_df", [ID, *stat])
    if static_df[ID].isna().any():
        raise ValueError("static_df has a row whose unique_id is missing (NaN/None)")
    dup = static_df[ID].duplicated().to_numpy()
    if dup.any():
        raise ValueError(f"static_df has more than one row for series {static_df.loc[dup, ID].iloc[0]!r}")
    check_numeric(static_df, "static_df", stat)
    return static_df


def normalise_freq(freq: object) -> str | int | None:
    """A ``freq`` setting as this module uses it: None, an int step or an offset alias (numpy ints and pandas
    offsets are converted, so they also survive a JSON save)."""
    if freq is None or isinstance(freq, str):
        return freq
    if isinstance(freq, (int, np.integer)) and not isinstance(freq, (bool, np.bool_)):
        if freq < 1:
            raise ValueError(f"an integer freq must be a step >= 1, got {freq!r}")
        return int(freq)
    if isinstance(freq, pd.offsets.BaseOffset):
        return freq.freqstr
    raise ValueError(f"freq must be None, an offset alias such as 'h' or an integer step, got {freq!r}")


def infer_freq(ds: pd.Series, series_id: object) -> str | int:
    """The step of one series' sorted timestamps: an offset alias for datetimes, an int for integer indices."""
    if pd.api.types.is_integer_dtype(ds):
        steps = np.diff(ds.to_numpy())
        if len(steps) == 0:
            raise ValueError(f"series {series_id!r} has a single timestamp; cannot infer its frequency")
        return int(steps[0])
    if len(ds) < 3:
        raise ValueError(f"series {series_id!r} has fewer than 3 timestamps; pass freq= explicitly")
    with warnings.catch_warnings():
        # pandas 3 warns that infer_freq will return an offset object; both forms are handled below.
        warnings.simplefilter("ignore")
        freq = pd.infer_freq(pd.DatetimeIndex(ds))
    freq = getattr(freq, "freqstr", freq)
    if freq is None:
        raise ValueError(f"series {series_id!r} has irregular timestamps (no single frequency fits); fill the gaps")
    return freq


def future_dates(last: object, freq: str | int, h: int) -> np.ndarray:
    """The ``h`` timestamps after ``last`` at frequency ``freq``."""
    if isinstance(freq, int):
        return np.asarray(last) + freq * np.arange(1, h + 1)
    return pd.date_range(start=last, periods=h + 1, freq=to_offset(freq))[1:].to_numpy()


def check_regular(ds: pd.Series, freq: str | int, series_id: object, name: str) -> None:
    """One series' timestamps must be exactly ``first + k * freq``; else a ValueError naming the series."""
    values = ds.to_numpy()
    if isinstance(freq, int):
        expected = values[0] + freq * np.arange(len(values))
    else:
        expected = pd.date_range(start=values[0], periods=len(values), freq=to_offset(freq)).to_numpy()
    if not np.array_equal(values, expected):
        where = int(np.argmax(values != expected))
        raise ValueError(
            f"{name}: series {series_id!r} is irregular or does not match freq={freq!r}: "
            f"at position {where} ds={values[where]} where {expected[where]} was expected"
        )


def check_long_frame(
    df: pd.DataFrame, name: str, exog: Sequence[str] = (), *, need_y: bool = True, freq: str | int | None = None
) -> str | int:
    """Validates a long frame and returns its frequency (``freq`` checked, or inferred when None).

    Checks: the columns, numeric and NaN-free ``y`` and exogenous columns, no duplicate (unique_id, ds),
    timestamps sorted within each series, one regular step per series, the same step for every series.
    """
    cols = [ID, DS] + ([Y] if need_y else [])
    require_frame(df, name, cols)
    require_frame(df, name, exog)
    check_numeric(df, name, ([Y] if need_y else []) + list(exog))
    for col in (ID, DS):
        missing = df[col].isna().to_numpy()
        if missing.any():
            raise ValueError(f"{name} column {col!r} is missing (NaN/None) in {int(missing.sum())} row(s), first at "
                             f"row {df.index[missing][0]!r}")  # fmt: skip
    integer_ds = pd.api.types.is_integer_dtype(df[DS])
    if not (pd.api.types.is_datetime64_any_dtype(df[DS]) or integer_ds):
        raise ValueError(f"{name} column 'ds' must hold datetimes or integers, got dtype {df[DS].dtype}")
    freq = normalise_freq(freq)
    if freq is not None and integer_ds != isinstance(freq, int):
        kind = "integers, so freq must be an integer step" if integer_ds else "datetimes, so freq must be an alias"
        raise ValueError(f"{name} column 'ds' holds {kind}; got freq={freq!r}")
    check_unique_rows(df, name)
    found: str | int | None = freq
    for uid, group in df.groupby(ID, sort=False):
        ds = group[DS]
        if not ds.is_monotonic_increasing:
            raise ValueError(f"{name}: timestamps of series {uid!r} are not sorted; sort by ['unique_id', 'ds']")
        if len(ds) < 2:
            continue
        step = found if found is not None else infer_freq(ds, uid)
        check_regular(ds, step, uid, name)
        found = step
    if found is None:
        raise ValueError(f"{name}: every series has a single row; cannot infer the frequency, pass freq=")
    return found


def drop_last_steps(df: pd.DataFrame, steps: int) -> pd.DataFrame:
    """The rows of each series before its last ``steps`` rows (a held-out tail: validation or calibration)."""
    from_end = df.groupby(ID, sort=False).cumcount(ascending=False).to_numpy()
    return df[from_end >= steps]


def merge_future_exog(future: pd.DataFrame, futr_df: pd.DataFrame | None, futr: list[str], h: int) -> pd.DataFrame:
    """The ``futr`` columns of ``futr_df`` joined onto the h future rows (``unique_id``, ``ds``) of every series that
    predict forecasts; a missing frame, row or value is named with its series and timestamp."""
    if futr_df is None:
        raise ValueError(f"futr_exog_list is {futr}: predict needs futr_df with their future values")
    require_frame(futr_df, "futr_df", [ID, DS] + futr)
    check_numeric(futr_df, "futr_df", futr, finite=False)  # values are checked below, on the rows predict uses
    check_unique_rows(futr_df, "futr_df")
    merged = future.merge(futr_df[[ID, DS] + futr], on=[ID, DS], how="left", indicator=True)
    absent = merged["_merge"] == "left_only"
    if absent.any():
        row = merged.loc[absent].iloc[0]
        raise ValueError(
            f"futr_df lacks {int(absent.sum())} future row(s), first for series {row[ID]!r} at ds={row[DS]}; "
            f"it needs h={h} rows per series after the end of df"
        )
    for col in futr:
        values = merged[col].to_numpy(np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            row = merged.loc[bad].iloc[0]
            raise ValueError(
                f"futr_df column {col!r} is missing a value for series {row[ID]!r} at ds={row[DS]} (NaN or infinite)"
            )
        check_numeric(merged, "futr_df", [col])  # values beyond float32's range
    return merged.drop(columns="_merge")


def check_same_exog(df: pd.DataFrame, exog_columns: list[str]) -> None:
    """``df`` holds exactly the exogenous columns ``exog_columns`` that fit saw."""
    cols = set(df.columns) - {ID, DS, Y}
    missing, extra = sorted(set(exog_columns) - cols), sorted(cols - set(exog_columns))
    if missing or extra:
        raise ValueError(
            f"the exogenous columns differ between fit and predict: missing {missing}, unexpected {extra} "
            f"(fit saw {exog_columns})"
        )
