"""`xlstm-seq forecast airpassengers`: our backbones and the peers on one split, a peer that is missing or fails
reported in its row, a markdown table, a plot and an MLflow run per model."""

from __future__ import annotations

import numpy as np
import pytest

import xlstm_seq_bench.forecasting.air_passengers as module
from xlstm_seq.data import data_root
from xlstm_seq_bench.forecasting.air_passengers import AirPassengersConfig, run_air_passengers

pytestmark = pytest.mark.skipif(
    not (data_root() / "air_passengers/AirPassengers.csv").is_file(), reason="AirPassengers not in the data root"
)


def test_rows_for_ours_and_for_peers_that_are_missing_or_fail(tmp_path, tmp_mlflow, monkeypatch):
    import mlflow

    def missing(*args):
        raise ImportError("No module named 'statsforecast'")

    def broken(*args):
        raise KeyError("CUDA_LIB")  # what the official sLSTM raises on a CPU

    monkeypatch.setattr(module, "_statsforecast", missing)
    monkeypatch.setattr(module, "_neuralforecast", broken)
    config = AirPassengersConfig(seeds=[1, 2], max_steps=3, backbones=["mlstm", "mixed"],
                                 peers=["nf_xlstm_slstm", "sf_autoarima"], out=str(tmp_path / "ap.md"))  # fmt: skip
    rows = run_air_passengers(config, track=True, out=lambda line: None)
    ours = [r for r in rows if "(ours)" in r.name]
    assert [len(r.mae) for r in ours] == [2, 2] and all(np.isfinite(r.mae).all() for r in ours)
    assert ours[1].name.startswith("xLSTMTime, mixed backbone, 2 block(s)")
    failures = {r.name.split(" (")[0]: r.failure for r in rows if r.failure}
    assert failures["xLSTM, sLSTM backbone"].startswith("fails on this CPU: KeyError")
    assert failures["AutoARIMA"].startswith("not installed here: No module named 'statsforecast'")
    naive = rows[-1]
    assert naive.name == "seasonal naive (12)" and naive.mae == [pytest.approx(47.8, abs=0.05)]
    text = (tmp_path / "ap.md").read_text()
    assert "| seasonal naive (12) | xlstm-seq | 47.8 |" in text and "fails on this CPU: KeyError" in text
    assert (tmp_path / "ap.png").stat().st_size > 10_000
    client = mlflow.MlflowClient(tracking_uri=tmp_mlflow)
    runs = client.search_runs([client.get_experiment_by_name(config.experiment).experiment_id])
    assert len(runs) == len(rows)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match=r"unknown backbone\(s\) or peer\(s\) \['gru'\]"):
        AirPassengersConfig(backbones=["gru"])
    with pytest.raises(ValueError, match="seeds must name at least one seed"):
        AirPassengersConfig(seeds=[])
