"""A save verifies what it reads back (checksums, finite tensors, a history frame of the fitted series), inputs beyond
float32's range are refused naming the series, and the constructor refuses bad settings before any fit."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file
from sklearn.base import clone

from xlstm_seq.forecasting import XLSTMForecaster

FIXTURE = Path(__file__).parent / "fixtures" / "saved_forecaster"
H, L = 4, 12
TINY = dict(h=H, input_size=L, patch_len=4, embedding_dim=8, num_blocks=1, num_heads=2, max_steps=3, batch_size=4,
            progress=False, track=False)  # fmt: skip


@pytest.fixture
def saved(tmp_path, frame) -> Path:
    fc = XLSTMForecaster(**TINY, level=[80]).fit(frame(n_series=2, length=40))
    return fc.save(tmp_path / "model")


def _meta(path: Path) -> dict:
    return json.loads((path / "config.json").read_text())


def test_a_save_records_the_checksum_of_every_file(saved):
    checksums = _meta(saved)["checksums"]
    assert set(checksums) == {"model.safetensors", "history.csv", "calibration.safetensors"}
    for name, digest in checksums.items():
        assert hashlib.sha256((saved / name).read_bytes()).hexdigest() == digest


def test_damaged_weights_are_refused_by_name(saved):
    with (saved / "model.safetensors").open("r+b") as f:  # the last 5 bytes: a loadable file, wrong numbers
        f.seek(-5, 2)
        f.write(b"\xff\xff\xff\xff\x7f")
    with pytest.raises(ValueError, match=r"model\.safetensors does not match the checksum in .*config\.json"):
        XLSTMForecaster.load(saved)


def test_edited_history_and_calibration_are_refused_by_name(saved, tmp_path):
    edited = shutil.copytree(saved, tmp_path / "edited")
    history = pd.read_csv(edited / "history.csv")
    history.loc[0, "y"] += 1.0
    history.to_csv(edited / "history.csv", index=False)
    with pytest.raises(ValueError, match=r"history\.csv does not match the checksum"):
        XLSTMForecaster.load(edited)
    edited = shutil.copytree(saved, tmp_path / "edited_calibration")
    scores = load_file(str(edited / "calibration.safetensors"))
    save_file({k: v + 1 for k, v in scores.items()}, str(edited / "calibration.safetensors"))
    with pytest.raises(ValueError, match=r"calibration\.safetensors does not match the checksum"):
        XLSTMForecaster.load(edited)


def test_a_save_from_before_checksums_still_loads_and_its_tensors_are_checked(tmp_path):
    assert "checksums" not in _meta(FIXTURE)
    assert XLSTMForecaster.load(FIXTURE).predict()["xLSTMTime"].notna().all()
    old = shutil.copytree(FIXTURE, tmp_path / "old")
    weights = load_file(str(old / "model.safetensors"))
    name = sorted(weights)[0]
    weights[name] = weights[name].clone()
    weights[name].view(-1)[0] = float("nan")
    save_file(weights, str(old / "model.safetensors"))
    with pytest.raises(ValueError, match=rf"model\.safetensors holds 1 NaN or infinite value\(s\) in '{name}'"):
        XLSTMForecaster.load(old)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello,world\n1,2\n", r"history\.csv lacks the column\(s\) \['unique_id', 'ds', 'y'\]"),
        ("unique_id,ds,y\ns0,notadate,1\n", r"history\.csv column 'ds' does not hold timestamps"),
        ("unique_id,ds,y\nzz,2024-01-01,1\n", r"history\.csv holds series 'zz', which the saved model was not fitted"),
        ("unique_id,ds,y\ns0,2024-01-01,1\n", r"history\.csv lacks the rows of series 's1'"),
        ("unique_id,ds,y\ns0,2024-01-01,nan\ns1,2024-01-01,1\n", r"history\.csv column 'y' has 1 NaN value"),
        ("unique_id,ds,y\ns0,2024-01-01,x\ns1,2024-01-01,1\n", r"history\.csv column 'y' must be numeric"),
        ("\x00\x01\x02", r"history\.csv"),
    ],
    ids=["columns", "dates", "unknown-series", "missing-series", "nan", "text", "binary"],
)
def test_a_garbage_history_is_refused_by_name(saved, text, message):
    (saved / "history.csv").write_text(text)
    with pytest.raises(ValueError, match=message):
        XLSTMForecaster.load(saved)


def test_values_beyond_float32_are_refused_naming_the_series(frame):
    df = frame(n_series=2, length=40)
    df.loc[df.index[45], "y"] = 1e300
    with pytest.raises(ValueError, match=r"'y' has 1 too large value\(s\), first in series 's1' at ds=.*float32"):
        XLSTMForecaster(**TINY).fit(df)
    fc = XLSTMForecaster(**TINY).fit(frame(n_series=2, length=40))
    df.loc[df.index[45], "y"] = -3.5e38
    with pytest.raises(ValueError, match=r"too large value\(s\), first in series 's1'"):
        fc.predict(df)
    exog = frame(n_series=1, length=40, exog=True)
    exog.loc[3, "hist_x"] = 1e39
    with pytest.raises(ValueError, match=r"column 'hist_x' has 1 too large value\(s\), first in series 's0'"):
        XLSTMForecaster(**TINY, hist_exog_list=["hist_x"]).fit(exog)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(level=[150]), r"level setting: each level must be a percentage in \(0, 100\), got 150"),
        (dict(level=[0]), r"each level must be a percentage in \(0, 100\), got 0"),
        (dict(level=80), r"level setting must be a list of percentages"),
        (dict(h=2.5), "h must be a positive integer, got 2.5"),
        (dict(input_size="96"), "input_size must be a positive integer, got '96'"),
        (dict(loss="huber"), "loss must be one of"),
        (dict(model="transformer"), "model must be one of"),
        (dict(backbone="gru"), "backbone must be one of"),
        (dict(mixing="all"), "mixing must be one of"),
        (dict(num_heads=0), "num_heads must be a positive integer"),
        (dict(dropout=1.5), r"dropout must be a number in \[0, 1\)"),
        (dict(learning_rate=-1), "learning_rate must be > 0"),
        (dict(random_seed=None), "random_seed must be an integer"),
        (dict(intervals="bootstrap"), "intervals must be one of"),
        (dict(freq_loss_weight=2), r"freq_loss_weight must be a number in \[0, 1\]"),
        (dict(patch_len=4, patch_stride=5), "patch_stride"),
        (dict(hist_exog_list="price"), "hist_exog_list must be None or a list of column names"),
        (dict(track="yes"), "track must be True or False"),
    ],
)
def test_the_constructor_refuses_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        XLSTMForecaster(**kwargs)


def test_the_sklearn_contract_is_kept():
    fc = XLSTMForecaster(level=[80, 95], device="cuda:7")  # a device this machine may lack: checked at fit
    params = fc.get_params()
    assert params["level"] is fc.level and params["device"] == "cuda:7"
    twin = clone(fc)
    assert twin.get_params()["level"] == [80, 95] and twin is not fc
    assert fc.set_params(level=[150]) is fc and fc.level == [150]  # set_params stores; fit checks
    with pytest.raises(ValueError, match="each level must be a percentage"):
        fc.fit(pd.DataFrame({"unique_id": ["a"], "ds": [0], "y": [1.0]}))


def test_loaded_forecasts_are_unchanged_by_the_checks(saved, frame):
    fc = XLSTMForecaster.load(saved)
    again = XLSTMForecaster.load(fc.save(saved.parent / "again"))
    pd.testing.assert_frame_equal(fc.predict(), again.predict())
    assert torch.equal(
        torch.cat([p.flatten() for p in fc.net_.parameters()]),
        torch.cat([p.flatten() for p in again.net_.parameters()]),
    )
    assert np.isfinite(fc.predict(level=[80]).drop(columns=["unique_id", "ds"]).to_numpy()).all()
