"""AutoXLSTMForecaster: a seeded Optuna search on tiny frames (2-4 trials), its trials table, nested MLflow runs,
pruning, budgets, the guardrail on the chosen model, and save/load."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from xlstm_seq.forecasting import AutoXLSTMForecaster

pytestmark = pytest.mark.filterwarnings("ignore::xlstm_seq.forecasting.guardrails.GuardrailWarning")

TINY = {"max_steps": 20, "val_check_steps": 5, "embedding_dim": 8, "num_heads": 2, "num_blocks": 1, "batch_size": 8}


def make_auto(**kw) -> AutoXLSTMForecaster:
    settings = dict(h=6, input_size=24, config=TINY, num_samples=2, progress=False, track=False, season_length=12)
    return AutoXLSTMForecaster(**{**settings, **kw})


def test_search_is_repeatable_and_fills_best_config_and_trials(frame):
    df = frame(n_series=2, length=120)
    first, second = make_auto().fit(df), make_auto().fit(df)
    assert first.best_config_ == second.best_config_
    np.testing.assert_allclose(first.trials_["score"], second.trials_["score"])
    trials = first.trials_
    assert len(trials) == 2 and set(trials["state"]) == {"COMPLETE"}
    assert {"model", "backbone", "dropout", "loss", "learning_rate", "score", "seconds"} <= set(trials.columns)
    assert first.best_config_["max_steps"] == 20  # a fixed setting of config
    best = trials.loc[trials["score"].idxmin()]
    assert first.best_config_["learning_rate"] == pytest.approx(best["learning_rate"])
    report = first.validation_report_
    assert report.loc[first.model_.alias_, "score"] == pytest.approx(best["score"])
    assert {"naive", "seasonal_naive", "dlinear"} <= set(report.index)
    out = first.predict()
    assert len(out) == 2 * 6 and np.isfinite(out[first.model_.alias_]).all()


def test_each_trial_is_a_nested_mlflow_run(frame, mlflow_in_tmp):
    auto = make_auto(track=True).fit(frame(n_series=1, length=120))
    runs = mlflow.search_runs(experiment_names=[auto.experiment], output_format="list")
    parents = [r for r in runs if r.info.run_name == "auto-search"]
    children = [r for r in runs if r.info.run_name.startswith("trial-")]
    assert len(parents) == 1 and len(children) == 2
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in children)
    assert parents[0].data.params["best.model"] == auto.best_config_["model"]
    assert "guardrail/naive/score" in parents[0].data.metrics
    assert all(r.info.status == "FINISHED" and r.data.tags["trial.state"] == "COMPLETE" for r in children)


def test_bad_trials_are_pruned_early(frame):
    """Trials 0 and 1 learn; the later ones barely move (learning rate 1e-7), so the median pruner stops them at a
    check where they are worse than the median of the earlier trials."""

    def config(trial):
        rate = 1e-2 if trial.number < 2 else 1e-7
        return {**TINY, "max_steps": 40, "val_check_steps": 10, "model": "xlstm_time", "learning_rate": rate}

    auto = make_auto(config=config, num_samples=4).fit(frame(n_series=1, length=120))
    states = auto.trials_["state"].tolist()
    assert states[:2] == ["COMPLETE", "COMPLETE"]
    assert "PRUNED" in states[2:]
    pruned = auto.trials_[auto.trials_["state"] == "PRUNED"]
    assert (pruned["checks"] < 4).all()  # stopped before the last of its 4 checks


def test_time_budget_stops_the_search(frame):
    auto = make_auto(num_samples=5, time_budget_s=0.01).fit(frame(n_series=1, length=120))
    assert len(auto.trials_) == 1  # no trial starts once the budget is spent


def test_save_and_load_keep_the_search(frame, tmp_path):
    auto = make_auto(fallback="baseline").fit(frame(n_series=1, length=120))
    loaded = AutoXLSTMForecaster.load(auto.save(tmp_path / "auto"))
    assert loaded.best_config_ == auto.best_config_
    pd.testing.assert_frame_equal(loaded.trials_, auto.trials_, check_dtype=False)
    pd.testing.assert_frame_equal(loaded.predict(), auto.predict())
    assert loaded.model_.served_ == auto.model_.served_
    assert loaded.chosen_trial_ == auto.chosen_trial_ and len(loaded.confirmation_) == len(auto.confirmation_)


def test_short_series_score_on_one_horizon_with_a_warning(frame):
    with pytest.warns(UserWarning, match="too short for a validation split of 2h"):
        auto = make_auto(num_samples=1).fit(frame(n_series=1, length=24 + 12 + 11))
    assert auto.val_size_ == 6


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"backend": "ray"}, "backend must be one of"),
        ({"valid_loss": "quantile"}, "valid_loss must be one of"),
        ({"num_samples": 0}, "num_samples must be a positive integer"),
        ({"val_size": 3}, "val_size must be None or an integer >= h"),
        ({"fallback": "best"}, "fallback must be one of"),
        ({"config": {"dropout": ()}}, "is a tuple"),
    ],
)
def test_bad_auto_settings(settings, message, frame):
    with pytest.raises(ValueError, match=message):
        make_auto(**settings).fit(frame(n_series=1, length=120))


def test_series_too_short_for_any_search(frame):
    with pytest.raises(ValueError, match="series 's0' has 40 rows but the search needs"):
        make_auto().fit(frame(n_series=1, length=40))


def test_the_grid_wide_settings_are_the_first_trial(frame):
    """With the default points_to_evaluate, trial 0 trains the grid-wide settings (the ones the space searches), so
    the chosen settings score no worse than them on the validation windows; without it the sampler draws trial 0."""
    from xlstm_seq.forecasting.auto_space import DEFAULT_START

    df = frame(n_series=2, length=120)
    auto = make_auto(num_samples=3).fit(df)
    first = auto.trials_.iloc[0]
    searched = {k: v for k, v in DEFAULT_START.items() if k not in TINY}
    assert searched["mixing"] == "variates"  # the two series share timestamps, so variates mixing is searched
    for name, value in searched.items():
        assert first[name] == value or (value is None and pd.isna(first[name])), name
    assert auto.trials_["score"].min() <= first["score"]
    drawn = make_auto(num_samples=1, points_to_evaluate=None).fit(df).trials_.iloc[0]
    assert any(drawn[k] != v for k, v in searched.items() if v is not None)


def test_a_users_points_are_tried_first_and_checked(frame):
    df = frame(n_series=1, length=120)
    point = {"model": "xlstm_mixer", "dropout": 0.5, "learning_rate": 2e-3}
    auto = make_auto(num_samples=2, points_to_evaluate=[point]).fit(df)
    first = auto.trials_.iloc[0]
    assert (first["model"], first["dropout"], first["learning_rate"]) == ("xlstm_mixer", 0.5, 2e-3)
    bad = [
        ([{"max_steps": 5}], "'max_steps' is not a searched setting"),  # fixed by TINY
        ([{"dropout": 0.9}], r"dropout=0.9 lies outside the space"),
        ([{"learning_rate": 1.0}], r"learning_rate=1.0 lies outside the space"),
        ([{"input_size": 48}], r"input_size=48 is not searched \(searched: \[24\]\)"),
    ]
    for points, message in bad:
        with pytest.raises(ValueError, match=message):
            make_auto(points_to_evaluate=points).fit(df)
    with pytest.raises(ValueError, match="points_to_evaluate must be"):
        make_auto(points_to_evaluate="grid")


def _fitted_tiny(frame_df, **kw):
    from xlstm_seq.forecasting import XLSTMForecaster

    settings = dict(h=6, input_size=24, season_length=12, valid_loss="mae", progress=False, track=False, **TINY)
    return XLSTMForecaster(**{**settings, **kw}).fit(frame_df, val_size=12)


def test_a_tie_within_the_seeds_spread_keeps_the_first_trial(frame):
    """Two candidates with the same settings score the same on every seed: the gap is 0, within any spread, so the
    first is kept; a candidate that barely trains (learning rate 1e-7) loses to one that does, on every seed."""
    from xlstm_seq.forecasting.auto_confirm import confirm_choice, validation_score

    df = frame(n_series=1, length=120)
    twin_a, twin_b = _fitted_tiny(df), _fitted_tiny(df)
    score = validation_score(twin_a, df, None, 12)
    first = {"settings": {"learning_rate": 1e-3}, "score": score, "model": twin_a, "number": 0}
    best = {"settings": {"learning_rate": 1e-3}, "score": score, "model": twin_b, "number": 1}
    kept, table = confirm_choice(first, best, df, None, 12, seeds=1)
    assert kept is first and len(table) == 4 and table["seed"].tolist() == [1, 2, 1, 2]
    by_seed = table.pivot(index="seed", columns="candidate", values="score")
    np.testing.assert_allclose(by_seed["first trial"], by_seed["best trial"])  # the same scores, seed by seed
    stalled, learner = _fitted_tiny(df, learning_rate=1e-7), _fitted_tiny(df, learning_rate=3e-2)
    first = {"settings": {}, "score": validation_score(stalled, df, None, 12), "model": stalled, "number": 0}
    best = {"settings": {}, "score": validation_score(learner, df, None, 12), "model": learner, "number": 1}
    assert best["score"] < first["score"]
    kept, _ = confirm_choice(first, best, df, None, 12, seeds=2)
    assert kept is best


def test_the_search_checks_its_winner_against_the_first_trial(frame):
    def config(trial):
        return {**TINY, "model": "xlstm_time", "learning_rate": 1e-7 if trial.number == 0 else 3e-2}

    auto = make_auto(config=config, num_samples=2, points_to_evaluate=[{}], confirm_seeds=1)
    auto.fit(frame(n_series=1, length=120))
    assert auto.chosen_trial_ == 1 and auto.best_config_["learning_rate"] == 3e-2
    checked = auto.confirmation_
    assert checked["candidate"].tolist() == ["first trial", "first trial", "best trial", "best trial",
                                             "first trial", "best trial"]  # fmt: skip
    assert checked["period"].tolist() == ["validation"] * 4 + ["earlier"] * 2  # confirm_earlier=True by default
    plain = make_auto(config=config, num_samples=2, points_to_evaluate=[{}], confirm_seeds=0)
    assert plain.fit(frame(n_series=1, length=120)).confirmation_.empty
    with pytest.raises(ValueError, match="confirm_seeds must be an integer >= 0"):
        make_auto(confirm_seeds=-1)


def test_earlier_rows_drop_the_last_val_size_steps_of_each_series(frame):
    from xlstm_seq.forecasting.validation import drop_last_steps

    df = pd.concat([frame(n_series=1, length=50), frame(n_series=1, length=40).assign(unique_id="other")])
    before = drop_last_steps(df, 12)
    assert sorted(before.groupby("unique_id").size()) == [28, 38]
    for uid, rows in before.groupby("unique_id"):
        whole = df[df["unique_id"] == uid]
        pd.testing.assert_frame_equal(rows, whole.iloc[: len(whole) - 12])


def _candidates(df):
    from xlstm_seq.forecasting.auto_confirm import validation_score

    stalled, learner = _fitted_tiny(df, learning_rate=1e-7), _fitted_tiny(df, learning_rate=3e-2)
    first = {"settings": {}, "score": validation_score(stalled, df, None, 12), "model": stalled, "number": 0}
    best = {"settings": {}, "score": validation_score(learner, df, None, 12), "model": learner, "number": 1}
    return first, best


def test_the_earlier_period_check_keeps_a_winner_that_wins_there_too(frame):
    from xlstm_seq.forecasting.auto_confirm import confirm_choice

    df = frame(n_series=1, length=120)
    first, best = _candidates(df)
    kept, table = confirm_choice(first, best, df, None, 12, seeds=1, earlier=True)
    assert kept is best
    earlier = table[table["period"] == "earlier"].set_index("candidate")["score"]
    assert list(earlier.index) == ["first trial", "best trial"] and earlier["best trial"] < earlier["first trial"]
    validation = table[table["period"] == "validation"]
    assert len(validation) == 4 and not np.isin(earlier.to_numpy(), validation["score"].to_numpy()).any()


def test_a_winner_on_the_validation_period_alone_is_not_kept(frame, monkeypatch):
    """Scores that favour the best trial on the validation period and the first on the period before it: the
    check keeps the first trial. The scores are stand-ins keyed by the data each model is scored on."""
    from xlstm_seq.forecasting import auto_confirm

    df = frame(n_series=1, length=120)
    short = frame(n_series=1, length=24 + 6 + 12 + 12 - 1)  # one row short of a fit before the validation split
    first, best = _candidates(df)
    monkeypatch.setattr(auto_confirm, "validation_score", lambda fc, data, static_df, val_size: (
        (1.0 if fc.learning_rate < 1e-3 else 0.5) if len(data) in (len(df), len(short))
        else (0.5 if fc.learning_rate < 1e-3 else 1.0)))  # fmt: skip
    kept, table = auto_confirm.confirm_choice(first, best, df, None, 12, seeds=1, earlier=True)
    assert kept is first and (table["period"] == "earlier").sum() == 2
    kept, _ = auto_confirm.confirm_choice(first, best, df, None, 12, seeds=1, earlier=False)
    assert kept is best
    kept, table = auto_confirm.confirm_choice(first, best, short, None, 12, seeds=1, earlier=True)
    assert kept is best and (table["period"] == "earlier").sum() == 0  # too short: validation alone decides


def test_the_search_runs_the_earlier_period_check_when_asked(frame):
    def config(trial):
        return {**TINY, "model": "xlstm_time", "learning_rate": 1e-7 if trial.number == 0 else 3e-2}

    auto = make_auto(config=config, num_samples=2, points_to_evaluate=[{}], confirm_seeds=1, confirm_earlier=True)
    auto.fit(frame(n_series=1, length=120))
    assert auto.confirmation_["period"].tolist() == ["validation"] * 4 + ["earlier"] * 2
    with pytest.raises(ValueError, match="confirm_earlier must be True or False"):
        make_auto(confirm_earlier="yes")
