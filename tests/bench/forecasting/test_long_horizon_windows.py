"""The scored windows of the long-horizon benchmark are those of the Autoformer/PatchTST loaders."""

from __future__ import annotations

import numpy as np

from xlstm_seq.forecasting.datasets import LongHorizonData, split_borders
from xlstm_seq_bench.forecasting.long_horizon import _seasonal_naive, _test_windows


def _ett_like(n_rows: int = 14400, columns: int = 2) -> LongHorizonData:
    values = np.random.default_rng(0).normal(size=(n_rows, columns)).astype(np.float32)
    return LongHorizonData("etth1", np.arange(n_rows), [str(c) for c in range(columns)], values,
                           np.zeros(columns), np.ones(columns), split_borders("ett_hour", n_rows), 24,
                           (96, 192, 336, 720))  # fmt: skip


def test_every_test_window_as_autoformers_loader_counts_them():
    data = _ett_like()
    for h in (96, 720):
        # Autoformer: the test part is rows [11520 - L, 14400), and it yields len - L - h + 1 windows.
        end, n, step = _test_windows(data, h, None)
        assert (end, n, step) == (14400, 2880 - h + 1, 1)
    end, n, step = _test_windows(data, 96, None, "val")
    assert (end, n, step) == (11520, 2880 - 96 + 1, 1)


def test_sampled_windows_are_spread_and_end_inside_the_split():
    data = _ett_like()
    end, n, step = _test_windows(data, 96, 10)
    assert n <= 10 and step > 1 and end <= 14400
    assert 11520 + (n - 1) * step + 96 == end


def test_seasonal_naive_scores_autoformers_windows():
    # Autoformer's test loader, written out: window i reads rows [11520 - L + i, 11520 + i) and forecasts the h rows
    # after them; the seasonal naive forecast repeats the last 24 rows of the look-back.
    data, L, h = _ett_like(), 48, 24
    errors = []
    for i in range(2880 - h + 1):
        look_back = data.values[11520 - L + i : 11520 + i]
        errors.append(data.values[11520 + i : 11520 + i + h] - look_back[-24:])
    errors = np.stack(errors)
    mse, mae = _seasonal_naive(data, h, L, None)
    assert np.isclose(mse, float((errors**2).mean()), rtol=1e-6) and np.isclose(mae, float(np.abs(errors).mean()))
