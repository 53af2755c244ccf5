"""`xlstm-seq forecast demo`: fit, predict and score on AirPassengers, through the function and the command."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(os.environ.get("XLSTM_SEQ_DATA", "/nonexistent"))


@pytest.mark.skipif(not (ROOT / "air_passengers/AirPassengers.csv").is_file(), reason="AirPassengers not in data root")
def test_forecast_demo_runs_and_reports_metrics():
    from xlstm_seq.forecasting.demo import ForecastDemoConfig, forecast_demo

    lines = []
    results = forecast_demo(ForecastDemoConfig(max_steps=5), track=False, out=lines.append)
    assert set(results) == {"mae", "smape", "mase", "seasonal_naive_mae", "coverage_80", "fit_seconds"}
    assert all(np.isfinite(v) for v in results.values())
    assert "AirPassengers" in lines[0]


@pytest.mark.skipif(not (ROOT / "air_passengers/AirPassengers.csv").is_file(), reason="AirPassengers not in data root")
def test_forecast_demo_command_takes_its_overrides(capsys):
    from xlstm_seq.cli.main import main

    with pytest.raises(ValueError, match="bogus"):
        main(["forecast", "demo", "--no-track", "bogus=1"])
    assert main(["forecast", "demo", "--no-track", "max_steps=5"]) == 0
    assert "AirPassengers" in capsys.readouterr().out
