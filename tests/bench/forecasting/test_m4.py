"""M4 command: Naive2 and its seasonality test, the config, and a tiny end-to-end run on the first M4 series."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from xlstm_seq.data import data_root
from xlstm_seq_bench.forecasting.m4 import M4Config, M4ModelConfig, naive2, run_m4, seasonal_indices, seasonality_test

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "forecasting" / "m4.yaml"


def test_naive2_reseasonalises_a_multiplicative_seasonal_series():
    season = 4
    pattern = np.array([0.8, 1.2, 1.0, 1.0])
    level = np.linspace(100, 120, 40)
    y = level * np.tile(pattern, 10)
    assert seasonality_test(y, season)
    np.testing.assert_allclose(seasonal_indices(y, season), pattern, rtol=0.02)
    forecast = naive2(y, 6, season)
    # The deseasonalised last value (120) carried forward and multiplied by the pattern of the next positions.
    np.testing.assert_allclose(forecast, 120 * np.tile(pattern, 2)[:6], rtol=0.02)


def test_naive2_is_naive_without_seasonality():
    rng = np.random.default_rng(0)
    y = np.cumsum(rng.normal(0, 1, 200)) + 50
    assert not seasonality_test(rng.normal(0, 1, 200), 24)
    assert not seasonality_test(y, 1)  # season 1 (M4 weekly) never counts as seasonal
    np.testing.assert_array_equal(naive2(y, 5, 1), np.repeat(y[-1], 5))


def test_m4_config_checks_groups_and_round_trips():
    with pytest.raises(ValueError, match="groups must be a non-empty list"):
        M4Config(groups=["monthly"])
    with pytest.raises(ValueError, match="input_size must be >= 1"):
        M4ModelConfig(input_size=0)
    with pytest.raises(ValueError, match=r"unknown peer\(s\) \['prophet'\]"):
        M4ModelConfig(peers=["sf_autoets", "prophet"])
    config = M4Config(groups=["weekly"], weekly=M4ModelConfig(input_size=26, patch_len=2))
    assert M4Config.from_yaml(config.to_yaml()) == config


@pytest.mark.skipif(not (data_root() / "m4" / "Weekly-test.csv").is_file(), reason="M4 Weekly not in the data root")
def test_m4_weekly_end_to_end_on_a_few_series(tmp_path):
    out = tmp_path / "m4.md"
    config = M4Config(
        groups=["weekly"], max_series=8, out=str(out),
        weekly=M4ModelConfig(input_size=26, patch_len=2, max_steps=5, batch_size=8, embedding_dim=8, val_check_steps=5,
                             peers=[]),
    )  # fmt: skip
    results = run_m4(config, track=False, out=lambda _: None)
    rows = {row["method"].split(" ")[0]: row for row in results["weekly"]["rows"]}
    assert set(rows) == {"xLSTMTime", "Naive", "Seasonal", "Naive2"}
    assert rows["Naive2"]["owa"] == pytest.approx(1.0)
    # Weekly has season 1: Naive2, seasonal naive and naive are the same forecast.
    assert rows["Naive"]["smape"] == pytest.approx(rows["Naive2"]["smape"])
    for kind in ("conformal", "cqr", "quantile"):
        scores = rows["xLSTMTime"]["intervals"][kind]
        assert 0.0 <= scores["80"] <= scores["95"] <= 1.0
        assert scores["msis"] > 0
    text = out.read_text()
    assert "only the first 8 series" in text and "| Naive2 |" in text and "Weekly (8 series, h = 13)" in text
    assert "| xLSTMTime (mlstm, global) | CQR |" in text and "Peers run: none; left out here: AutoETS" in text
    assert "![OWA and interval scores per group](m4.png)" in text and (tmp_path / "m4.png").stat().st_size > 10_000


@pytest.mark.skipif(not (data_root() / "m4" / "Weekly-test.csv").is_file(), reason="M4 Weekly not in the data root")
def test_forecast_m4_cli_runs_the_config_with_overrides(tmp_path, tmp_mlflow):
    import mlflow

    from xlstm_seq.cli.main import main

    out = tmp_path / "cli.md"
    argv = ["forecast", "m4", "--config", str(CONFIG), "--out", str(out), "groups=[weekly]", "max_series=4",
            "weekly.max_steps=2", "weekly.input_size=26", "weekly.patch_len=2", "weekly.embedding_dim=8",
            "weekly.peers=[sf_autotheta]"]  # fmt: skip
    assert main(argv) == 0
    assert "| Naive2 |" in out.read_text()
    client = mlflow.MlflowClient(tracking_uri=tmp_mlflow)
    runs = client.search_runs([client.get_experiment_by_name("xlstm-seq-forecast-m4").experiment_id])
    assert {r.info.run_name for r in runs} >= {"m4-weekly", "m4-summary"}


WEEKLY = pytest.mark.skipif(
    not (data_root() / "m4" / "Weekly-test.csv").is_file(), reason="M4 Weekly not in the data root"
)


def _tiny_weekly(tmp_path, peers: list[str]) -> M4Config:
    return M4Config(
        groups=["weekly"], max_series=6, out=str(tmp_path / "m4.md"),
        weekly=M4ModelConfig(input_size=26, patch_len=2, max_steps=3, batch_size=8, embedding_dim=8, val_check_steps=3,
                             peers=peers),
    )  # fmt: skip


@WEEKLY
def test_a_peer_whose_package_is_missing_is_reported_and_the_run_goes_on(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "statsforecast", None)  # importing it now raises ImportError
    results = run_m4(_tiny_weekly(tmp_path, ["sf_autoets"]), track=False, out=lambda _: None)
    rows = {row["method"]: row for row in results["weekly"]["rows"]}
    assert rows["AutoETS"]["failure"].startswith("not installed here") and "smape" not in rows["AutoETS"]
    assert rows["Naive2"]["failure"] is None
    assert "| AutoETS | statsforecast | not installed here" in (tmp_path / "m4.md").read_text()


@WEEKLY
@pytest.mark.skipif(importlib.util.find_spec("statsforecast") is None, reason="statsforecast: the compare extra")
def test_statsforecast_peers_score_points_and_their_own_intervals(tmp_path):
    results = run_m4(_tiny_weekly(tmp_path, ["sf_autoets", "sf_autotheta", "sf_autoarima"]), track=False,
                     out=lambda _: None)  # fmt: skip
    rows = {row["method"]: row for row in results["weekly"]["rows"]}
    for name in ("AutoETS", "AutoTheta", "AutoARIMA"):
        assert rows[name]["failure"] is None and rows[name]["smape"] > 0 and rows[name]["fit_seconds"] > 0
        scores = rows[name]["intervals"]["model"]
        assert 0.0 <= scores["80"] <= scores["95"] <= 1.0 and scores["msis"] > 0
    assert "| AutoARIMA | the model's own |" in (tmp_path / "m4.md").read_text()


@WEEKLY
@pytest.mark.skipif(importlib.util.find_spec("neuralforecast") is None, reason="neuralforecast: the forecast extra")
def test_nhits_peer_is_fitted_globally_and_scored_without_intervals(tmp_path):
    results = run_m4(_tiny_weekly(tmp_path, ["nf_nhits"]), track=False, out=lambda _: None)
    row = next(r for r in results["weekly"]["rows"] if r["method"] == "NHITS")
    assert row["failure"] is None and row["smape"] > 0 and row["intervals"] == {}
