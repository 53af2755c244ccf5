"""`xlstm-seq forecast auto`: AutoXLSTMForecaster on long-horizon cells beside the grid-wide defaults and the
hand-chosen grid, and the guardrail study (bench/forecasting/guardrail_study.py); writes
benchmarks/forecasting/auto.md and a PNG beside it.

Per long-horizon cell (the standard split of bench/forecasting/long_horizon.py, look-back as in the grid):

    defaults      the grid-wide xLSTM settings of configs/forecasting/long_horizon.yaml (mean of its 5 seeds)
    hand-chosen   that file's per-data-set settings for the cell (mean of 5 seeds, member variants as there)
    auto          an Optuna search with ``time_budget_s`` / ``num_samples`` on the validation split, trained on the
                  training split (refit=False: the grid's protocol), then the chosen settings as the mean of as many
                  seeds as the grid takes (the best trial is seed 0's member); for a cell in ``fixed_choices``, no
                  search: the settings a search already chose, fitted with the same seeds

Every column's members take the random seeds ``seed * 5 .. seed * 5 + 4`` (5: the grid's ensemble), so ``seed=1``
with ``fixed_choices`` measures another seed set of the defaults and of a recorded choice.

Every choice is made on the validation split; the test split is read once, for the report.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from xlstm_seq.config import ConfigMixin
from xlstm_seq.config_io import load_yaml
from xlstm_seq.forecasting import AutoXLSTMForecaster, XLSTMForecaster
from xlstm_seq.forecasting.auto_confirm import CONFIRMATION_COLUMNS
from xlstm_seq.forecasting.datasets import load_long_horizon
from xlstm_seq.forecasting.guardrails import GuardrailWarning
from xlstm_seq_bench.forecasting.guardrail_study import m4_weekly_fits, random_walk_fits
from xlstm_seq_bench.forecasting.long_horizon import _fit_ours, _test_windows
from xlstm_seq_bench.forecasting.long_horizon_config import LongHorizonConfig
from xlstm_seq_bench.forecasting.scoring import score_windows


@dataclass
class AutoStudyConfig(ConfigMixin):
    """Settings of `xlstm-seq forecast auto` (configs/forecasting/auto.yaml)."""

    cells: list[list[Any]] = field(default_factory=lambda: [["ili", 24], ["etth2", 96], ["etth1", 96]])
    """[data set, horizon] of each long-horizon cell; [] skips the comparison."""
    grid: str = "configs/forecasting/long_horizon.yaml"
    """The long-horizon grid whose defaults and hand-chosen settings auto is compared with."""
    run_hand_chosen: bool = True
    """Refit the hand-chosen cells here (False: only defaults and auto)."""
    time_budget_s: float = 840.0
    """Seconds for auto mode per cell: the search, the tie check and the ensemble's other seeds (the search keeps
    room for them, ``forecasting.auto_budget``); the guardrail's baselines and the test scoring come on top."""
    num_samples: int = 40
    """Trials per cell at most."""
    confirm_earlier: bool = True
    """AutoXLSTMForecaster's ``confirm_earlier``: a winner must also win on the period before the validation split."""
    auto_config: dict[str, Any] = field(default_factory=dict)
    """Changes to AutoXLSTMForecaster's default space (its ``config``)."""
    random_walks: dict[str, Any] = field(default_factory=lambda: {"n_sets": 8, "n_series": 4, "length": 600,
                                                                   "test_windows": 4})  # fmt: skip
    """Random-walk sets of the guardrail study; n_sets 0 skips them."""
    random_walk_settings: dict[str, Any] = field(default_factory=lambda: {"h": 24, "input_size": 96})
    """XLSTMForecaster settings of the random-walk fits (the library defaults otherwise)."""
    m4_weekly_groups: int = 4
    """Global fits on M4 Weekly, each on every n-th series; 0 skips M4 Weekly."""
    m4_weekly_settings: dict[str, Any] = field(default_factory=lambda: {
        "input_size": 52, "patch_len": 4, "max_steps": 500, "batch_size": 64, "learning_rate": 0.003,
        "scale_loss": True, "val_check_steps": 100, "early_stop_patience_steps": 3})  # fmt: skip
    """XLSTMForecaster settings of the M4 Weekly fits (configs/forecasting/m4.yaml's, with fewer steps)."""
    fixed_choices: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Choices auto already made, by cell ("etth1-96"): XLSTMForecaster settings as the cell's search logged them
    (its MLflow run's ``best.*`` parameters). Such a cell runs no search; its auto column fits these settings with
    the study's seeds (training plumbing such as ``random_seed``, ``device`` and ``track`` is the study's)."""
    seed: int = 0
    """Seed set: every column's members take the random seeds ``seed * ensemble + j`` (the grid's ensemble)."""
    num_threads: int = 1
    device: str = "cpu"
    out: str = "benchmarks/forecasting/auto.md"
    experiment: str = "xlstm-seq-forecast-auto"

    def __post_init__(self) -> None:
        for cell, settings in self.fixed_choices.items():
            name, _, h = str(cell).rpartition("-")
            if not name or not h.isdigit() or not isinstance(settings, dict):
                raise ValueError(f"fixed_choices: {cell!r} must name a cell as 'dataset-h' (e.g. 'etth1-96') and map "
                                 "to XLSTMForecaster settings")  # fmt: skip
        planned = {f"{d}-{int(h)}" for d, h in self.cells}
        unused = sorted(set(self.fixed_choices) - planned)
        if unused and self.cells:
            raise ValueError(f"fixed_choices names cells not in cells: {unused}")


PLUMBING = ("h", "random_seed", "device", "guardrail", "fallback", "progress", "track", "experiment")
"""XLSTMForecaster arguments a fixed choice takes from the study, not from the recorded settings."""


@dataclass
class CellResult:
    """Test MSE/MAE and fit seconds of one cell for defaults, hand-chosen and auto; the search's record."""

    dataset: str
    h: int
    input_size: int
    scores: dict[str, dict[str, float]]
    best_config: dict[str, Any]
    trials: Any
    search_seconds: float
    val_report: Any
    chosen_trial: int | None
    """The trial whose settings auto kept (0: the grid-wide first trial; None: a fixed choice, no search)."""
    confirmation: Any
    """The seeds' scores of the tie check between the best trial and the first (empty when not run)."""


class _EnsembleAuto(AutoXLSTMForecaster):
    """Auto mode whose time budget keeps room for the ensemble's other seeds, fitted after it."""

    members = 1  # set on the instance; not an __init__ parameter, so sklearn's get_params stays the parent's

    def _fits_after_search(self) -> int:
        return super()._fits_after_search() + self.members - 1


def _cell_frames(data, h: int, grid: LongHorizonConfig):
    """(frame up to the last test window, training rows, validation size, windows, step) of a cell."""
    end, n_windows, step = _test_windows(data, h, grid.max_test_windows, "test")
    df = data.to_long(end, integer_ds=True)
    train = df[df["ds"] < data.borders["test"][0]]
    return df, train, data.borders["val"][1] - data.borders["val"][0], n_windows, step


def _fit_seeds(settings: dict[str, Any], seeds, train, val_size: int, track: bool, experiment: str) -> list:
    """One XLSTMForecaster of ``settings`` per seed, fitted on ``train`` (early stopping on its last val_size rows)."""
    fitted = []
    for seed in seeds:
        params = {**settings, "random_seed": seed, "guardrail": False, "fallback": "none", "progress": False,
                  "track": track, "experiment": experiment}  # fmt: skip
        fitted.append(XLSTMForecaster(**params).fit(train, val_size=val_size))
    return fitted


def _auto_cell(config: AutoStudyConfig, grid: LongHorizonConfig, data, h: int, L: int, members: int, track: bool):
    """The search on the cell's validation split, then ``members`` seeds of the chosen settings; test scores."""
    df, train, val_size, n_windows, step = _cell_frames(data, h, grid)
    auto = _EnsembleAuto(h=h, input_size=L, config=config.auto_config or None, num_samples=config.num_samples,
                         time_budget_s=config.time_budget_s, confirm_earlier=config.confirm_earlier,
                         valid_loss="mse", val_size=val_size, refit=False,
                         season_length=data.season, random_seed=config.seed * members, device=config.device,
                         progress=False, track=track, experiment=config.experiment)  # fmt: skip
    auto.members = members
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GuardrailWarning)  # the report shows the validation scores
        auto.fit(train)
    others = range(config.seed * members + 1, (config.seed + 1) * members)
    fitted = [auto.model_, *_fit_seeds(auto.model_.get_params(), others, train, val_size, track, config.experiment)]
    seconds = time.perf_counter() - started
    scores = score_windows(fitted[0], df, n_windows=n_windows, step_size=step, ensemble_with=fitted[1:])
    return auto, {**scores, "seconds": seconds}


def _fixed_cell(config: AutoStudyConfig, grid: LongHorizonConfig, data, h: int, L: int, members: int, track: bool,
                settings: dict[str, Any]) -> dict[str, float]:  # fmt: skip
    """A recorded choice without a search: ``members`` seeds of ``settings``, as auto's refits fit them; test scores."""
    df, train, val_size, n_windows, step = _cell_frames(data, h, grid)
    params = {"input_size": L, **{k: v for k, v in settings.items() if k not in PLUMBING}, "h": h,
              "device": config.device}  # fmt: skip
    started = time.perf_counter()
    seeds = range(config.seed * members, (config.seed + 1) * members)
    fitted = _fit_seeds(params, seeds, train, val_size, track, config.experiment)
    seconds = time.perf_counter() - started
    scores = score_windows(fitted[0], df, n_windows=n_windows, step_size=step, ensemble_with=fitted[1:])
    return {**scores, "seconds": seconds}


def run_cells(config: AutoStudyConfig, track: bool, done=lambda cells: None) -> list[CellResult]:
    """The long-horizon comparison, cell by cell; ``done(cells)`` after each cell."""
    grid = LongHorizonConfig.from_dict(load_yaml(config.grid)).replace(device=config.device)
    results = []
    for name, h in config.cells:
        h = int(h)
        data = load_long_horizon(name)
        L, hand, _ = grid.settings_for(name, h)
        scores = {}
        for label, settings in (("defaults", grid.xlstm), ("hand-chosen", hand)):
            if label == "hand-chosen" and not config.run_hand_chosen:
                continue
            fit = _fit_ours(data, h, L, settings, config.seed, grid, track)
            scores[label] = {"mse": fit.mse, "mae": fit.mae, "seconds": fit.seconds}
            print(f"{name} h={h} {label}: test MSE {fit.mse:.4f} ({fit.seconds:.0f} s)", flush=True)
        fixed = config.fixed_choices.get(f"{name}-{h}")
        if fixed is not None:
            scores["auto"] = _fixed_cell(config, grid, data, h, L, grid.xlstm.ensemble, track, fixed)
            result = CellResult(name, h, L, scores, dict(fixed), pd.DataFrame(columns=["trial", "state", "score"]),
                                0.0, None, None, pd.DataFrame(columns=CONFIRMATION_COLUMNS))  # fmt: skip
        else:
            auto, scores["auto"] = _auto_cell(config, grid, data, h, L, grid.xlstm.ensemble, track)
            result = CellResult(name, h, L, scores, auto.best_config_, auto.trials_, auto.search_seconds_,
                                auto.validation_report_, auto.chosen_trial_, auto.confirmation_)  # fmt: skip
        label = "auto (fixed choice)" if fixed is not None else "auto"
        print(f"{name} h={h} {label}: test MSE {scores['auto']['mse']:.4f} ({scores['auto']['seconds']:.0f} s)",
              flush=True)  # fmt: skip
        results.append(result)
        done(results)
    return results


def run_auto_study(config: AutoStudyConfig, *, track: bool = True, command: str | None = None) -> Path:
    """Runs the guardrail study, then the comparison cell by cell, and writes the report after each part (a run
    stopped early leaves a page of what finished, whose targets section names the cells run); returns its path."""
    from xlstm_seq_bench.forecasting.auto_report import capture_provenance, write_report

    torch.set_num_threads(config.num_threads)
    provenance = capture_provenance(config, command)
    started = time.perf_counter()
    walks = config.random_walks
    walk_fits = (random_walk_fits({**config.random_walk_settings, "progress": False, "track": False},
                                  walks["n_sets"], walks["n_series"], walks["length"], walks["test_windows"],
                                  config.seed) if walks.get("n_sets") else [])  # fmt: skip
    m4 = ([], 0, 0)
    if config.m4_weekly_groups:
        m4 = m4_weekly_fits({**config.m4_weekly_settings, "progress": False, "track": False},
                            config.m4_weekly_groups, config.seed)  # fmt: skip

    def write(cells: list[CellResult]) -> Path:
        return write_report(config, cells, walk_fits, m4, time.perf_counter() - started, provenance.finish())

    page = write([])
    print(f"guardrail study written to {page}", flush=True)
    cells = run_cells(config, track, done=write)
    return write(cells)
