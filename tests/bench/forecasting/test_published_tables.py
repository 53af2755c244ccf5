"""The published numbers the reports compare with live in YAML files beside the benchmark code, with their sources;
these tests pin them to the numbers the reports printed before they moved there, and check that the reports print
what the files hold."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from xlstm_seq_bench.forecasting.long_horizon_config import LongHorizonConfig, published_long_horizon
from xlstm_seq_bench.forecasting.long_horizon_report import Cell, benchmark_markdown
from xlstm_seq_bench.forecasting.m4_report import _naive2_check, published_naive2

CONFIG = Path(__file__).parents[3] / "configs/forecasting/long_horizon.yaml"

# [MSE, MAE] as forecasting/benchmark_config.py held them in code (PatchTST Table 3).
PATCHTST = {
    "etth1": {96: [0.370, 0.400], 192: [0.413, 0.429], 336: [0.422, 0.440], 720: [0.447, 0.468]},
    "etth2": {96: [0.274, 0.337], 192: [0.341, 0.382], 336: [0.329, 0.384], 720: [0.379, 0.422]},
    "ettm1": {96: [0.293, 0.346], 192: [0.333, 0.370], 336: [0.369, 0.392], 720: [0.416, 0.420]},
    "weather": {96: [0.149, 0.198], 192: [0.194, 0.241], 336: [0.245, 0.282], 720: [0.314, 0.334]},
    "ili": {24: [1.319, 0.754], 36: [1.579, 0.870], 48: [1.553, 0.815], 60: [1.470, 0.788]},
}
DLINEAR = {
    "etth1": {96: [0.375, 0.399], 192: [0.405, 0.416], 336: [0.439, 0.443], 720: [0.472, 0.490]},
    "etth2": {96: [0.289, 0.353], 192: [0.383, 0.418], 336: [0.448, 0.465], 720: [0.605, 0.551]},
    "ettm1": {96: [0.299, 0.343], 192: [0.335, 0.365], 336: [0.369, 0.386], 720: [0.425, 0.421]},
    "weather": {96: [0.176, 0.237], 192: [0.220, 0.282], 336: [0.265, 0.319], 720: [0.323, 0.362]},
    "ili": {24: [2.215, 1.081], 36: [1.963, 0.963], 48: [2.130, 1.024], 60: [2.368, 1.096]},
}


def test_the_long_horizon_file_holds_the_published_numbers():
    table = published_long_horizon()
    assert table["scores"] == {"PatchTST/64": PATCHTST, "DLinear": DLINEAR}
    assert table["test_batch"] == {"etth1": 128, "etth2": 128, "ettm1": 128, "weather": 128, "ili": 16}
    config = LongHorizonConfig()
    assert config.published == table["scores"] and config.published_test_batch == table["test_batch"]
    config.published["DLinear"]["ili"][24][0] = 0.0  # a config's copy, not the cached table
    assert published_long_horizon()["scores"]["DLinear"]["ili"][24] == [2.215, 1.081]


def test_the_committed_config_takes_the_published_numbers_from_the_file():
    config = yaml.safe_load(CONFIG.read_text())
    assert "published" not in config and "published_test_batch" not in config, "one source: the published YAML"
    resolved = LongHorizonConfig.from_dict(config)
    assert resolved.published == published_long_horizon()["scores"]
    assert resolved.published_test_batch == published_long_horizon()["test_batch"]


@pytest.mark.parametrize("dataset", list(PATCHTST))
def test_the_report_prints_the_published_numbers_of_every_cell(dataset):
    horizons = list(PATCHTST[dataset])
    config = LongHorizonConfig(datasets=[dataset], horizons=horizons, ili_horizons=horizons)
    cells = [Cell(dataset, h, "xlstm_time", [0.5], [0.5], [1.0], [10], "xlstm", 512) for h in horizons]
    rows = [line for line in benchmark_markdown(config, cells).splitlines() if line.startswith(f"| {dataset} |")]
    assert len(rows) == len(horizons)
    for row, h in zip(rows, horizons, strict=True):
        patchtst, dlinear = row.split(" | ")[8:10]
        assert patchtst == "{:.3f} / {:.3f}".format(*PATCHTST[dataset][h])
        assert dlinear == "{:.3f} / {:.3f}".format(*DLINEAR[dataset][h])


def test_the_m4_file_holds_the_published_naive2_and_the_report_prints_it():
    assert published_naive2() == {"hourly": (18.383, 2.395), "weekly": (9.161, 2.777)}
    rows = [{"method": "Naive2", "smape": 18.383, "mase": 2.395}]
    assert _naive2_check("hourly", rows, None) == (
        "Naive2 check: published sMAPE 18.383, MASE 2.395; this run 18.383, 2.395 (reproduced)."
    )
    rows = [{"method": "Naive2", "smape": 9.5, "mase": 2.777}]
    assert "published sMAPE 9.161, MASE 2.777; this run 9.500, 2.777 (NOT reproduced)" in _naive2_check(
        "weekly", rows, None
    )
