"""The README's Python examples run as written, and do what their comments say.

The blocks run in order in one namespace (the tracking block uses the stack's ``config``), in a temporary working
directory with a temporary MLflow store. The reinforcement-learning block is the one left out: it trains for 50,000
environment steps and continues from an ``obs`` the reader's own loop holds; tests/rl covers XLSTMPPO.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_blocks_run_and_keep_their_promises(tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    blocks = _python_blocks()
    left_out = [b for b in blocks if "XLSTMPPO" in b]
    assert len(left_out) == 1, "only the RL block is left out; a new block should run here"
    namespace: dict = {}
    for block in blocks:
        if block not in left_out:
            exec(compile(block, f"README.md block {blocks.index(block)}", "exec"), namespace)  # noqa: S102

    # The stack: any length, and a state to carry on from.
    assert namespace["y"].shape == (8, 1000, 128) and namespace["y2"].shape == (8, 37, 128)
    assert namespace["y_t"].shape == (8, 128)
    # The kernels: the shapes the comments give.
    assert namespace["h"].shape == (2, 256, 4, 32)  # the sLSTM's h (B, T, H, D), the block's last h
    assert namespace["h_t"].shape == (2, 4, 64) and namespace["C"].shape == (2, 4, 32, 64)
    # Forecasting: the columns the comment lists, the cross-validation columns, and a folder that loads.
    forecast, cv = namespace["forecast"], namespace["cv"]
    assert list(forecast.columns) == ["unique_id", "ds", "xLSTMTime", "xLSTMTime-lo-95", "xLSTMTime-lo-80",
                                      "xLSTMTime-hi-80", "xLSTMTime-hi-95"]  # fmt: skip
    assert len(forecast) == 12 and {"cutoff", "y"} <= set(cv.columns) and cv["cutoff"].nunique() == 3
    loaded = namespace["XLSTMForecaster"].load("airpassengers")
    assert loaded.predict(level=[80, 95])["xLSTMTime"].to_numpy() == pytest.approx(forecast["xLSTMTime"].to_numpy())
