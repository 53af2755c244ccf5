"""``AutoXLSTMForecaster``: the settings of an XLSTMForecaster chosen on validation windows by an Optuna search.

    auto = AutoXLSTMForecaster(h=24, num_samples=20, time_budget_s=900)
    auto.fit(df)                        # trials on the last val_size steps; the best settings refitted on all rows
    auto.best_config_, auto.trials_     # the chosen settings; one row per trial (settings, score, state, seconds)
    auto.confirmation_                  # the seeds' scores behind a tie check of the best trial against the first
    auto.predict(); auto.cross_validation(df, n_windows=3); auto.save("dir"); AutoXLSTMForecaster.load("dir")

The names follow neuralforecast's Auto models (``config``, ``num_samples``, ``search_alg``, ``backend``,
``valid_loss``). Every trial fits on the rows before the validation split of each series and is scored on the
windows whose targets lie in it (the guardrail's windows, ``forecasting.guardrails``); the TPE sampler is seeded and
the training is seeded, so a search on CPU with a trial budget is repeatable (a time budget ends it at a time that
depends on the machine). A median pruner stops a trial whose validation loss at a check is worse than the median of
the earlier trials at the same check. The first trial trains the grid-wide settings; a best trial that beats them
only by less than the seeds' spread is a tie, and the tie keeps them (``forecasting.auto_confirm``). The baselines
are scored on the same windows against the chosen trial: the guardrail warns, and ``fallback="baseline"`` serves
the baseline, as for a plain fit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from tqdm import tqdm

from xlstm_seq.forecasting.auto_budget import SearchBudget
from xlstm_seq.forecasting.auto_confirm import CONFIRMATION_COLUMNS, confirm_choice, validation_score
from xlstm_seq.forecasting.auto_space import DEFAULT_START, default_space, draw, merged_space, start_point
from xlstm_seq.forecasting.forecaster import XLSTMForecaster
from xlstm_seq.forecasting.guardrails import dlinear_twin, run_guardrail
from xlstm_seq.forecasting.panels import build_panels
from xlstm_seq.forecasting.validation import DS, ID, check_long_frame
from xlstm_seq.tracking import create_tracker

BACKENDS = ("optuna",)
VALID_LOSSES = ("mae", "mse")
LOOK_BACK_MULTIPLES = (2, 4, 8)
"""input_size=None searches look-backs of these multiples of h (at most 512) that the series are long enough for."""


class AutoXLSTMForecaster(BaseEstimator):
    """An XLSTMForecaster whose settings an Optuna search picks on validation windows at the end of the data.

    Args:
        h: Forecast horizon (steps).
        input_size: Look-back window; None searches 2h, 4h and 8h (at most 512) among those the series allow.
        config: The search space: None (the default space, ``forecasting.auto_space``), a dict merged over it
            (lists are choices, optuna distributions are drawn, other values are fixed settings of every trial,
            e.g. ``{"max_steps": 200, "freq": "h"}``), or a function ``config(trial) -> dict`` (neuralforecast's
            Optuna form) that draws every setting itself.
        num_samples: Trials at most.
        time_budget_s: Seconds for the whole fit: the search, the tie check and the refit (None: no time limit).
            The search starts no trial that would leave too little time for one more trial's fit and the fits
            after it, estimated from the trials timed so far (``forecasting.auto_budget``); the guardrail's
            baselines come on top (seconds on the long-horizon sets).
        search_alg: An Optuna sampler; None: TPE seeded with ``random_seed``.
        points_to_evaluate: Settings tried before the sampler draws (Ray Tune's name): "default" tries the grid-wide
            settings first (``auto_space.DEFAULT_START``, its entries that the space searches), so the search never
            picks a choice that scores worse than them on the validation windows; a list of dicts tries those (each
            name must be a searched setting, each value inside its range; with a function ``config``, the names it
            suggests); None starts with the sampler, as "default" does with a function ``config``.
        confirm_seeds: When the best trial is not the first (the first of ``points_to_evaluate``), both are fitted
            again with this many more seeds, and the best is kept only if its mean validation score beats the first's
            by more than the larger std over seeds; otherwise (a tie) the first is kept
            (``forecasting.auto_confirm``; ``confirmation_`` holds the scores). 0: no check.
        confirm_earlier: A best trial that survives the seeds must also score lower than the first on an earlier
            period: both fitted on the rows before the validation split and scored on its last ``val_size`` steps
            (skipped when the series are too short for it). Guards against a choice that wins on the validation
            period alone: on the eight long-horizon cells where the seeds kept a choice, it overruled four, among
            them the two that lost most on test (benchmarks/forecasting/auto_earlier_check.md).
        backend: "optuna" (the only one).
        valid_loss: The metric trials are ranked by on the validation windows: "mae" or "mse".
        val_size: Steps at the end of each series held out for the search (None: 2h, or h when the series are too
            short for 2h; fit warns then).
        pruning: Stop a trial early whose validation loss at a check is worse than the median of the earlier
            trials at the same check (Optuna's MedianPruner, after 2 complete trials).
        refit: Refit the best settings on all rows (with the best trial's step count); False keeps the best trial's
            model, fitted without the validation split.
        fallback: The guardrail's fallback (see XLSTMForecaster): "none" or "baseline".
        season_length: Season of the seasonal naive baseline (None: from the frame's freq).
        random_seed: Seeds the sampler and every trial's training.
        device: Where the trials train ("auto", "cpu", "cuda", "cuda:N").
        progress: A tqdm bar over the trials.
        track: Log the search to MLflow: one parent run, one nested run per trial.
        experiment: MLflow experiment.
        tracking_uri: MLflow store (default ``MLFLOW_TRACKING_URI`` or ./mlflow.db).
    """

    def __init__(
        self,
        h: int = 24,
        input_size: int | None = None,
        config: Mapping[str, Any] | Callable[[Any], dict] | None = None,
        num_samples: int = 10,
        time_budget_s: float | None = None,
        search_alg: Any = None,
        points_to_evaluate: str | Sequence[Mapping[str, Any]] | None = "default",
        confirm_seeds: int = 2,
        confirm_earlier: bool = True,
        backend: str = "optuna",
        valid_loss: str = "mae",
        val_size: int | None = None,
        pruning: bool = True,
        refit: bool = True,
        fallback: str = "none",
        season_length: int | None = None,
        random_seed: int = 1,
        device: str = "auto",
        progress: bool = True,
        track: bool = True,
        experiment: str = "xlstm-seq-forecasting-auto",
        tracking_uri: str | None = None,
    ):
        self.h = h
        self.input_size = input_size
        self.config = config
        self.num_samples = num_samples
        self.time_budget_s = time_budget_s
        self.search_alg = search_alg
        self.points_to_evaluate = points_to_evaluate
        self.confirm_seeds = confirm_seeds
        self.confirm_earlier = confirm_earlier
        self.backend = backend
        self.valid_loss = valid_loss
        self.val_size = val_size
        self.pruning = pruning
        self.refit = refit
        self.fallback = fallback
        self.season_length = season_length
        self.random_seed = random_seed
        self.device = device
        self.progress = progress
        self.track = track
        self.experiment = experiment
        self.tracking_uri = tracking_uri
        self._check()

    def _check(self) -> None:
        for name in ("h", "num_samples"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.input_size is not None and (not _is_int(self.input_size) or self.input_size < 1):
            raise ValueError(f"input_size must be None or a positive integer, got {self.input_size!r}")
        if self.val_size is not None and (not _is_int(self.val_size) or self.val_size < self.h):
            raise ValueError(f"val_size must be None or an integer >= h={self.h}, got {self.val_size!r}")
        if self.time_budget_s is not None and not (
            isinstance(self.time_budget_s, (int, float)) and self.time_budget_s > 0
        ):
            raise ValueError(f"time_budget_s must be None or a number of seconds > 0, got {self.time_budget_s!r}")
        if not _is_int(self.confirm_seeds) or self.confirm_seeds < 0:
            raise ValueError(f"confirm_seeds must be an integer >= 0, got {self.confirm_seeds!r}")
        if not isinstance(self.confirm_earlier, bool):
            raise ValueError(f"confirm_earlier must be True or False, got {self.confirm_earlier!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.valid_loss not in VALID_LOSSES:
            raise ValueError(f"valid_loss must be one of {VALID_LOSSES}, got {self.valid_loss!r}")
        if not (self.config is None or callable(self.config) or isinstance(self.config, Mapping)):
            raise ValueError(
                f"config must be None, a dict or a function of the trial, got {type(self.config).__name__}"
            )
        points = self.points_to_evaluate
        if not (points is None or points == "default" or (
                isinstance(points, Sequence) and not isinstance(points, str)
                and all(isinstance(p, Mapping) for p in points))):  # fmt: skip
            raise ValueError(f'points_to_evaluate must be "default", None or a list of dicts, got {points!r}')
        # The settings every trial shares are checked by the forecaster itself.
        XLSTMForecaster(h=self.h, fallback=self.fallback, season_length=self.season_length, device=self.device)

    # ------------------------------------------------------------------ search
    def _split(self, df: pd.DataFrame, freq: Any) -> tuple[int, list[int], bool]:
        """The validation steps, the look-backs to search and whether the series share timestamps."""
        sizes = df.groupby(ID, sort=False).size()
        shortest, h = int(sizes.min()), self.h
        wanted = self.input_size or 2 * h
        val_size = self.val_size or 2 * h
        if self.val_size is None and shortest < wanted + 2 * h + val_size:
            val_size = h  # too short for two horizons of validation: one horizon, said at fit
        need = (self.input_size or min(LOOK_BACK_MULTIPLES) * h) + 2 * h + val_size  # h + 1 training windows at least
        if shortest < need:
            short = sizes.idxmin()
            raise ValueError(
                f"series {short!r} has {shortest} rows but the search needs input_size + 2h + val_size = {need} "
                f"(h + 1 training windows before a validation split of {val_size} steps)"
            )
        if self.input_size is not None:
            looks = [int(self.input_size)]
        else:
            looks = [m * h for m in LOOK_BACK_MULTIPLES if m * h <= 512 and m * h + 2 * h + val_size <= shortest]
        starts = df.groupby(ID, sort=False)[DS].agg(["first", "last"])
        aligned = len(starts) > 1 and starts.nunique().eq(1).all() and sizes.nunique() == 1
        return int(val_size), looks, bool(aligned)

    def _space(self, input_size: int, aligned: bool) -> dict[str, Any] | Callable:
        if callable(self.config):
            return self.config
        return merged_space(default_space(input_size, aligned), self.config)

    def _start_points(self, looks: list[int], aligned: bool) -> list[dict[str, Any]]:
        """The parameters of the trials enqueued before the sampler draws (``points_to_evaluate``); a point without
        input_size takes the longest look-back searched."""
        if self.points_to_evaluate is None:
            return []
        strict = self.points_to_evaluate != "default"
        if not strict and callable(self.config):
            return []  # a function space draws its own settings: the grid-wide ones may not be among them
        points = self.points_to_evaluate if strict else [DEFAULT_START]
        enqueued = []
        for point in points:
            input_size = point.get("input_size", max(looks))
            if input_size not in looks:
                raise ValueError(f"points_to_evaluate: input_size={input_size!r} is not searched (searched: {looks})")
            params = start_point({k: v for k, v in point.items() if k != "input_size"},
                                 self._space(input_size, aligned), strict=strict)  # fmt: skip
            enqueued.append({"input_size": input_size, **params} if len(looks) > 1 else params)
        return enqueued

    def fit(self, df: pd.DataFrame, static_df: pd.DataFrame | None = None) -> AutoXLSTMForecaster:
        """Searches on the last ``val_size`` steps of each series, scores the baselines against the best trial on the
        same windows (the guardrail), then refits the best settings on all rows (``refit``).

        Raises:
            ValueError: bad frames, series too short for a search, or no trial that finished.
        """
        import optuna

        self._check()
        freq = check_long_frame(df, "df", freq=(self.config or {}).get("freq") if isinstance(self.config, Mapping)
                                else None)  # fmt: skip
        val_size, looks, aligned = self._split(df, freq)
        if self.val_size is None and val_size < 2 * self.h:
            import warnings

            warnings.warn(f"the series are too short for a validation split of 2h={2 * self.h} steps: the search "
                          f"scores on the last h={self.h} steps (one window per series)", stacklevel=2)  # fmt: skip
        self.val_size_ = val_size
        sampler = self.search_alg or optuna.samplers.TPESampler(seed=self.random_seed)
        pruner = (optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0) if self.pruning
                  else optuna.pruners.NopPruner())  # fmt: skip
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
        start_points = self._start_points(looks, aligned)
        for params in start_points:
            study.enqueue_trial(params, skip_if_exists=True)
        best: dict[str, Any] = {}
        first: dict[str, Any] = {}  # the first enqueued point's record, when there is one
        started = time.perf_counter()
        check_fits = self.confirm_seeds + int(self.confirm_earlier and self.confirm_seeds > 0)
        budget = SearchBudget(self.time_budget_s, check_fits, self._fits_after_search(), started)
        with create_tracker(self.experiment, run_name="auto-search", enabled=self.track,
                            tracking_uri=self.tracking_uri) as parent:  # fmt: skip
            parent.log_params({"h": self.h, "num_samples": self.num_samples, "time_budget_s": self.time_budget_s,
                               "valid_loss": self.valid_loss, "val_size": val_size, "random_seed": self.random_seed,
                               "input_sizes": looks})  # fmt: skip
            objective = self._objective(df, static_df, val_size, looks, aligned, best, parent.run_id,
                                        first if start_points else None)  # fmt: skip
            bar = tqdm(total=self.num_samples, desc="auto search", unit="trial", disable=not self.progress)

            def advance(study: Any, trial: Any) -> None:
                bar.update(1)
                if best:
                    bar.set_postfix(best=f"{best['score']:.4g}")
                complete = [t.user_attrs["seconds"] for t in study.trials if t.state.name == "COMPLETE"]
                best_is_first = bool(first) and best.get("number") == first.get("number")
                if not budget.leaves_room(complete, first.get("seconds"), best.get("seconds"), best_is_first):
                    study.stop()

            try:
                study.optimize(objective, n_trials=self.num_samples, callbacks=[advance])
            finally:
                bar.close()
            self.search_seconds_ = time.perf_counter() - started
            self.trials_ = _trials_table(study)
            if not best:
                raise ValueError(f"no trial of the search finished: {self.trials_['state'].value_counts().to_dict()}")
            self.confirmation_ = pd.DataFrame(columns=CONFIRMATION_COLUMNS)
            if first and best["number"] != first["number"] and self.confirm_seeds > 0:
                kept, self.confirmation_ = confirm_choice(first, best, df, static_df, val_size, self.confirm_seeds,
                                                          earlier=self.confirm_earlier)  # fmt: skip
                parent.log_text(self.confirmation_.to_csv(index=False), "confirmation.csv")
                parent.set_tags({"confirmation.kept": "first trial" if kept is first else "best trial"})
                best = kept
            self.best_config_, self.chosen_trial_ = dict(best["settings"]), int(best["number"])
            self._finish(df, static_df, val_size, best)
            parent.log_params({f"best.{k}": v for k, v in self.best_config_.items()})
            parent.log_metrics({"search/seconds": self.search_seconds_, "search/trials": len(self.trials_),
                                "best/score": best["score"], "refit/seconds": self.refit_seconds_})  # fmt: skip
            guard = self.model_.guardrail_
            for name, row in guard.report.iterrows():
                parent.log_metrics({f"guardrail/{name}/{k}": float(row[k]) for k in ("mse", "mae", "score")})
            parent.set_tags({"guardrail.fired": guard.fired, "guardrail.served": guard.served})
            parent.log_text(self.trials_.to_csv(index=False), "trials.csv")
        return self

    def _objective(self, df, static_df, val_size: int, looks: list[int], aligned: bool, best: dict, parent_id,
                   first: dict | None = None):  # fmt: skip
        import optuna

        spaces = {L: self._space(L, aligned) for L in looks}

        def objective(trial: Any) -> float:
            input_size = trial.suggest_categorical("input_size", looks) if len(looks) > 1 else looks[0]
            settings = {"input_size": input_size, **draw(trial, spaces[input_size])}
            settings.update(h=self.h, random_seed=self.random_seed, device=self.device, valid_loss=self.valid_loss,
                            guardrail=False, fallback="none", progress=False, track=False)  # fmt: skip
            try:
                fc = XLSTMForecaster(**settings)
            except ValueError as err:  # a combination the forecaster refuses (a user space may draw one)
                trial.set_user_attr("invalid", str(err))
                raise optuna.TrialPruned(f"invalid settings: {err}") from err
            checks: list[float] = []

            def report(check: int, score: float) -> None:
                checks.append(score)
                trial.report(score, check)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"validation loss {score:.4g} at check {check}")

            begun, pruned = time.perf_counter(), None
            with create_tracker(self.experiment, run_name=f"trial-{trial.number}", enabled=self.track,
                                tracking_uri=self.tracking_uri, tags=_child_of(parent_id)) as run:  # fmt: skip
                run.log_params(settings)
                try:
                    fc.fit(df, static_df=static_df, val_size=val_size, validation_callback=report)
                except optuna.TrialPruned as stop:  # raised again once the run is closed as finished, not failed
                    pruned = stop
                for check, value in enumerate(checks):
                    run.log_metrics({"val/loss": value}, step=check)
                run.set_tags({"trial.state": "PRUNED" if pruned else "COMPLETE"})
                if pruned is None:
                    score = validation_score(fc, df, static_df, val_size)
                    trial.set_user_attr("steps", fc.steps_trained_)
                    run.log_metrics({"val/score": score, "fit/seconds": fc.fit_seconds_,
                                     "fit/steps": fc.steps_trained_})  # fmt: skip
                seconds = time.perf_counter() - begun  # with the scoring, as a check's fit costs
                trial.set_user_attr("seconds", seconds)
            if pruned is not None:
                raise pruned
            best_check = int(np.argmin(checks)) if checks else -1
            record = dict(settings=_searched(settings), score=score, model=fc, best_check=best_check,
                          number=trial.number, seconds=seconds)  # fmt: skip
            if first is not None and trial.number == 0:
                first.update(record)
            if not best or score < best["score"]:
                best.update(record)
            return score

        return objective

    def _fits_after_search(self) -> int:
        """Fits of the chosen settings after the search that the time budget keeps room for: the refit."""
        return int(self.refit)

    def _finish(self, df: pd.DataFrame, static_df, val_size: int, best: dict) -> None:
        """The guardrail on the best trial's validation windows, then the refit (or the best trial's model)."""
        trial_fc: XLSTMForecaster = best["model"]
        trial_fc.set_params(guardrail=True, fallback=self.fallback, season_length=self.season_length)
        hist, futr, stat = trial_fc._lists()
        panels = build_panels(df, trial_fc.mixing, hist, futr, stat, static_df if static_df is not None
                              else trial_fc.static_, order=trial_fc.series_, scale=trial_fc.exog_scale_)  # fmt: skip
        guard = run_guardrail(trial_fc, df, static_df, val_size, panels)
        started = time.perf_counter()
        if self.refit:
            settings = {**trial_fc.get_params(), "progress": False, "track": False, "guardrail": False,
                        "fallback": "none"}  # fmt: skip
            if best["best_check"] >= 0:  # the steps at which the best trial's validation loss was lowest
                settings["max_steps"] = min(trial_fc.max_steps, (best["best_check"] + 1) * trial_fc.val_check_steps)
            model = XLSTMForecaster(**settings).fit(df, static_df=static_df)
            if guard.dlinear is not None:
                guard.dlinear = dlinear_twin(model).fit(df, static_df=static_df)
        else:
            model = trial_fc
        model.set_params(guardrail=True, fallback=self.fallback, season_length=self.season_length)
        model.guardrail_ = guard
        self.refit_seconds_ = time.perf_counter() - started if self.refit else 0.0
        self.model_ = model

    # ------------------------------------------------------------------ serving
    def _fitted(self) -> XLSTMForecaster:
        if not hasattr(self, "model_"):
            raise NotFittedError("this AutoXLSTMForecaster is not fitted yet: call fit(df) before predict")
        return self.model_

    @property
    def validation_report_(self) -> pd.DataFrame | None:
        """The guardrail's scores of the best trial and the baselines on the search's validation windows."""
        return self._fitted().validation_report_

    def predict(self, df: pd.DataFrame | None = None, static_df: pd.DataFrame | None = None,
                futr_df: pd.DataFrame | None = None, level: Sequence[float] | None = None) -> pd.DataFrame:  # fmt: skip
        """Forecasts with the chosen model (see :meth:`XLSTMForecaster.predict`)."""
        return self._fitted().predict(df, static_df=static_df, futr_df=futr_df, level=level)

    def update(self, new_df: pd.DataFrame) -> AutoXLSTMForecaster:
        """Appends new observations to the chosen model's history (see :meth:`XLSTMForecaster.update`)."""
        self._fitted().update(new_df)
        return self

    def cross_validation(self, df: pd.DataFrame, n_windows: int = 1, step_size: int | None = None,
                         h: int | None = None, static_df: pd.DataFrame | None = None, val_size: int = 0,
                         level: Sequence[float] | None = None, refit: bool | int = False) -> pd.DataFrame:  # fmt: skip
        """Cross-validation of the chosen settings (see :meth:`XLSTMForecaster.cross_validation`): each fit refits
        ``best_config_``, the search is not repeated per window (so windows the search saw are not out of sample)."""
        return self._fitted().cross_validation(df, n_windows, step_size, h, static_df, val_size, level, refit)

    def save(self, path: str | Path) -> Path:
        """Saves the chosen model as :meth:`XLSTMForecaster.save` does, with the search's best settings and trials
        table in its config.json."""
        model = self._fitted()
        model.search_ = {"best_config": self.best_config_, "trials": self.trials_.to_dict(orient="records"),
                         "val_size": self.val_size_, "search_seconds": self.search_seconds_,
                         "confirmation": self.confirmation_.to_dict(orient="records"),
                         "chosen_trial": self.chosen_trial_}  # fmt: skip
        return model.save(path)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> AutoXLSTMForecaster:
        """Restores a search saved by :meth:`save`: the chosen model, ``best_config_`` and ``trials_``."""
        model = XLSTMForecaster.load(path, device=device)
        search = getattr(model, "search_", None)
        if search is None:
            raise ValueError(f"{path} holds a forecaster saved without a search; load it with XLSTMForecaster.load")
        auto = cls(h=model.h, input_size=model.input_size, fallback=model.fallback, season_length=model.season_length,
                   device=model.device)  # fmt: skip
        auto.model_, auto.best_config_ = model, dict(search["best_config"])
        auto.chosen_trial_ = search.get("chosen_trial")
        auto.trials_ = pd.DataFrame.from_records(search["trials"])
        auto.confirmation_ = pd.DataFrame.from_records(search.get("confirmation", []), columns=CONFIRMATION_COLUMNS)
        auto.val_size_, auto.search_seconds_ = search["val_size"], search["search_seconds"]
        return auto


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _child_of(parent_id: str | None) -> dict[str, str]:
    """The MLflow tag that nests a run under ``parent_id`` (none when the parent is not tracked)."""
    return {"mlflow.parentRunId": parent_id} if parent_id else {}


def _searched(settings: dict[str, Any]) -> dict[str, Any]:
    """A trial's settings without the ones every trial shares (the forecaster's plumbing)."""
    plumbing = {"h", "random_seed", "device", "guardrail", "fallback", "progress", "track"}
    return {k: v for k, v in settings.items() if k not in plumbing}


def _trials_table(study: Any) -> pd.DataFrame:
    """One row per trial: number, state, score (valid_loss on the validation windows), seconds, steps, settings."""
    rows = []
    for trial in study.trials:
        rows.append({"trial": trial.number, "state": trial.state.name, "score": trial.value,
                     "seconds": trial.user_attrs.get("seconds"), "steps": trial.user_attrs.get("steps"),
                     "checks": len(trial.intermediate_values), **trial.params})  # fmt: skip
    return pd.DataFrame(rows)
