"""StatefulXLSTMForecaster: update advances the stored states by the new rows alone and then forecasts exactly what a
from-scratch read of the extended frame forecasts; save/load keeps streaming; bad input names the problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

from xlstm_seq.forecasting import StatefulXLSTMForecaster

TINY = dict(h=6, lags=3, embedding_dim=8, num_blocks=2, num_heads=2, backbone="mixed", chunk_len=16, max_steps=12,
            batch_size=2, progress=False, track=False)  # fmt: skip


def split(df: pd.DataFrame, keep: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first ``keep`` rows of each series, and the rest."""
    pos = df.groupby("unique_id").cumcount()
    return df[pos < keep].reset_index(drop=True), df[pos >= keep].reset_index(drop=True)


def assert_same_forecasts(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-5, atol=1e-5)


@pytest.fixture
def fitted(frame):
    df = frame(n_series=3, length=100)
    head, tail = split(df, 70)
    return StatefulXLSTMForecaster(**TINY).fit(head, val_size=12), df, tail


def test_update_then_predict_equals_a_from_scratch_read_of_the_extended_frame(fitted):
    fc, df, tail = fitted
    weights = {k: v.clone() for k, v in fc.net_.state_dict().items()}
    before = fc.predict()
    fc.update(tail)
    after = fc.predict()
    assert_same_forecasts(after, fc.predict(df=df))
    assert after["ds"].min() > df["ds"].max()
    assert not np.allclose(before["StatefulxLSTM"], after["StatefulxLSTM"])  # the state moved
    assert all(torch.equal(weights[k], v) for k, v in fc.net_.state_dict().items())  # nothing refitted


def test_update_in_pieces_equals_update_in_one_piece(fitted):
    fc, df, tail = fitted
    other = clone(fc).fit(split(df, 70)[0], val_size=12)  # seeded: the same weights
    assert_same_forecasts(fc.predict(), other.predict())
    fc.update(tail)
    for i in range(0, 30, 7):  # uneven pieces; the last piece updates only some series first
        part = tail[tail.groupby("unique_id").cumcount().between(i, i + 6)]
        other.update(part[part["unique_id"] != "s1"]).update(part[part["unique_id"] == "s1"])
    assert_same_forecasts(fc.predict(), other.predict())


def test_series_of_different_lengths_and_an_update_of_some(frame):
    df = frame(n_series=3, length=90)
    df = df[~((df["unique_id"] == "s2") & (df.groupby("unique_id").cumcount() >= 60))].reset_index(drop=True)
    head, tail = split(df, 50)
    fc = StatefulXLSTMForecaster(**TINY).fit(head)
    fc.update(tail[tail["unique_id"] != "s0"])  # s0 keeps its state
    extended = pd.concat([head[head["unique_id"] == "s0"], df[df["unique_id"] != "s0"]], ignore_index=True)
    assert_same_forecasts(fc.predict(), fc.predict(df=extended))


def test_forecast_steps_match_streaming_one_row_at_a_time(fitted):
    fc, df, tail = fitted
    steps = fc.forecast_steps(df.groupby("unique_id").head(80), first=69)  # (N, 11, h): from rows 69..79
    for k in range(steps.shape[1]):
        if k:
            fc.update(tail.groupby("unique_id").nth(k - 1).reset_index(drop=True))
        np.testing.assert_allclose(fc.predict()["StatefulxLSTM"].to_numpy(), steps[:, k].reshape(-1), rtol=1e-5,
                                   atol=1e-5)  # fmt: skip


def test_update_cost_per_observation_does_not_grow_with_history(frame, monkeypatch):
    """The stack's steps per update are the new rows, whether the history is 30 or 300 rows long."""
    steps: list[int] = []
    for length in (30, 300):
        df = frame(n_series=2, length=length + 5)
        head, tail = split(df, length)
        fc = StatefulXLSTMForecaster(**{**TINY, "max_steps": 2}).fit(head)
        calls: list[int] = []

        def counted(x, state=None, resets=None, forward=fc.net_.stack.forward, calls=calls):
            calls.append(x.shape[1])  # time steps through the stack
            return forward(x, state, resets)

        monkeypatch.setattr(fc.net_.stack, "forward", counted)
        fc.update(tail)
        steps.append(sum(calls))
    assert steps == [5, 5]


def test_save_load_then_update_equals_update_without_the_round_trip(fitted, tmp_path):
    fc, df, tail = fitted
    first, second = split(tail, 10)
    fc.update(first)
    loaded = StatefulXLSTMForecaster.load(fc.save(tmp_path / "model"))
    assert_same_forecasts(loaded.predict(), fc.predict())
    assert_same_forecasts(loaded.update(second).predict(), fc.update(second).predict())
    assert loaded.get_params() == fc.get_params()
    pd.testing.assert_frame_equal(loaded.validation_report_, fc.validation_report_)


def test_load_refuses_a_changed_state_file(fitted, tmp_path):
    fc, _, _ = fitted
    path = fc.save(tmp_path / "model")
    raw = bytearray((path / "state.safetensors").read_bytes())
    raw[-1] ^= 1
    (path / "state.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="state.safetensors does not match the checksum"):
        StatefulXLSTMForecaster.load(path)


def test_fit_is_repeatable_and_tracked(frame, mlflow_in_tmp):
    import mlflow

    df = frame(n_series=2, length=80)
    a = StatefulXLSTMForecaster(**{**TINY, "track": True, "experiment": "stateful-test"}).fit(df, val_size=12)
    b = StatefulXLSTMForecaster(**TINY).fit(df, val_size=12)
    assert_same_forecasts(a.predict(), b.predict())
    assert set(a.validation_scores_) == {"mse", "mae", "windows"} and a.validation_scores_["windows"] == 2 * 7
    client = mlflow.MlflowClient(tracking_uri=mlflow_in_tmp)
    runs = client.search_runs([client.get_experiment_by_name("stateful-test").experiment_id])
    assert len(runs) == 1
    assert runs[0].data.metrics["val/mse"] == pytest.approx(a.validation_scores_["mse"])
    assert "train/loss" in runs[0].data.metrics and "val/loss" in runs[0].data.metrics
    assert "model" in [x.path for x in client.list_artifacts(runs[0].info.run_id)]


def test_the_guardrail_scores_the_baselines_on_the_same_origins_and_warns(frame):
    from xlstm_seq.forecasting.guardrails import GuardrailWarning

    df = frame(n_series=2, length=80)  # period 12 with little noise: the seasonal naive forecast is hard to beat
    fc = StatefulXLSTMForecaster(**{**TINY, "max_steps": 1}, season_length=12)
    with pytest.warns(GuardrailWarning, match="not better than the seasonal_naive baseline"):
        fc.fit(df, val_size=12)
    report = fc.validation_report_
    assert list(report.index) == ["StatefulxLSTM", "naive", "seasonal_naive"]
    assert report.attrs["fired"] and report.attrs["best_baseline"] == "seasonal_naive"
    assert report.loc["StatefulxLSTM", "mse"] == pytest.approx(fc.validation_scores_["mse"])
    # the naive row by hand: from every origin p = 67, ..., 73 of each series, the value at p repeated
    errors = []
    for _, y in df.groupby("unique_id")["y"]:
        y = y.to_numpy()
        errors += [y[p + 1 : p + 7] - y[p] for p in range(67, 74)]
    assert report.loc["naive", "mse"] == pytest.approx(float(np.mean(np.square(errors))), rel=1e-5)
    assert report.loc["naive", "windows"] == 14


def test_gradients_are_finite(frame):
    from xlstm_seq.forecasting.stateful import _ChunkStream

    df = frame(n_series=2, length=60)
    fc = StatefulXLSTMForecaster(**TINY).fit(df)
    scaled = [fc._scale(g.to_numpy(np.float64), i) for i, (_, g) in enumerate(df.groupby("unique_id")["y"])]
    stream = _ChunkStream(scaled, [60, 60], fc.h, fc.lags, fc.chunk_len, 2, "mae", np.random.default_rng(0), "cpu")
    fc.net_.train()
    for _ in range(3):  # across a chunk border: the carried state is detached, the loss still reaches every weight
        fc.net_.zero_grad()
        stream.loss(fc.net_).backward()
        grads = [p.grad for p in fc.net_.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_integer_timestamps(frame):
    df = frame(n_series=2, length=60).assign(ds=lambda d: d.groupby("unique_id").cumcount() * 2)
    head, tail = split(df, 50)
    fc = StatefulXLSTMForecaster(**TINY).fit(head).update(tail)
    out = fc.predict()
    assert out["ds"].dtype == np.int64 and list(out["ds"].iloc[:2]) == [120, 122]
    assert_same_forecasts(out, fc.predict(df=df))


def test_bad_input_is_named(fitted):
    fc, df, tail = fitted
    with pytest.raises(ValueError, match=r"series 's0' starts at ds=.* but continues the stored state only at"):
        fc.update(tail.groupby("unique_id").tail(5))  # a gap
    with pytest.raises(ValueError, match="continues the stored state only at"):
        fc.update(split(df, 70)[0].groupby("unique_id").tail(2))  # rows already seen
    with pytest.raises(ValueError, match="series 'new', which the forecaster was not fitted on"):
        fc.update(tail[tail["unique_id"] == "s0"].assign(unique_id="new"))
    with pytest.raises(ValueError, match="series 'new', which the forecaster was not fitted on"):
        fc.predict(df=df[df["unique_id"] == "s0"].assign(unique_id="new"))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['y'\]"):
        fc.update(tail.drop(columns="y"))
    with pytest.raises(ValueError, match="column 'y' has 1 NaN value"):
        fc.update(tail.assign(y=lambda d: d["y"].where(d.index != 3)))
    with pytest.raises(ValueError, match="new_df column .ds. holds integers"):
        fc.update(tail.assign(ds=np.arange(len(tail))))
    with pytest.raises(ValueError, match="series 's0' has 10 rows but val_size \\+ h \\+ 1 = 19"):
        StatefulXLSTMForecaster(**TINY).fit(df.groupby("unique_id").head(10), val_size=12)
    with pytest.raises(ValueError, match="loss must be one of"):
        StatefulXLSTMForecaster(loss="huber")
    with pytest.raises(ValueError, match="val_size must be 0 or at least h=6"):
        StatefulXLSTMForecaster(**TINY).fit(df, val_size=3)
    with pytest.raises(ValueError, match="not fitted"):
        StatefulXLSTMForecaster(**TINY).predict()
