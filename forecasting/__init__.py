"""Forecasters for pandas long-format frames.

    from xlstm_seq.forecasting import XLSTMForecaster, load_long_horizon, load_air_passengers

``XLSTMForecaster`` follows Nixtla's long frame (``unique_id``, ``ds``, ``y``) and verbs (fit, predict,
cross_validation, save/load); the models are chosen by name (``MODELS``: ``xlstm_time``, ``xlstm_time_linear``,
``xlstm_mixer``, ``xlstm_encoder``, ``dlinear``). The long-horizon sets load by name (``LONG_HORIZON``), with the
papers' splits and train-statistics scaling. ``AutoXLSTMForecaster`` chooses the settings by an Optuna search on
validation windows (the ``optuna`` package, in the ``forecast`` extra). ``StatefulXLSTMForecaster`` keeps a
recurrent state per series, so that ``update`` costs a constant amount per new observation.
"""

from xlstm_seq.forecasting.auto import AutoXLSTMForecaster
from xlstm_seq.forecasting.datasets import LONG_HORIZON, load_air_passengers, load_long_horizon, load_m4
from xlstm_seq.forecasting.forecaster import XLSTMForecaster
from xlstm_seq.forecasting.metrics import mae, mase, mse, seasonal_naive, smape
from xlstm_seq.forecasting.models import MODELS
from xlstm_seq.forecasting.stateful import StatefulXLSTMForecaster

__all__ = [
    "AutoXLSTMForecaster",
    "LONG_HORIZON",
    "MODELS",
    "StatefulXLSTMForecaster",
    "XLSTMForecaster",
    "load_air_passengers",
    "load_long_horizon",
    "load_m4",
    "mae",
    "mase",
    "mse",
    "seasonal_naive",
    "smape",
]
