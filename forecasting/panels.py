"""Long frames to arrays and windows and back: the one place where forecasting data is cut into batches.

A *panel* is a block of C channels sharing one time axis: each series alone (channel-independent models)
or all series together (models that mix over variates, which needs aligned timestamps). Panels are
concatenated along time, and a window is addressed by its global start row, so a batch is a gather.
Forecasts of windows go back to a long frame with :func:`long_frame`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from xlstm_seq.forecasting.validation import DS, ID, Y, future_dates, merge_future_exog


@dataclass
class Panels:
    """Arrays of all panels, concatenated along time (T rows in total)."""

    y: np.ndarray  # (T, C) float32 targets
    x: np.ndarray  # (T, C, X) exogenous inputs seen over the look-back (historic, then future-known columns)
    xf: np.ndarray  # (T, C, F) future-known exogenous columns (read over the horizon)
    stat: np.ndarray  # (P, C, S) static exogenous values per panel
    ds: np.ndarray  # (T,) timestamps of the first channel
    offsets: np.ndarray  # (P + 1,) first row of each panel; panel p is rows offsets[p]:offsets[p+1]
    ids: list[list]  # the series (unique_id) of each channel, per panel

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def panel_of(self, rows: np.ndarray) -> np.ndarray:
        """Panel index of global rows."""
        return np.searchsorted(self.offsets, rows, side="right") - 1


def build_panels(
    df: pd.DataFrame,
    mixing: str,
    hist: Sequence[str],
    futr: Sequence[str],
    stat: Sequence[str],
    static_df: pd.DataFrame | None,
    order: Sequence | None = None,
    scale: tuple[np.ndarray, np.ndarray] | None = None,
    need_y: bool = True,
) -> Panels:
    """Cuts a validated long frame into panels.

    Args:
        df: frame sorted by ds within each series (checked before).
        mixing: "independent" (a panel per series) or "variates" (one panel, a channel per series).
        hist, futr, stat: exogenous column names.
        static_df: one row per series with the ``stat`` columns (required when ``stat`` is not empty).
        order: series order for "variates" (the order seen at fit); None keeps the frame's order.
        scale: (mean, std) of the exogenous columns hist + futr + stat, applied when given.
        need_y: False for frames without targets (never used for training).
    """
    xcols = list(hist) + list(futr)
    groups = {uid: g for uid, g in df.groupby(ID, sort=False)}
    statics = _static_rows(static_df, stat, list(groups))
    n_x, n_f = len(xcols), len(futr)
    mean, std = scale if scale is not None else (np.zeros(n_x + len(stat)), np.ones(n_x + len(stat)))

    def arrays(g: pd.DataFrame):
        y = g[Y].to_numpy(np.float32) if need_y else np.full(len(g), np.nan, np.float32)
        x = ((g[xcols].to_numpy(np.float64) - mean[:n_x]) / std[:n_x]).astype(np.float32).reshape(len(g), n_x)
        return y, x

    if mixing == "variates":
        ids = list(order) if order is not None else list(groups)
        missing = [u for u in ids if u not in groups]
        extra = [u for u in groups if u not in set(ids)]
        if missing or extra:
            raise ValueError(
                f"mixing='variates' needs the same series as at fit: missing {missing[:5]}, unexpected {extra[:5]}"
            )
        ref = groups[ids[0]][DS].to_numpy()
        for uid in ids[1:]:
            if not np.array_equal(groups[uid][DS].to_numpy(), ref):
                raise ValueError(
                    f"mixing='variates' needs every series on the same timestamps; series {uid!r} differs from "
                    f"series {ids[0]!r}"
                )
        parts = [arrays(groups[u]) for u in ids]
        y = np.stack([p[0] for p in parts], axis=1)  # (T, C)
        x = np.stack([p[1] for p in parts], axis=1)  # (T, C, X)
        st = np.stack([statics[u] for u in ids])[None]  # (1, C, S)
        panel_ids, ds, offsets = [ids], ref, np.array([0, len(ref)])
    else:
        ys, xs, sts, dss, panel_ids = [], [], [], [], []
        for uid, g in groups.items():
            y1, x1 = arrays(g)
            ys.append(y1[:, None])
            xs.append(x1[:, None])
            sts.append(statics[uid][None])
            dss.append(g[DS].to_numpy())
            panel_ids.append([uid])
        y, x, st = np.concatenate(ys), np.concatenate(xs), np.stack(sts)
        ds = np.concatenate(dss)
        offsets = np.concatenate([[0], np.cumsum([len(d) for d in dss])])
    if len(stat):
        st = ((st - mean[n_x:]) / std[n_x:]).astype(np.float32)
    return Panels(y=y, x=x, xf=x[:, :, n_x - n_f :], stat=st.astype(np.float32), ds=ds, offsets=offsets, ids=panel_ids)


def _static_rows(static_df: pd.DataFrame | None, stat: Sequence[str], uids: list) -> dict:
    """Static values per series as float arrays (S,); a series missing from static_df is named."""
    if not len(stat):
        return {u: np.zeros(0, np.float32) for u in uids}
    if static_df is None:
        raise ValueError(f"stat_exog_list is {list(stat)} but no static_df was given")
    table = static_df.drop_duplicates(ID).set_index(ID)
    out = {}
    for uid in uids:
        if uid not in table.index:
            raise ValueError(f"static_df has no row for series {uid!r}")
        out[uid] = table.loc[uid, list(stat)].to_numpy(np.float64)
    return out


def window_batch(panels: Panels, starts: np.ndarray, input_size: int, h: int, with_target: bool = True) -> dict:
    """Tensors for windows starting at global rows ``starts`` (inputs ``input_size`` rows, then ``h`` targets)."""
    idx = starts[:, None] + np.arange(input_size)  # (B, L)
    fut = starts[:, None] + input_size + np.arange(h)  # (B, h)
    batch = {
        "y": torch.from_numpy(panels.y[idx]),  # (B, L, C)
        "x_hist": torch.from_numpy(panels.x[idx]),  # (B, L, C, X)
        "x_stat": torch.from_numpy(panels.stat[panels.panel_of(starts)]),  # (B, C, S)
    }
    if with_target:
        batch["x_futr"] = torch.from_numpy(panels.xf[fut])  # (B, h, C, F)
        batch["target"] = torch.from_numpy(panels.y[fut])  # (B, h, C)
    return batch


def window_starts(panels: Panels, input_size: int, h: int, first_target: int, last_target: int) -> np.ndarray:
    """Global starts of every window whose targets lie in panel rows [first_target, last_target) (from each
    panel's end when negative)."""
    out = []
    for p, length in enumerate(panels.lengths):
        lo = first_target if first_target >= 0 else length + first_target
        hi = last_target if last_target > 0 else length + last_target
        lo = max(lo, input_size)
        local = np.arange(lo - input_size, hi - input_size - h + 1)
        out.append(panels.offsets[p] + local)
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def rolling_starts(
    panels: Panels, input_size: int, h: int, n_windows: int, step: int, windows: Sequence[int] | None = None
) -> np.ndarray:
    """Global starts (sorted: by panel, then time) of the last ``n_windows`` windows of every panel, ``step`` rows
    apart, the last one's targets ending at the panel's end; ``windows`` picks some of them (0 is the earliest).

    Raises:
        ValueError: naming the first series too short for input_size + (n_windows - 1) * step + h rows.
    """
    held_out = (n_windows - 1) * step + h
    short = np.flatnonzero(panels.lengths < held_out + input_size)
    if len(short):
        raise ValueError(
            f"series {panels.ids[short[0]][0]!r} has {panels.lengths[short[0]]} rows; {n_windows} windows of "
            f"step {step} need input_size + {held_out} = {input_size + held_out}"
        )
    ends = panels.offsets[1:]
    # Window w of every panel: inputs end at its cutoff, targets are the h rows after it.
    windows = range(n_windows) if windows is None else windows
    return np.sort(np.concatenate([ends - held_out + w * step - input_size for w in windows]))


def long_frame(
    panels: Panels, columns: dict[str, np.ndarray], starts: np.ndarray, input_size: int, datetime_ds: bool,
    cutoffs: bool = False,
) -> pd.DataFrame:  # fmt: skip
    """Long frame (``unique_id``, ``ds``[, ``cutoff``, ``y``], one column per entry of ``columns``) of forecast columns
    (n, h, C) of the windows at ``starts`` (n,); rows by window, then channel, then step. With ``cutoffs`` the last
    look-back timestamp and the actual values join them (cross-validation); ``datetime_ds`` turns ds (and cutoff)
    back into timestamps."""
    n, h, C = next(iter(columns.values())).shape
    fut = starts[:, None] + input_size + np.arange(h)  # (n, h)
    panel = panels.panel_of(starts)
    ids = np.array([panels.ids[p] for p in panel], dtype=object)  # (n, C)
    data = {
        ID: np.broadcast_to(ids[:, None, :], (n, h, C)).transpose(0, 2, 1).reshape(-1),
        DS: np.broadcast_to(panels.ds[fut][:, None, :], (n, C, h)).reshape(-1),
    }
    if cutoffs:
        data["cutoff"] = np.broadcast_to(panels.ds[starts + input_size - 1][:, None, None], (n, C, h)).reshape(-1)
        data[Y] = panels.y[fut].transpose(0, 2, 1).reshape(-1).astype(np.float64)  # (n, C, h)
    for name, values in columns.items():
        data[name] = values.transpose(0, 2, 1).reshape(-1).astype(np.float64)  # (n, C, h)
    frame = pd.DataFrame(data)
    if datetime_ds:
        frame[DS] = pd.to_datetime(frame[DS])
        if cutoffs:
            frame["cutoff"] = pd.to_datetime(frame["cutoff"])
    return frame


def forecast_frame(
    df: pd.DataFrame, input_size: int, h: int, freq: str | int, hist: list[str], futr: list[str],
    futr_df: pd.DataFrame | None,
) -> pd.DataFrame:  # fmt: skip
    """The frame predict forecasts from (``unique_id``, ``ds``, ``y``, hist + futr): the last ``input_size`` rows of
    each series of a checked frame ``df``, then its ``h`` future rows (y and historic exogenous values 0, which no
    window reads as input; future-known values from ``futr_df``), series in the order of ``df``."""
    tails = df.groupby(ID, sort=False).tail(input_size)
    sizes = tails.groupby(ID, sort=False).size()
    short = sizes[sizes < input_size]
    if len(short):
        raise ValueError(
            f"series {short.index[0]!r} has {int(short.iloc[0])} rows but predict needs input_size = {input_size}"
        )
    last = tails.groupby(ID, sort=False)[DS].last()
    future = pd.DataFrame(
        {ID: np.repeat(last.index.to_numpy(), h), DS: np.concatenate([future_dates(v, freq, h)
                                                                     for v in last.to_numpy()])}
    )  # fmt: skip
    if futr:
        future = merge_future_exog(future, futr_df, futr, h)
    frame = pd.concat([tails, future], ignore_index=True).sort_values([ID, DS], kind="stable")
    frame = frame.set_index(ID).loc[last.index].reset_index()  # keep the series order of df
    for col in hist:
        frame[col] = frame[col].fillna(0.0)  # historic exogenous values do not exist in the future
    frame[Y] = frame[Y].fillna(0.0)
    return frame[[ID, DS, Y] + hist + futr]


def exog_scale(
    train: pd.DataFrame, cols: list[str], static_df: pd.DataFrame | None, stat: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the exogenous columns on the training rows (std 1 where a column is constant)."""
    values = [train[c].to_numpy(np.float64) for c in cols] + [static_df[c].to_numpy(np.float64) for c in stat]
    mean = np.array([v.mean() for v in values]) if values else np.zeros(0)
    std = np.array([v.std() if v.std() > 0 else 1.0 for v in values]) if values else np.ones(0)
    return mean, std
