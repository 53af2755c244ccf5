"""`xlstm-seq forecast auto` on a tiny budget: one ETTh1 cell (auto, defaults, hand-chosen), the guardrail study on
random walks and M4 Weekly, and the page it writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from xlstm_seq_bench.forecasting.auto_study import AutoStudyConfig, run_auto_study, run_cells
from xlstm_seq_bench.forecasting.long_horizon_config import LongHorizonConfig, ModelSettings

ROOT = Path(os.environ.get("XLSTM_SEQ_DATA", "/nonexistent"))
TINY = {"embedding_dim": 8, "num_heads": 2, "num_blocks": 1, "max_steps": 3, "batch_size": 4, "val_check_steps": 3}


@pytest.mark.skipif(not (ROOT / "ett/ETTh1.csv").is_file() or not (ROOT / "m4").is_dir(), reason="no data root")
def test_tiny_auto_study_writes_its_page(tmp_path, capsys):
    tiny = ModelSettings(**TINY, ensemble=2)
    grid = LongHorizonConfig(datasets=["etth1"], horizons=[24], input_size=48, max_test_windows=4, xlstm=tiny,
                             dlinear=tiny.replace(model="dlinear", mixing="independent", ensemble=1),
                             per_dataset={"etth1": {"xlstm": {"dropout": 0.5}}})  # fmt: skip
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid.to_dict()))
    config = AutoStudyConfig(
        cells=[["etth1", 24]], grid=str(tmp_path / "grid.yaml"), num_samples=2, time_budget_s=600,
        auto_config={**TINY, "model": ["xlstm_time", "xlstm_mixer"]},
        random_walks={"n_sets": 1, "n_series": 2, "length": 160, "test_windows": 2},
        random_walk_settings={"h": 8, "input_size": 24, "patch_len": 8, "max_steps": 5, "embedding_dim": 8,
                              "num_heads": 2},
        m4_weekly_groups=1, m4_weekly_settings={"input_size": 26, "patch_len": 13, "max_steps": 3, "embedding_dim": 8,
                                                "num_heads": 2, "scale_loss": True},
        out=str(tmp_path / "auto.md"),
    )  # fmt: skip
    page = run_auto_study(config, track=False, command="xlstm-seq forecast auto 'cells=[[etth1,24]]'")
    text = page.read_text()
    assert "Written by `xlstm-seq forecast auto 'cells=[[etth1,24]]'`." in text
    assert "| etth1 | 24 | 48 |" in text and ("| 2 / 0 |" in text or "| 1 / 1 |" in text)
    assert "auto no worse than the defaults on every cell's test MSE:" in text
    assert "- random walks: the guardrail fired in" in text and "- M4 Weekly: the guardrail fired in" in text
    assert "| random walks 0 |" in text and "| M4 Weekly group 0 |" in text
    assert "never silent" in text and "holds" in text
    assert (tmp_path / "auto.png").stat().st_size > 0


def test_a_cell_where_auto_kept_the_grid_wide_settings_is_called_a_tie():
    import pandas as pd

    from xlstm_seq_bench.forecasting.auto_report import _cell_rows, _targets
    from xlstm_seq_bench.forecasting.auto_study import CellResult

    def cell(name: str, best_trial: int) -> CellResult:
        trials = pd.DataFrame({"trial": [0, 1, 2], "state": ["COMPLETE", "COMPLETE", "PRUNED"],
                               "score": [0.5 if best_trial == 0 else 0.7, 0.6, None]})  # fmt: skip
        scores = {"defaults": {"mse": 0.20}, "auto": {"mse": 0.21, "seconds": 60.0}}
        return CellResult(name, 96, 512, scores, {"model": "xlstm_time"}, trials, 50.0, None, best_trial,
                          pd.DataFrame(columns=["candidate", "trial", "seed", "score"]))  # fmt: skip

    kept, chosen = cell("weather", 0), cell("ettm1", 1)
    lines = "\n".join(_targets(AutoStudyConfig(), [kept, chosen]))
    assert "missed on weather-96, ettm1-96" in lines
    assert "weather-96: auto kept the grid-wide settings" in lines and "ettm1-96: auto kept" not in lines
    rows = _cell_rows([kept, chosen])
    assert "the grid-wide settings (its first trial)" in rows[2] and "'model': 'xlstm_time'" in rows[3]


@pytest.mark.skipif(not (ROOT / "ett/ETTh1.csv").is_file(), reason="no data root")
@pytest.mark.parametrize("seed", [0, 1])
def test_a_fixed_choice_of_the_grid_wide_settings_scores_as_the_defaults(tmp_path, seed):
    """A fixed choice runs no search and fits its settings with the page's seed set, as the defaults column does:
    the grid-wide settings as the fixed choice give the defaults' test MSE, on seed set 0 and on another."""
    tiny = ModelSettings(**TINY, ensemble=2)
    grid = LongHorizonConfig(datasets=["etth1"], horizons=[24], input_size=48, max_test_windows=4, xlstm=tiny)
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid.to_dict()))
    config = AutoStudyConfig(cells=[["etth1", 24]], grid=str(tmp_path / "grid.yaml"), run_hand_chosen=False,
                             fixed_choices={"etth1-24": tiny.members(48)[0]}, random_walks={"n_sets": 0},
                             m4_weekly_groups=0, seed=seed, out=str(tmp_path / "auto.md"))  # fmt: skip
    (cell,) = run_cells(config, track=False)
    assert cell.chosen_trial is None and cell.search_seconds == 0.0
    assert cell.scores["auto"]["mse"] == pytest.approx(cell.scores["defaults"]["mse"], rel=1e-6)
    page = run_auto_study(config, track=False, command="xlstm-seq forecast auto").read_text()
    assert "fixed (a recorded choice, no search)" in page and f"seed {seed}: every column's members" in page
    assert "| etth1 | 24 | 48 |" in page and "| - | fixed" in page
    assert "auto budget per cell: not checked (fixed choices only, no search)" in page


def test_fixed_choices_must_name_planned_cells():
    with pytest.raises(ValueError, match="must name a cell as 'dataset-h'"):
        AutoStudyConfig(cells=[["etth1", 96]], fixed_choices={"etth1": {}})
    with pytest.raises(ValueError, match=r"names cells not in cells: \['etth2-96'\]"):
        AutoStudyConfig(cells=[["etth1", 96]], fixed_choices={"etth2-96": {"model": "xlstm_time"}})
