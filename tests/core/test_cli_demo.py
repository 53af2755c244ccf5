"""The CLI front door, the data root, and the demo end to end into a temporary MLflow store."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import mlflow
import pytest

from xlstm_seq.cli.main import GROUP_MODULES, build_parser
from xlstm_seq.data import DataFile, data_root, fetch
from xlstm_seq.demo import DemoConfig, run_demo


def test_help_lists_only_working_groups():
    result = subprocess.run([sys.executable, "-m", "xlstm_seq.cli.main", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "demo" in result.stdout and "kernels" in result.stdout
    # An application's group appears exactly when its CLI module exists.
    listed = set(build_parser()._subparsers._group_actions[0].choices)
    for module in GROUP_MODULES:
        group = module.rsplit(".", 1)[1]
        assert (group in listed) == (importlib.util.find_spec(module) is not None), group


def test_core_bench_on_a_gpu_points_to_the_gpu_ops():
    args = build_parser().parse_args(["kernels", "bench", "--device", "cuda"])
    with pytest.raises(ValueError, match="use --op mlstm or --op slstm for the GPU kernels"):
        args.func(args)


def test_missing_data_file_names_path_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("XLSTM_SEQ_DATA", str(tmp_path))
    assert data_root() == tmp_path
    entry = DataFile("ett/ETTh1.csv", "https://example.invalid/ETTh1.csv", "ETTh1")
    with pytest.raises(FileNotFoundError, match=r"expected .*ett/ETTh1.csv.*https://example.invalid/ETTh1.csv"):
        fetch(entry, download=False)


def test_demo_end_to_end(tmp_path, monkeypatch):
    try:
        fetch("etth1", download=False)
    except FileNotFoundError as err:
        pytest.skip(f"data root without ETTh1 (tests never download): {err}")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    lines: list[str] = []
    config = DemoConfig(steps=30, test_length=120, chunk_length=50, batch_size=8, context_length=48)
    results = run_demo(config, out=lines.append)
    assert results["consistency/max_abs_full_vs_chunked"] < 1e-4
    assert results["consistency/max_abs_full_vs_step"] < 1e-4
    # 30 steps is far from converged, but training must have moved the loss down.
    client = mlflow.MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == config.experiment]
    (run,) = client.search_runs([experiment.experiment_id])
    history = [m.value for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert len(history) == 30 and min(history[-5:]) < history[0]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "demo_forecast.png", "model_state_dict.pt"} <= artifacts
    assert run.data.params["model.num_blocks"] == "2"
    assert any("calls of step" in line for line in lines)


def test_demo_parts_are_checked_before_anything_runs():
    from xlstm_seq.cli.main import available_demo_parts, main

    assert available_demo_parts()[0] == "core"
    with pytest.raises(SystemExit, match=r"unknown part\(s\) \['nope'\]; available: core"):
        main(["demo", "--parts", "core,nope", "--no-track"])
    with pytest.raises(SystemExit, match=r"set the core step, which --parts forecast leaves out"):
        main(["demo", "--parts", "forecast", "--no-track", "--steps", "3"])
    with pytest.raises(SystemExit, match=r"set the core step"):
        main(["demo", "--parts", "forecast", "--no-track", "bogus.key=1"])


def test_the_installed_command_reports_bad_settings_in_one_line(capsys):
    from xlstm_seq.cli.main import console

    assert console(["forecast", "benchmark", "--no-track", "datasets=[etth9]"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xlstm-seq: error: unknown data set(s) ['etth9']") and "Traceback" not in err
    with pytest.raises(ValueError, match="unknown data set"):  # --verbose keeps the traceback
        console(["--verbose", "forecast", "benchmark", "--no-track", "datasets=[etth9]"])
