"""examples/forecast_quickstart.py runs as a user would run it: a real data set, a fit, a forecast and a plot."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from xlstm_seq.data import data_root

EXAMPLE = Path(__file__).parents[2] / "examples/forecast_quickstart.py"


@pytest.mark.skipif(
    not (data_root() / "air_passengers/AirPassengers.csv").is_file(), reason="AirPassengers not in the data root"
)
def test_quickstart_beats_seasonal_naive_and_writes_its_plot(tmp_path):
    # Run in tmp_path (the conftest's working directory and MLflow store), in a fresh interpreter.
    done = subprocess.run([sys.executable, str(EXAMPLE), "plots/quick.png"], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r"MAE ([\d.]+) vs seasonal naive ([\d.]+)", done.stdout)
    assert match, done.stdout[-2000:]
    ours, naive = map(float, match.groups())
    assert ours < naive
    assert "Warning" not in done.stderr
    assert (tmp_path / "plots/quick.png").stat().st_size > 10_000
