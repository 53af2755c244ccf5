"""Forecasting quickstart: AirPassengers, an xLSTM forecaster with prediction intervals, a plot (< 2 min on CPU).

    python examples/forecast_quickstart.py [plot.png]

The plot goes to the path given, else to forecast_quickstart.png in the working directory. AirPassengers ships with
the package, so no data root and no network are needed.

Each fit is logged to MLflow (./mlflow.db by default; set MLFLOW_TRACKING_URI to change it).
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from xlstm_seq.forecasting import XLSTMForecaster, load_air_passengers, mae, seasonal_naive

torch.set_num_threads(1)  # a model this small trains fastest on one thread
df = load_air_passengers()  # unique_id, ds (month starts), y
train, test = df.iloc[:-12], df.iloc[-12:]

fc = XLSTMForecaster(
    h=12,
    input_size=36,
    model="xlstm_time",  # RevIN, decomposition, patches of 6 months, an mLSTM stack, a linear head
    backbone="mlstm",
    patch_len=6,
    embedding_dim=32,
    num_blocks=1,
    loss="quantile",
    level=[80, 95],  # intervals="conformal" (default): calibrated on a first fit without the last 24 months
    max_steps=300,
    learning_rate=3e-3,
    random_seed=0,
)
fc.fit(train)
forecast = fc.predict(level=[80, 95])
print(forecast.to_string(index=False, float_format="%.1f"))

naive = seasonal_naive(train["y"].to_numpy(), 12, 12)
print(f"MAE {mae(test['y'], forecast['xLSTMTime']):.1f} vs seasonal naive {mae(test['y'], naive):.1f}")
y = test["y"].to_numpy()
inside = (y >= forecast["xLSTMTime-lo-80"].to_numpy()) & (y <= forecast["xLSTMTime-hi-80"].to_numpy())
print(f"the 80 % interval holds {inside.sum()} of the {len(y)} held-out months")

fig, ax = plt.subplots(figsize=(9, 4))
ax.plot(df["ds"], df["y"], color="k", lw=1, label="actual")
ax.plot(forecast["ds"], forecast["xLSTMTime"], color="tab:blue", label="xLSTMTime")
ax.fill_between(
    forecast["ds"], forecast["xLSTMTime-lo-95"], forecast["xLSTMTime-hi-95"], color="tab:blue", alpha=0.15, label="95 %"
)
ax.fill_between(
    forecast["ds"], forecast["xLSTMTime-lo-80"], forecast["xLSTMTime-hi-80"], color="tab:blue", alpha=0.3, label="80 %"
)
ax.set(title="AirPassengers: last year held out", ylabel="passengers (thousands)")
ax.legend()
plot_path = Path(sys.argv[1] if len(sys.argv) > 1 else "forecast_quickstart.png")
plot_path.parent.mkdir(parents=True, exist_ok=True)
fig.savefig(plot_path, dpi=120, bbox_inches="tight")
print(f"wrote {plot_path}")
