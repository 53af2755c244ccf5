"""What every fit logs to MLflow (its settings, losses, the guardrail's validation scores, a forecast-vs-actual
figure and the saved model), and that figure (matplotlib, Agg backend), which benchmark runs log too."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xlstm_seq.forecasting.calibration import forecast_columns
from xlstm_seq.forecasting.panels import Panels
from xlstm_seq.forecasting.training import TrainingHistory
from xlstm_seq.tracking import create_tracker

if TYPE_CHECKING:
    from xlstm_seq.forecasting.forecaster import XLSTMForecaster


def log_fit(fc: XLSTMForecaster, panels: Panels, history: TrainingHistory) -> None:
    """One MLflow run of ``fc``'s fit on ``panels`` (nothing when ``fc.track`` is off): parameters, losses per step,
    fit time, and the forecast of the last window of up to four channels with the saved model."""
    with create_tracker(fc.experiment, run_name=f"{fc.alias_}-fit", enabled=fc.track,
                        tracking_uri=fc.tracking_uri) as tracker:  # fmt: skip
        tracker.log_params({**fc.get_params(), "freq_inferred": str(fc.freq_), "n_series": len(fc.series_)})
        tracker.set_tags({"forecasting.model": fc.model, "forecasting.backbone": fc.backbone})
        for step, value in enumerate(history.train):
            tracker.log_metrics({"train/loss": value}, step=step)
        for step, value in history.val:
            tracker.log_metrics({"val/loss": value}, step=step)
        tracker.log_metrics({"fit/seconds": fc.fit_seconds_, "fit/steps": fc.steps_trained_})
        guard = getattr(fc, "guardrail_", None)
        if guard is not None:  # the validation scores of the model and the baselines (validation_report_)
            for name, row in guard.report.iterrows():
                tracker.log_metrics({f"guardrail/{name}/{k}": float(row[k]) for k in ("mse", "mae", "score")})
            tracker.set_tags({"guardrail.fired": guard.fired, "guardrail.served": guard.served,
                              "guardrail.metric": guard.metric})  # fmt: skip
        if not fc.track:
            return
        # Forecast vs actual on the last window of (up to) the first four channels.
        starts = panels.offsets[1:] - fc.input_size - fc.h
        starts = starts[:4] if fc.mixing == "independent" else starts[:1]
        out = fc._forward_windows(panels, starts)  # (n, h, C, Q)
        if fc.intervals != "quantile" and fc.calibration_ is not None:  # the calibrated band instead
            widest = max(fc._levels())
            cols = list(forecast_columns(fc, panels, starts, out, [widest]).values())  # point, lo, hi
            out = np.stack([cols[1], cols[0], cols[2]], axis=-1)  # (n, h, C, 3)
        # Without a validation split the last window is one the model trained on: the title says so.
        what = "forecast of the held-out last window" if history.val else "in-sample fit of the last window"
        figure = forecast_figure(panels, starts, out, fc.input_size, fc.h, fc.alias_, what)
        tracker.log_figure(figure, "forecast")
        with tempfile.TemporaryDirectory() as tmp:
            tracker.log_artifact(fc.save(Path(tmp) / "model"), "model")


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
