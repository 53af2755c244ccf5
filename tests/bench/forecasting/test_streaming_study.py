"""`xlstm-seq forecast streaming` on a small synthetic long-horizon set: every method scored on the same origins, the
streamed forecasts equal to one pass from scratch, the page written with its cost table."""

from __future__ import annotations

import numpy as np
import pytest

from xlstm_seq.forecasting.datasets import LongHorizonData
from xlstm_seq_bench.forecasting import streaming
from xlstm_seq_bench.forecasting.streaming import StreamingConfig, run_streaming


@pytest.fixture
def synthetic(monkeypatch) -> LongHorizonData:
    rng = np.random.default_rng(0)
    t = np.arange(240)
    values = np.stack([np.sin(2 * np.pi * t / 12), np.cos(2 * np.pi * t / 12)], axis=1) + rng.normal(0, 0.1, (240, 2))
    data = LongHorizonData(name="synthetic", dates=t, columns=["a", "b"], values=values.astype(np.float32),
                           mean=np.zeros(2), std=np.ones(2), season=12, horizons=(6,),
                           borders={"train": (0, 160), "val": (160, 200), "test": (200, 240)})  # fmt: skip
    monkeypatch.setattr(streaming, "load_long_horizon", lambda name: data)
    return data


def test_streaming_study_writes_its_page(synthetic, tmp_path, one_torch_thread):
    tiny = {"embedding_dim": 8, "num_blocks": 1, "num_heads": 2}
    config = StreamingConfig(
        cells=[{"data": "synthetic", "h": 6, "input_size": 24, "candidates": [{"lags": 1}, {"lags": 2}],
                "cost_history": [50, 150]}],
        stateful={**tiny, "max_steps": 4, "val_check_steps": 2, "chunk_len": 16},
        windowed={**tiny, "max_steps": 3, "patch_len": 6},
        cost_updates=5,
        out=str(tmp_path / "streaming.md"),
    )  # fmt: skip
    cell = streaming.run_cell(config, config.cells[0], track=False)
    assert cell.origins == 40 - 6 + 1 and cell.n_series == 2
    assert cell.stream_vs_one_pass < 1e-4
    assert cell.chosen == int(np.argmin([c.val_mse for c in cell.candidates]))
    assert set(cell.candidates[0].baselines) == {"naive", "seasonal_naive"}  # the guardrail's report, season 12
    # the last-value forecast scored by hand on the same origins
    rows = 200 + np.arange(cell.origins)[:, None] + np.arange(6)
    last = synthetic.values[rows] - synthetic.values[rows[:, :1] - 1]
    assert cell.scores["last value"]["mse"] == pytest.approx(float((last.astype(np.float64) ** 2).mean()))
    assert [k["rows"] for k in cell.cost] == [50, 150] and all(k["update_us"] > 0 for k in cell.cost)
    page = run_streaming(config, track=False, command="xlstm-seq forecast streaming (test)")
    text = page.read_text()
    assert "| synthetic | 6 | 35 x 2 | stateful (streamed) |" in text and "seasonal naive (12)" in text
    assert "naive " in text and (tmp_path / "streaming.png").is_file()
