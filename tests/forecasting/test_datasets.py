"""Data set loaders: splits, train-statistics scaling, long frames, and the error for a missing file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from xlstm_seq.forecasting.datasets import load_air_passengers, load_long_horizon, load_m4, split_borders

ROOT = Path(os.environ.get("XLSTM_SEQ_DATA", "/nonexistent"))
needs = lambda rel: pytest.mark.skipif(not (ROOT / rel).is_file(), reason=f"{rel} not in the data root {ROOT}")  # noqa: E731


def test_split_borders_follow_the_papers():
    assert split_borders("ett_hour", 17420) == {"train": (0, 8640), "val": (8640, 11520), "test": (11520, 14400)}
    assert split_borders("ett_minute", 69680)["test"] == (46080, 57600)
    # 70/10/20 with train and test rounded down, as Autoformer's loader does (Weather: 52696 rows).
    assert split_borders("ratio", 52696) == {"train": (0, 36887), "val": (36887, 42157), "test": (42157, 52696)}
    with pytest.raises(ValueError, match="needs 14400 rows"):
        split_borders("ett_hour", 1000)


@needs("ett/ETTh1.csv")
def test_etth1_is_standardised_by_training_rows():
    data = load_long_horizon("etth1")
    assert data.values.shape == (14400, 7) and data.columns[-1] == "OT"
    train = data.values[: data.borders["train"][1]]
    np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(train.std(axis=0), 1, atol=1e-4)
    # Test rows are scaled with the training statistics, so they are not standardised themselves.
    assert abs(data.values[data.borders["test"][0] :].mean()) > 1e-3
    df = data.to_long(100)
    assert list(df.columns) == ["unique_id", "ds", "y"] and len(df) == 700
    assert df[df.unique_id == "OT"]["y"].to_numpy() == pytest.approx(data.values[:100, -1])


@needs("weather/weather.csv.xz")
def test_weather_reads_the_xz_copy_and_integer_ds():
    data = load_long_horizon("weather")
    assert data.values.shape == (52696, 21)
    assert data.to_long(10, integer_ds=True)["ds"].tolist()[:3] == [0, 1, 2]


@needs("illness/national_illness.csv")
def test_ili_horizons():
    assert load_long_horizon("ili").horizons == (24, 36, 48, 60)


def test_unknown_and_missing_sets(tmp_path, monkeypatch):
    monkeypatch.setenv("XLSTM_SEQ_DATA", str(tmp_path))
    with pytest.raises(ValueError, match="unknown long-horizon data set 'ettx'"):
        load_long_horizon("ettx")
    with pytest.raises(FileNotFoundError, match=r"ett/ETTm2.csv.*downloads are off"):
        load_long_horizon("ettm2", download=False)
    with pytest.raises(FileNotFoundError, match=r"weather/weather.csv.*no public download address: place a copy"):
        load_long_horizon("weather")


@pytest.mark.parametrize("name,folder", [("exchange", "exchange_rate"), ("electricity", "electricity"),
                                         ("traffic", "traffic")])  # fmt: skip
def test_a_failed_download_names_the_files_and_leaves_no_folder(tmp_path, monkeypatch, name, folder):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setenv("XLSTM_SEQ_DATA", str(tmp_path / "root"))
    with pytest.raises(FileNotFoundError) as err:
        load_long_horizon(name)
    message = str(err.value)
    assert f"{folder}/{folder}.txt.gz" in message and "offline or the download failed" in message
    assert f"{folder}/{folder}.csv" in message  # the dated copy it also reads
    assert not (tmp_path / "root").exists()


def test_an_undated_download_gets_autoformers_dates_and_ot(tmp_path, monkeypatch):
    import gzip

    monkeypatch.setenv("XLSTM_SEQ_DATA", str(tmp_path))
    (tmp_path / "exchange_rate").mkdir()
    rows = np.random.default_rng(0).normal(size=(100, 8))
    with gzip.open(tmp_path / "exchange_rate" / "exchange_rate.txt.gz", "wt") as f:
        f.writelines(",".join(f"{v:.6f}" for v in row) + "\n" for row in rows)
    data = load_long_horizon("exchange", download=False)
    assert data.columns == ["0", "1", "2", "3", "4", "5", "6", "OT"]
    assert str(data.dates[0])[:10] == "1990-01-01" and str(data.dates[1])[:10] == "1990-01-02"
    assert data.borders == {"train": (0, 70), "val": (70, 80), "test": (80, 100)}
    np.testing.assert_allclose(data.values[:70].mean(axis=0), 0, atol=1e-5)


@needs("air_passengers/AirPassengers.csv")
def test_air_passengers():
    df = load_air_passengers(download=False)
    assert len(df) == 144 and df["y"].sum() == 40363
    assert df["ds"].iloc[0].strftime("%Y-%m") == "1949-01"


@needs("m4/Hourly-test.csv")
def test_m4_hourly():
    train, test, h, season = load_m4("hourly")
    assert (h, season) == (48, 24)
    assert train["unique_id"].nunique() == 414 and len(test) == 414 * 48
    first = test[test.unique_id == "H1"]["ds"].iloc[0]
    assert first == train[train.unique_id == "H1"]["ds"].iloc[-1] + 1
