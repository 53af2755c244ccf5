"""`xlstm-seq forecast auto-earlier` on a tiny cell: both candidates fitted before the validation split of ETTh1's
training split, the verdict and the page; and the shipped config names complete cells."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xlstm_seq.config_io import load_yaml
from xlstm_seq.forecasting import XLSTMForecaster
from xlstm_seq_bench.forecasting.auto_earlier_check import EarlierCheckConfig, run_earlier_check

ROOT = Path(os.environ.get("XLSTM_SEQ_DATA", "/nonexistent"))
REPO = Path(__file__).resolve().parents[3]
TINY = {"h": 24, "input_size": 48, "embedding_dim": 8, "num_heads": 2, "num_blocks": 1, "max_steps": 3,
        "batch_size": 4, "val_check_steps": 3, "patch_len": 8, "valid_loss": "mse", "random_seed": 0}  # fmt: skip


@pytest.mark.skipif(not (ROOT / "ett/ETTh1.csv").is_file(), reason="no data root")
def test_tiny_earlier_check_writes_the_verdict(tmp_path):
    cell = {"dataset": "etth1", "h": 24, "page": "benchmarks/forecasting/auto_etth1_96.md", "chosen_trial": 3,
            "first": {**TINY, "learning_rate": 1e-7}, "chosen": {**TINY, "learning_rate": 3e-2}}  # fmt: skip
    config = EarlierCheckConfig(cells=[cell], out=str(tmp_path / "check.md"))
    text = run_earlier_check(config, track=False, command="xlstm-seq forecast auto-earlier").read_text()
    assert "Written by `xlstm-seq forecast auto-earlier`." in text
    row = next(line for line in text.splitlines() if line.startswith("| etth1 | 24 |"))
    assert "learning_rate 1e-07 -> 0.03" in row and "[auto_etth1_96.md](auto_etth1_96.md)" in row
    first, chosen = (float(x) for x in row.split("|")[4:6])
    assert first != chosen and ("kept" in row) == (chosen < first)
    assert "Overruled:" in text


def test_the_shipped_config_names_complete_cells_with_valid_settings():
    config = EarlierCheckConfig.from_dict(load_yaml(REPO / "configs/forecasting/auto_earlier_check.yaml"))
    assert len(config.cells) == 8
    for cell in config.cells:
        assert (REPO / cell["page"]).is_file() and cell["first"]["h"] == cell["h"] == cell["chosen"]["h"]
        for label in ("first", "chosen"):
            XLSTMForecaster(**cell[label])  # the settings as logged build a forecaster
    with pytest.raises(ValueError, match=r"cells\[0\] lacks \['chosen'"):
        EarlierCheckConfig(cells=[{"dataset": "etth1", "h": 96, "page": "x.md", "first": {}}])
