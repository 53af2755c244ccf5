"""Forecast-vs-actual figures (matplotlib, Agg backend) logged with every fit and benchmark run."""

from __future__ import annotations

import numpy as np

from xlstm_seq.forecasting.panels import Panels


def forecast_figure(
    panels: Panels, starts: np.ndarray, out: np.ndarray, input_size: int, h: int, alias: str, what: str = "forecast"
):
    """Look-back, actual and forecast of up to four channels; ``what`` names the window in each title (say
    whether the model was trained on it).

    Args:
        panels: the data the windows come from.
        starts: (n,) global window starts; out[i] belongs to starts[i].
        out: (n, h, C, Q) forecasts; the middle output (the median for quantile models) is drawn, and the
            outermost quantiles as a band when Q > 1.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [(i, c) for i in range(len(out)) for c in range(out.shape[2])][:4]
    fig, axes = plt.subplots(len(pairs), 1, figsize=(9, 2.6 * len(pairs)), squeeze=False)
    for ax, (i, c) in zip(axes[:, 0], pairs, strict=True):
        start = starts[i]
        past = np.arange(-input_size, 0)
        ahead = np.arange(h)
        ax.plot(past, panels.y[start : start + input_size, c], color="0.4", lw=1, label="history")
        ax.plot(ahead, panels.y[start + input_size : start + input_size + h, c], color="k", lw=1.2, label="actual")
        mid = out.shape[-1] // 2
        ax.plot(ahead, out[i, :, c, mid], color="tab:blue", lw=1.5, label=alias)
        if out.shape[-1] > 1:
            ax.fill_between(ahead, out[i, :, c, 0], out[i, :, c, -1], color="tab:blue", alpha=0.2, label="interval")
        panel = panels.panel_of(np.array([start]))[0]
        ax.set_title(f"series {panels.ids[panel][c]}: {what} vs actual", fontsize=9)
        ax.axvline(-0.5, color="0.7", lw=0.8)
    axes[0, 0].legend(fontsize=8, loc="upper left")
    axes[-1, 0].set_xlabel("steps relative to the forecast origin")
    fig.tight_layout()
    plt.close(fig)  # out of pyplot's registry, else every tracked fit keeps one open (it still saves)
    return fig
