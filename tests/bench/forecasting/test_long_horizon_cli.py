"""The long-horizon benchmark on a tiny budget, its markdown, and the `forecast` CLI group."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
import torch

from xlstm_seq.cli import forecast as cli
from xlstm_seq_bench.forecasting.long_horizon import run_benchmark
from xlstm_seq_bench.forecasting.long_horizon_config import LongHorizonConfig, ModelSettings

ROOT = Path(os.environ.get("XLSTM_SEQ_DATA", "/nonexistent"))


def test_config_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown data set"):
        LongHorizonConfig(datasets=["etth9"])
    with pytest.raises(ValueError, match="unknown baseline"):
        LongHorizonConfig(baselines=["prophet"])


@pytest.mark.skipif(not (ROOT / "ett/ETTh1.csv").is_file(), reason="ETTh1 not in the data root")
def test_tiny_benchmark_writes_markdown_and_tracks(tmp_path, tmp_mlflow):
    import mlflow

    tiny = ModelSettings(embedding_dim=8, num_heads=2, max_steps=3, batch_size=4, val_check_steps=3)
    config = LongHorizonConfig(
        datasets=["etth1"], horizons=[24], input_size=48, max_test_windows=4, num_threads=1, xlstm=tiny,
        dlinear=tiny.replace(model="dlinear", mixing="independent"), out=str(tmp_path / "fc.md"),
        experiment="bench-test",
    )  # fmt: skip
    lines = []
    cells = run_benchmark(config, out=lines.append, command="xlstm-seq forecast benchmark 'datasets=[etth1]'")
    assert [c.model for c in cells] == ["xlstm_time mlstm variates E8x1", "DLinear (ours)", "seasonal naive (24)"]
    assert all(len(c.mse) == 1 and c.mse[0] > 0 for c in cells)
    text = (tmp_path / "fc.md").read_text()
    assert "| etth1 | 24 | 48 | DLinear (ours) |" in text and "torch thread" in text
    assert ("CPU only" in text) != torch.cuda.is_available()
    assert "Written by `xlstm-seq forecast benchmark 'datasets=[etth1]'`." in text
    assert "| etth1 | 24 | 48 | xlstm_time mlstm variates E8x1 |" in text
    assert (tmp_path / "fc.png").stat().st_size > 1000
    client = mlflow.MlflowClient(tracking_uri=tmp_mlflow)
    runs = client.search_runs([client.get_experiment_by_name("bench-test").experiment_id])
    # one run per scored model: xLSTM, DLinear and the seasonal naive baseline
    assert sorted(r.data.params["model"] for r in runs if "test/mse" in r.data.metrics) == [
        "dlinear", "seasonal_naive", "xlstm_time"
    ]  # fmt: skip
    assert any(r.info.run_name == "summary" for r in runs)


def test_cli_group_parses():
    parser = argparse.ArgumentParser()
    groups = parser.add_subparsers(dest="command")
    cli.add_commands(groups)
    args = parser.parse_args(["forecast", "benchmark", "--config", "x.yaml", "datasets=[etth1]", "--no-track"])
    assert args.func is cli._benchmark and args.overrides == ["datasets=[etth1]"] and args.no_track
    # The group also holds the other forecasting commands (owned elsewhere); these two are the benchmark's.
    assert {"forecast benchmark", "forecast demo"} <= set(cli.CONFIG_CLASSES)
    expected = "xlstm_seq_bench.forecasting.long_horizon_config:LongHorizonConfig"
    assert cli.CONFIG_CLASSES["forecast benchmark"] == expected


@pytest.mark.parametrize("command", ["benchmark", "m4", "airpassengers"])
def test_without_the_benchmark_suite_a_command_says_what_to_install(command, monkeypatch):
    import sys

    from xlstm_seq.cli.main import console

    monkeypatch.setitem(sys.modules, "xlstm_seq_bench", None)  # as if xlstm-seq-bench were not installed
    with pytest.raises(SystemExit) as exit_info:
        console(["forecast", command, "--no-track"])
    assert str(exit_info.value) == (
        f"xlstm-seq forecast {command}: needs the benchmark suite (xlstm-seq-bench), which is not installed; "
        "from a checkout of the repository: pip install -e ./bench"
    )


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / "ett/ETTh1.csv").is_file(), reason="ETTh1 not in the data root")
def test_fit_time_comparison_against_neuralforecast(tmp_path, tmp_mlflow):
    pytest.importorskip("neuralforecast", reason="the forecast extra (neuralforecast) is not installed")
    from xlstm_seq_bench.forecasting.long_horizon import fit_time_comparison

    tiny = ModelSettings(embedding_dim=8, num_heads=2, batch_size=4)
    config = LongHorizonConfig(datasets=["etth1"], horizons=[24], input_size=48, fit_time_steps=2, xlstm=tiny)
    rows = fit_time_comparison(config, track=True)
    assert [(h, label.split()[0]) for h, label, _ in rows] == [(24, "xLSTM"), (24, "neuralforecast")]
    assert all(seconds > 0 for _, _, seconds in rows)
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tmp_mlflow)
    runs = client.search_runs([client.get_experiment_by_name(config.experiment).experiment_id])
    timing = [r for r in runs if r.info.run_name == "fit-time-etth1-h24-nf_patchtst"]
    assert len(timing) == 1 and timing[0].data.metrics["fit/seconds"] == pytest.approx(rows[1][2])


@pytest.mark.skipif(not (ROOT / "ett/ETTh1.csv").is_file(), reason="ETTh1 not in the data root")
def test_neuralforecast_baseline_scores_the_published_windows_too(tmp_path):
    pytest.importorskip("neuralforecast", reason="the forecast extra (neuralforecast) is not installed")
    tiny = ModelSettings(embedding_dim=8, num_heads=2, max_steps=2, batch_size=4, val_check_steps=2)
    config = LongHorizonConfig(
        datasets=["etth1"], horizons=[24], input_size=36, num_threads=1, xlstm=tiny, baselines=["nf_dlinear"],
        neuralforecast_max_steps=2, out=str(tmp_path / "fc.md"), published_test_batch={"etth1": 1},
    )  # fmt: skip
    lines = []
    every = run_benchmark(config, track=False, out=lines.append)[1]
    assert every.role == "nf_dlinear" and every.mse_published_windows == pytest.approx(every.mse, rel=1e-9)
    assert any(line.startswith("etth1 h=24 neuralforecast dlinear seed 0: test MSE") for line in lines)
    # Batch 1000 keeps the first 2000 of the 2857 windows: the same fit, another score on fewer windows.
    dropped = run_benchmark(config.replace(published_test_batch={"etth1": 1000}), track=False, out=lambda x: None)[1]
    assert dropped.mse == pytest.approx(every.mse, rel=1e-6)
    assert dropped.mse_published_windows[0] != pytest.approx(every.mse[0], rel=1e-4)


@pytest.mark.skipif(not (ROOT / "ett/ETTh1.csv").is_file(), reason="ETTh1 not in the data root")
def test_neuralforecast_settings_reach_the_model(tmp_path):
    pytest.importorskip("neuralforecast", reason="the forecast extra (neuralforecast) is not installed")
    tiny = ModelSettings(embedding_dim=8, num_heads=2, max_steps=2, batch_size=4, val_check_steps=2)
    config = LongHorizonConfig(
        datasets=["etth1"], horizons=[24], input_size=36, num_threads=1, xlstm=tiny, baselines=["nf_dlinear"],
        neuralforecast_max_steps=2, max_test_windows=3, out=str(tmp_path / "fc.md"),
        per_dataset={"etth1": {"neuralforecast": {"nf_dlinear": {"max_steps": 3}}}},
    )  # fmt: skip
    cell = run_benchmark(config, track=False, out=lambda line: None)[1]
    assert cell.steps == [3]  # the per-data-set max_steps replaced neuralforecast_max_steps
    assert "settings (grid-wide) its defaults" in (tmp_path / "fc.md").read_text()
    bad = config.replace(per_dataset={"etth1": {"neuralforecast": {"nf_dlinear": {"hiden_size": 3}}}})
    with pytest.raises(ValueError, match=r"nf_dlinear on etth1: unknown argument\(s\) \['hiden_size'\]"):
        run_benchmark(bad, track=False, out=lambda line: None)
