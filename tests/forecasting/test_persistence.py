"""save/load: an earlier save survives a failed one, nothing of an older model leaks into a newer one, and a
damaged folder is named with the file that is wrong."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from xlstm_seq.forecasting import XLSTMForecaster

H, L = 4, 12
TINY = dict(h=H, input_size=L, patch_len=4, embedding_dim=8, num_blocks=1, num_heads=2, max_steps=3, batch_size=4,
            progress=False, track=False)  # fmt: skip


def _fitted(frame, **kwargs) -> XLSTMForecaster:
    return XLSTMForecaster(**{**TINY, **kwargs}).fit(frame(n_series=2, length=40))


def test_saving_over_an_earlier_save_leaves_none_of_its_files(tmp_path, frame):
    _fitted(frame, level=[80]).save(tmp_path / "m")
    assert (tmp_path / "m" / "calibration.safetensors").is_file()
    plain = _fitted(frame, random_seed=3)
    plain.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "history.csv", "model.safetensors"]
    loaded = XLSTMForecaster.load(tmp_path / "m")
    with pytest.raises(ValueError, match="needs conformal scores"):
        loaded.predict(level=[80])  # the first model's calibration is gone with it
    pd.testing.assert_frame_equal(loaded.predict(), plain.predict())
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no staging or backup folder is left behind


def test_a_save_that_fails_part_way_keeps_the_earlier_save(tmp_path, frame, monkeypatch):
    import safetensors.torch

    first = _fitted(frame)
    first.save(tmp_path / "m")
    expected = first.predict()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    second = _fitted(frame, h=6)  # a different shape: mixing its config with the first weights would not load
    with pytest.raises(OSError, match="No space left"):
        second.save(tmp_path / "m")
    monkeypatch.undo()
    pd.testing.assert_frame_equal(XLSTMForecaster.load(tmp_path / "m").predict(), expected)
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_a_folder_holding_other_files_is_not_replaced(tmp_path, frame):
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds \['notes.txt'\], which a saved forecaster does not"):
        _fitted(frame).save(tmp_path / "project")
    assert (tmp_path / "project" / "notes.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="it is a file, not a folder"):
        _fitted(frame).save(tmp_path / "file")


def test_numpy_and_pandas_settings_save_and_log(tmp_path, frame):
    # Settings read from numpy arrays or configs arrive as numpy scalars; fit logs the model to MLflow.
    fc = _fitted(frame, input_size=np.int64(L), dropout=np.float32(0.1), freq=pd.offsets.Hour(), track=True)
    loaded = XLSTMForecaster.load(fc.save(tmp_path / "m"))
    assert (loaded.input_size, loaded.freq) == (L, "h")
    pd.testing.assert_frame_equal(loaded.predict(), fc.predict())


def _edit_config(path, edit) -> None:
    meta = json.loads((path / "config.json").read_text())
    edit(meta)
    (path / "config.json").write_text(json.dumps(meta))


def test_damaged_saves_name_the_file(tmp_path, frame):
    with pytest.raises(FileNotFoundError, match="no saved forecaster at .*does not exist"):
        XLSTMForecaster.load(tmp_path / "nowhere")
    fc = _fitted(frame, level=[80])

    def saved(name: str):
        return fc.save(tmp_path / name)

    path = saved("weights")
    (path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="incomplete: model.safetensors is missing"):
        XLSTMForecaster.load(path)
    path = saved("json")
    (path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        XLSTMForecaster.load(path)
    path = saved("key")
    _edit_config(path, lambda m: m["fitted"].pop("freq"))
    with pytest.raises(ValueError, match="lacks the fitted field 'freq'"):
        XLSTMForecaster.load(path)
    path = saved("param")
    _edit_config(path, lambda m: m["params"].update(evil=1))
    with pytest.raises(ValueError, match="settings XLSTMForecaster does not take.*evil"):
        XLSTMForecaster.load(path)
    path = saved("h")
    _edit_config(path, lambda m: m["params"].update(h=6))
    with pytest.raises(ValueError, match="calibration.safetensors holds scores of shape"):
        XLSTMForecaster.load(path)
    (path / "calibration.safetensors").unlink()
    _edit_config(path, lambda m: m["fitted"].update(calibrated=False))
    with pytest.raises(ValueError, match="model.safetensors does not hold the weights"):
        XLSTMForecaster.load(path)
    path = saved("corrupt")
    (path / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match="model.safetensors does not hold the weights"):
        XLSTMForecaster.load(path)


def test_a_save_keeps_the_usual_permissions_and_a_symlinked_folder(tmp_path, frame):
    import os
    import stat

    fc = _fitted(frame)
    old_umask = os.umask(0o022)
    try:
        fc.save(tmp_path / "m")
        fc.save(tmp_path / "m")  # replacing an earlier save too
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "m").stat().st_mode) == 0o755  # readable by a serving account, as mkdir makes it
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    fc.save(tmp_path / "link")
    fc.save(tmp_path / "link")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "real" / "config.json").is_file()
    pd.testing.assert_frame_equal(XLSTMForecaster.load(tmp_path / "link").predict(), fc.predict())


def test_the_working_directory_is_not_replaced(tmp_path, frame, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for target in (".", tmp_path.parent):
        with pytest.raises(ValueError, match="working directory"):
            _fitted(frame).save(target)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="it is a file, not a folder"):
        (tmp_path / "f").write_text("x")
        XLSTMForecaster.load(tmp_path / "f")
    (tmp_path / "h").mkdir()
    fc = _fitted(frame)
    fc.save(tmp_path / "h")
    (tmp_path / "h" / "history.csv").write_text("")
    with pytest.raises(ValueError, match="history.csv is not a readable CSV"):
        XLSTMForecaster.load(tmp_path / "h")


def test_a_setting_json_cannot_hold_is_named_and_nothing_is_written(tmp_path, frame):
    fc = _fitted(frame).set_params(experiment={1, 2})  # a set: JSON has none
    with pytest.raises(ValueError, match=r"cannot save parameter experiment=\{1, 2\}"):
        fc.save(tmp_path / "m")
    assert list(tmp_path.iterdir()) == []
