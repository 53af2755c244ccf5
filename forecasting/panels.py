"""Long frames to arrays and windows: the one place where forecasting data is cut into training batches.

A *panel* is a block of C channels sharing one time axis: each series alone (channel-independent models)
or all series together (models that mix over variates, which needs aligned timestamps). Panels are
concatenated along time, and a window is addressed by its global start row, so a batch is a gather.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from xlstm_seq.forecasting.validation import DS, ID, Y


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
