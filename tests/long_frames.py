"""Small synthetic frames in the long format (unique_id, ds, y) that the forecasting tests and the forecasting
benchmark tests share (tests/ is on the import path: pytest puts the root conftest's folder there)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_long_frame(n_series: int = 1, length: int = 120, exog: bool = False, freq: str = "h") -> pd.DataFrame:
    """Seasonal series (period 12) with a trend in the long format (unique_id, ds, y); with exog, a historic column
    ``hist_x`` and a future-known column ``futr_x``."""
    rng = np.random.default_rng(0)
    parts = []
    for i in range(n_series):
        t = np.arange(length)
        y = 10 + i + np.sin(2 * np.pi * t / 12 + i) + 0.01 * t + rng.normal(0, 0.05, length)
        part = pd.DataFrame(
            {"unique_id": f"s{i}", "ds": pd.date_range("2024-01-01", periods=length, freq=freq), "y": y}
        )
        if exog:
            part["hist_x"] = np.cos(t / 7.0)
            part["futr_x"] = (t % 12) / 12.0
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
