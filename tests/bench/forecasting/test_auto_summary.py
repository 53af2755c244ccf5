"""The all-cells page of auto mode: it reads the auto pages' cell tables, fills a skipped hand-chosen column only
where the grid allows, applies the earlier-period check to the page it checked, and calls a difference within the
spread over seed sets a tie."""

from __future__ import annotations

from pathlib import Path

import pytest

from xlstm_seq.cli.main import main
from xlstm_seq_bench.forecasting.auto_summary import (
    AutoSummaryConfig,
    gather_cells,
    read_auto_table,
    short_choice,
    spread_verdict,
)

REPO = Path(__file__).resolve().parents[3]
TABLE = ("| data | h | L | defaults MSE | hand-chosen MSE | auto MSE | auto vs defaults | auto vs hand-chosen | "
         "auto fit s (search + seeds) | trials (complete / pruned) | auto's choice |\n"
         "|---|---|---|---|---|---|---|---|---|---|---|\n")  # fmt: skip
CHOICE = ("{'model': 'xlstm_mixer', 'backbone': 'slstm', 'mixing': 'variates', 'loss': 'mae', 'freq_loss_weight': 0.0, "
          "'dropout': 0.5, 'revin_subtract_last': True, 'max_steps': 1000}; tie check, validation score over 3 seeds: "
          "first trial 0.4 ± 0.01")  # fmt: skip


def _page(path: Path, rows: list[str], seed: int = 0) -> str:
    path.write_text(f"# Auto mode\n\n- seed {seed}; whole run 1.0 min\n\n{TABLE}" + "\n".join(rows) + "\n\nTargets:\n")
    return str(path)


def test_cells_are_read_and_a_skipped_hand_column_is_filled_only_where_the_grid_allows(tmp_path):
    page = _page(tmp_path / "auto_a.md", [
        f"| etth1 | 96 | 512 | 0.3644 | - | 0.3757 | +3.1% | - | 532 | 19 / 21 | {CHOICE} |",
        "| ettm1 | 96 | 512 | 0.2814 | - | 0.2814 | +0.0% | - | 420 | 13 / 27 | the grid-wide settings (its first "
        "trial) |"])  # fmt: skip
    row = f"| etth1 | 96 | 512 | 0.3644 | 0.3603 | 0.3757 | +3.1% | +4.3% | 1 | 1 / 0 | {CHOICE} |"
    hand = _page(tmp_path / "auto_b.md", [row])
    earlier = tmp_path / "auto_earlier_check.md"
    earlier.write_text("| data | h | the chosen trial changes (first -> chosen) | earlier period MSE: first | chosen | "
                       "verdict | fit s | cell's page |\n|---|---|---|---|---|---|---|---|\n"
                       "| etth1 | 96 | model a -> b | 0.39 | 0.38 | overruled: the grid-wide settings would be served "
                       "| 20 | [auto_a.md](auto_a.md) |\n")  # fmt: skip
    grid = str(REPO / "configs/forecasting/long_horizon.yaml")
    config = AutoSummaryConfig(cells=[{"dataset": "etth1", "h": 96, "page": page, "hand_page": hand},
                                      {"dataset": "ettm1", "h": 96, "page": page}],
                               earlier_check=str(earlier), grid=grid)  # fmt: skip
    etth1, ettm1 = gather_cells(config)
    assert (etth1["defaults"], etth1["hand"], etth1["auto"]) == (0.3644, 0.3603, 0.3757)
    assert etth1["hand_source"] == "auto_b.md" and etth1["overruled"]
    assert ettm1["hand"] == 0.2814 and "no per-data-set changes" in ettm1["hand_source"] and not ettm1["overruled"]
    # ETTh1's hand-chosen settings differ from the grid-wide ones: without a hand page there is no number to take
    with pytest.raises(ValueError, match="name a hand_page"):
        gather_cells(config.replace(cells=[{"dataset": "etth1", "h": 96, "page": page}]))
    assert short_choice(CHOICE) == "xlstm_mixer slstm variates, loss mae, dropout 0.5, RevIN subtract-last, 1000 steps"
    assert read_auto_table(page)[("ettm1", 96)].choice.startswith("the grid-wide settings")


@pytest.mark.parametrize(
    ("defaults", "auto", "verdict"),
    [
        ([0.364, 0.366, 0.362], [0.376, 0.378, 0.377], "loss beyond the spread"),
        ([0.364, 0.380, 0.362], [0.376, 0.366, 0.377], "tie"),
        ([0.364, 0.366], [0.350, 0.352], "win beyond the spread"),
        ([0.364], [0.376], "not measured"),
    ],
)
def test_a_difference_within_the_spread_over_seed_sets_is_a_tie(defaults, auto, verdict):
    entries = [{"seed": s, "defaults": d, "auto": a} for s, (d, a) in enumerate(zip(defaults, auto, strict=True))]
    assert spread_verdict(entries)["verdict"].startswith(verdict)


def test_the_summary_page_names_its_command_sources_and_seed_sets(tmp_path):
    rows = [f"| etth1 | 96 | 512 | 0.3644 | 0.3603 | 0.3757 | +3.1% | +4.3% | 1 | 1 / 0 | {CHOICE} |"]
    page = _page(tmp_path / "auto_a.md", rows)
    sets = [_page(tmp_path / f"auto_seed_set_{s}.md", [f"| etth1 | 96 | 512 | {d} | - | {a} | x | - | 1 | - | "
                                                       f"fixed (a recorded choice, no search): {CHOICE} |"], seed=s)
            for s, d, a in ((0, 0.3644, 0.3757), (1, 0.3650, 0.3720))]  # fmt: skip
    config = tmp_path / "summary.yaml"
    grid = REPO / "configs/forecasting/long_horizon.yaml"
    config.write_text(f"cells: [{{dataset: etth1, h: 96, page: {page}}}]\nseed_set_pages: [{sets[0]}, {sets[1]}, "
                      f"{tmp_path / 'missing.md'}]\nearlier_check: null\ngrid: {grid}\n")  # fmt: skip
    out = tmp_path / "all.md"
    assert main(["forecast", "auto-summary", "--config", str(config), "--out", str(out)]) == 0
    text = out.read_text()
    assert "Written by `xlstm-seq forecast auto-summary --config" in text
    assert "- date:" in text and "- versions:" in text and "load average" in text
    assert "mean ratio of test MSE auto / hand-chosen 1.043 over 1 cells" in text
    assert "| etth1 | 96 | 1 (5-9) | 0.3650 | 0.3720 | +1.9% |" in text
    assert "| etth1 | 96 | 2 | 0.3647 ± 0.0004 (0.0006) | 0.3739 ± 0.0026 (0.0037) |" in text
    assert "loss beyond the spread" in text and "seed set 0 here reproduces the recorded run" in text


def test_the_recorded_pages_of_all_20_cells_are_read(monkeypatch):
    monkeypatch.chdir(REPO)
    config = AutoSummaryConfig.from_yaml(REPO / "configs/forecasting/auto_all_cells.yaml")
    cells = gather_cells(config)
    assert len(cells) == 20 and len({(c["dataset"], c["h"]) for c in cells}) == 20
    assert all(c["hand"] > 0 and c["defaults"] > 0 and c["auto"] > 0 for c in cells)
