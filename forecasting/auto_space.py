"""The search space of ``AutoXLSTMForecaster``: the settings that mattered in the long-horizon grid, as Optuna
distributions, and how a user's ``config`` overrides them.

``config`` follows neuralforecast's Auto models with the Optuna backend: either a function ``config(trial) -> dict``
that draws every setting itself, or a dict merged over the default space whose values are

    a list                  the choices of a categorical setting
    an optuna distribution  drawn as given (optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True), ...)
    anything else           a fixed setting (not searched), e.g. ``{"max_steps": 200, "hist_exog_list": ["x"]}``

Optuna is imported only when a space is built, so importing the forecasting package does not need it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

DEFAULT_CHOICES: dict[str, list] = {
    "model": ["xlstm_time", "xlstm_time_linear", "xlstm_mixer"],
    "backbone": ["mlstm", "slstm"],
    "mixing": ["independent", "variates"],
    "revin_subtract_last": [False, True],
    "patch_len": [8, 16],
    "embedding_dim": [32, 64],
    "num_blocks": [1, 2],
    "dropout": [0.0, 0.3, 0.5],
    "loss": ["mae", "mse"],
    "freq_loss_weight": [0.0, 0.5, 1.0],
    "ema_decay": [None, 0.99],
    "max_steps": [300, 1000],
}
"""Categorical settings of the default space (learning_rate is drawn log-uniformly from [3e-4, 3e-3]). The choices
follow the hand-chosen long-horizon cells (configs/forecasting/long_horizon.yaml): the three xLSTM models that won a
data set, both backbones, both mixings, patches of 8 or 16 steps, RevIN centring on the mean or the last value,
dropout 0 to 0.5, MAE or MSE with the frequency-domain term at 0, 0.5 or 1, a moving average of the weights, and the
step budgets."""

DEFAULT_START: dict[str, Any] = {
    "model": "xlstm_time", "backbone": "mlstm", "mixing": "variates", "revin_subtract_last": False,
    "patch_len": 16, "embedding_dim": 64, "num_blocks": 1, "dropout": 0.3, "loss": "mae",
    "freq_loss_weight": 0.0, "ema_decay": None, "max_steps": 1000, "learning_rate": 1e-3,
}  # fmt: skip
"""The search's first trial: the settings the long-horizon grid shares across its data sets (one setting for all
five, chosen on them as a whole rather than per data set; its patch_len null is xlstm_time's 16). Evaluated first,
it is a floor: the search never ranks a choice above it that scores worse on the validation windows. Entries the
space does not search (a fixed ``config`` value, "variates" mixing for series that do not share timestamps) are left
to the space."""

FIXED_DEFAULTS: dict[str, Any] = {
    "batch_size": 32,
    "weight_decay": 0.05,
    "val_check_steps": 100,
    "early_stop_patience_steps": 3,
    "num_heads": 4,
    "ensemble": 1,
}
"""Settings every trial takes unless ``config`` names them (the grid-wide values; one seed per trial, since an
ensemble multiplies a trial's cost: ``config={"ensemble": [1, 3]}`` searches it, ``{"ensemble": 5}`` fixes it)."""

LEARNING_RATE = (3e-4, 3e-3)


def default_space(input_size: int, aligned: bool) -> dict[str, Any]:
    """The default space for a look-back of ``input_size`` steps; "variates" mixing only when the series share
    their timestamps (``aligned``) and there is more than one."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    space: dict[str, Any] = {k: CategoricalDistribution(v) for k, v in DEFAULT_CHOICES.items()}
    space["learning_rate"] = FloatDistribution(*LEARNING_RATE, log=True)
    patch = [p for p in DEFAULT_CHOICES["patch_len"] if p <= input_size] or [input_size]
    space["patch_len"] = CategoricalDistribution(patch)
    if not aligned:
        space["mixing"] = "independent"
    return {**FIXED_DEFAULTS, **space}


def merged_space(default: dict[str, Any], config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The default space with ``config``'s entries in place of its own (lists become categorical choices)."""
    from optuna.distributions import CategoricalDistribution

    space = dict(default)
    for name, value in (config or {}).items():
        if isinstance(value, list):
            if not value:
                raise ValueError(f"config[{name!r}] is an empty list of choices")
            value = CategoricalDistribution(value)
        elif isinstance(value, tuple):
            raise ValueError(
                f"config[{name!r}] is a tuple; give a list of choices or an optuna distribution "
                f"(optuna.distributions.FloatDistribution(low, high)) for a range"
            )
        space[name] = value
    return space


def start_point(point: Mapping[str, Any], space: dict[str, Any] | Callable, *, strict: bool) -> dict[str, Any]:
    """The entries of ``point`` that ``space`` searches, as parameters to enqueue for a first trial. ``strict``
    (a user's point): a name the space does not search or a value outside its distribution is an error; otherwise
    (the default start) such entries are dropped and the space draws them. A function space names its own
    parameters: the point is taken as it is."""
    from optuna.distributions import BaseDistribution, CategoricalDistribution

    if callable(space):
        return dict(point)
    params = {}
    for name, value in point.items():
        distribution = space.get(name)
        if not isinstance(distribution, BaseDistribution):
            if strict:
                searched = sorted(k for k, v in space.items() if isinstance(v, BaseDistribution))
                raise ValueError(f"points_to_evaluate: {name!r} is not a searched setting (searched: {searched})")
            continue
        inside = (value in distribution.choices if isinstance(distribution, CategoricalDistribution)
                  else isinstance(value, (int, float)) and distribution.low <= value <= distribution.high)  # fmt: skip
        if not inside:
            if strict:
                raise ValueError(f"points_to_evaluate: {name}={value!r} lies outside the space ({distribution})")
            continue
        params[name] = value
    return params


def draw(trial: Any, space: dict[str, Any] | Callable[[Any], dict]) -> dict[str, Any]:
    """One trial's settings: ``space(trial)`` for a function, else every distribution drawn and fixed values kept."""
    if callable(space):
        settings = space(trial)
        if not isinstance(settings, Mapping):
            raise ValueError(f"config(trial) must return a dict of settings, got {type(settings).__name__}")
        return dict(settings)
    return {name: _suggest(trial, name, value) for name, value in space.items()}


def _suggest(trial: Any, name: str, value: Any) -> Any:
    """``value`` drawn through the trial's public suggest methods when it is a distribution, else as it is."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(value, CategoricalDistribution):
        return trial.suggest_categorical(name, list(value.choices))
    if isinstance(value, FloatDistribution):
        return trial.suggest_float(name, value.low, value.high, log=value.log, step=value.step)
    if isinstance(value, IntDistribution):
        return trial.suggest_int(name, value.low, value.high, log=value.log, step=value.step)
    return value
