"""Per-data-set (and per-horizon) overrides of the long-horizon benchmark config, the validation-split mode and the
"met?" column of the markdown."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from xlstm_seq.config_io import apply_overrides, load_yaml
from xlstm_seq_bench.forecasting.long_horizon import run_benchmark
from xlstm_seq_bench.forecasting.long_horizon_config import LongHorizonConfig, ModelSettings
from xlstm_seq_bench.forecasting.long_horizon_report import (
    Cell,
    benchmark_markdown,
    left_out_windows,
    model_label,
    summary_bars,
    summary_figure,
)

ROOT = Path(os.environ.get("XLSTM_SEQ_DATA", "/nonexistent"))
CONFIG = Path(__file__).parents[3] / "configs/forecasting/long_horizon.yaml"


def test_per_dataset_and_per_horizon_overrides_apply_in_order():
    config = LongHorizonConfig(
        per_dataset={
            "ili": {"input_size": 52, "xlstm": {"dropout": 0.5, "embedding_dim": 32},
                    "by_horizon": {36: {"xlstm": {"learning_rate": 5e-4}, "dlinear": {"moving_avg": 13}}}},
            "etth2": {"dlinear": {"learning_rate": 1e-3}},
        }
    )  # fmt: skip
    L, xlstm, dlinear = config.settings_for("ili", 24)
    assert (L, xlstm.dropout, xlstm.embedding_dim, xlstm.learning_rate) == (52, 0.5, 32, 1e-3)
    assert dlinear == config.dlinear
    L, xlstm, dlinear = config.settings_for("ili", 36)
    assert (xlstm.dropout, xlstm.learning_rate, dlinear.moving_avg) == (0.5, 5e-4, 13)
    L, xlstm, dlinear = config.settings_for("etth2", 96)
    assert (L, xlstm, dlinear.learning_rate) == (512, config.xlstm, 1e-3)
    assert config.settings_for("etth1", 96) == (512, config.xlstm, config.dlinear)
    # The grid-wide settings are left as they were.
    assert config.xlstm == ModelSettings() and config.settings_for("ili", 48)[0] == 52


@pytest.mark.parametrize(
    ("per_dataset", "message"),
    [
        ({"etth9": {}}, "unknown data set 'etth9'"),
        ({"ili": {"xlstmm": {}}}, r"per_dataset.ili: unknown key\(s\) \['xlstmm'\]"),
        ({"ili": {"xlstm": {"dropuot": 0.1}}}, r"per_dataset.ili \(xlstm, h=24\).*dropuot"),
        ({"ili": {"xlstm": {"max_steps": 0}}}, "max_steps must be >= 1"),
        ({"ili": {"input_size": 0}}, "input_size must be an int >= 1"),
        ({"ili": {"by_horizon": {"h96": {"xlstm": {}}}}}, "horizon 'h96' is not a positive integer"),
        ({"ili": {"by_horizon": {0: {"xlstm": {}}}}}, "horizon 0 is not a positive integer"),
        ({"ili": {"by_horizon": {96: {"xlstm": {"dropuot": 0.1}}}}}, r"per_dataset.ili \(xlstm, h=96\).*dropuot"),
        ({"ili": {"by_horizon": {24: {"input_size": 52}}}}, "must hold only 'xlstm'/'dlinear'"),
    ],
)
def test_bad_overrides_name_the_entry(per_dataset, message):
    with pytest.raises(ValueError, match=message):
        LongHorizonConfig(per_dataset=per_dataset)


def test_a_run_of_some_horizons_keeps_the_changes_of_the_others():
    per_dataset = {"etth1": {"xlstm": {"ema_decay": 0.995}, "by_horizon": {96: {"xlstm": {"ema_decay": 0.99}}}}}
    config = LongHorizonConfig(horizons=[336, 720], per_dataset=per_dataset)
    assert config.settings_for("etth1", 336)[1].ema_decay == 0.995
    assert config.settings_for("etth1", 96)[1].ema_decay == 0.99


def test_bad_override_types_and_split():
    with pytest.raises(TypeError, match="per_dataset.ili must be a mapping"):
        LongHorizonConfig(per_dataset={"ili": [1]})
    with pytest.raises(ValueError, match="eval_split must be one of"):
        LongHorizonConfig(eval_split="train")


def test_neuralforecast_settings_merge_per_dataset_and_bad_ones_are_named():
    config = LongHorizonConfig(
        neuralforecast={"nf_patchtst": {"hidden_size": 16, "dropout": 0.3}},
        per_dataset={"ili": {"neuralforecast": {"nf_patchtst": {"patch_len": 24, "dropout": 0.1}}}},
    )
    assert config.neuralforecast_kwargs("ili", "nf_patchtst") == {"hidden_size": 16, "dropout": 0.1, "patch_len": 24}
    assert config.neuralforecast_kwargs("etth1", "nf_patchtst") == {"hidden_size": 16, "dropout": 0.3}
    assert config.neuralforecast_kwargs("etth1", "nf_dlinear") == {}
    with pytest.raises(ValueError, match="neuralforecast: unknown neuralforecast baseline 'nf_tft'"):
        LongHorizonConfig(neuralforecast={"nf_tft": {}})
    with pytest.raises(ValueError, match="per_dataset.ili.neuralforecast: unknown neuralforecast baseline 'dlinear'"):
        LongHorizonConfig(per_dataset={"ili": {"neuralforecast": {"dlinear": {}}}})
    with pytest.raises(TypeError, match="neuralforecast.nf_patchtst must be a mapping"):
        LongHorizonConfig(neuralforecast={"nf_patchtst": 16})


def test_committed_config_loads_with_its_overrides():
    config = LongHorizonConfig.from_yaml(CONFIG)
    for name in config.datasets:
        for h in config.ili_horizons if name == "ili" else config.horizons:
            L, xlstm, _ = config.settings_for(name, h)
            assert L >= 1 and isinstance(xlstm, ModelSettings)


def test_plus_override_adds_a_per_dataset_setting_to_the_committed_config():
    # How a validation trial changes one data set's setting that its per_dataset section does not name yet.
    data = apply_overrides(load_yaml(CONFIG), ["+per_dataset.etth1.xlstm.num_heads=2"])
    config = LongHorizonConfig.from_dict(data)
    assert config.settings_for("etth1", 336)[1].num_heads == 2
    assert config.settings_for("etth2", 336)[1].num_heads == config.xlstm.num_heads
    # A misspelt setting still fails, with the key named.
    typo = apply_overrides(load_yaml(CONFIG), ["+per_dataset.etth1.xlstm.num_head=2"])
    with pytest.raises(ValueError, match="num_head"):
        LongHorizonConfig.from_dict(typo)


def test_markdown_met_column_compares_with_patchtst():
    config = LongHorizonConfig(datasets=["etth1"], horizons=[96, 192])
    cells = [
        Cell("etth1", 96, "xlstm_time", [0.369], [0.4], [1.0], [10], "xlstm", 512),
        Cell("etth1", 192, "xlstm_time", [0.4141], [0.43], [1.0], [10], "xlstm", 512),
        Cell("etth1", 96, "DLinear (ours)", [0.2], [0.3], [1.0], [10], "dlinear", 512),
    ]
    text = benchmark_markdown(config, cells)
    rows = [line for line in text.splitlines() if line.startswith("| etth1")]
    assert rows[0].endswith("| yes | - | - |") and rows[1].endswith("| no | - | - |")
    assert rows[2].endswith("| - | - | - |")
    assert "1 of 2 cells in this table" in text and "met, published windows =" not in text
    # On the validation split nothing is compared with the published test numbers.
    assert "| yes |" not in benchmark_markdown(config.replace(eval_split="val"), cells)
    cells[0].mse_published_windows = [0.3514]
    cells[1].mse_published_windows = [0.4126]  # misses on every window, meets on the published ones
    text = benchmark_markdown(config, cells)
    rows = [line for line in text.splitlines() if line.startswith("| etth1")]
    assert rows[0].endswith("| yes | 0.351 | yes |") and rows[1].endswith("| no | 0.413 | yes |")
    assert "1 of 2 cells in this table" in text and "(like for like): 2 of 2 cells" in text


def test_fit_time_section_has_a_row_per_horizon_and_model_with_our_share_of_theirs():
    config = LongHorizonConfig(datasets=["etth1"], horizons=[96, 192], fit_time_steps=20, fit_time_horizons=[96, 720])
    assert config.fit_time_cells() == [("etth1", 96), ("etth1", 720)]
    assert LongHorizonConfig(datasets=["ili"]).fit_time_cells() == [("ili", 24)]
    timings = [(96, "xLSTM (a)", 8.0), (96, "neuralforecast PatchTST (b)", 32.0),
               (720, "xLSTM (a)", 12.0), (720, "neuralforecast PatchTST (b)", 40.0)]  # fmt: skip
    text = benchmark_markdown(config, [], timings, minutes=1.5)
    assert "## Fit time: 20 steps, etth1, same look-back, horizon and windows per step" in text
    assert "No grid cell was run (no horizon)" in text and "| data | h | L | model |" not in text
    assert re.search(r"- date: .* UTC; git ", text) and "- written 1.5 min after the run started" in text
    assert "| 96 | xLSTM (a) | 8.0 | 0.25 |" in text and "| 96 | neuralforecast PatchTST (b) | 32.0 |  |" in text
    assert "| 720 | xLSTM (a) | 12.0 | 0.30 |" in text
    for bad in ([], [0], [96.5]):
        with pytest.raises(ValueError, match="fit_time_horizons"):
            LongHorizonConfig(fit_time_horizons=bad)
    for bad in ([], ["yes"]):
        with pytest.raises(ValueError, match="fit_time_compile"):
            LongHorizonConfig(fit_time_compile=bad)
    alone = [(96, "xLSTM (a, eager)", 8.0), (96, "xLSTM (a, compiled)", 6.0)]  # fit_time_peer false
    text = benchmark_markdown(config.replace(fit_time_peer=False), [], alone, minutes=1.0)
    assert "| 96 | xLSTM (a, eager) | 8.0 |  |" in text and "| 96 | xLSTM (a, compiled) | 6.0 |  |" in text


def test_summary_figure_has_a_panel_per_data_set_and_a_bar_per_model_kind(tmp_path):
    config = LongHorizonConfig(datasets=["etth1", "ili"], horizons=[96], ili_horizons=[24])
    cells = [
        Cell("etth1", 96, "xlstm_time mlstm, mean of 5 seeds", [0.36, 0.38], [0.4], [1.0], [10], "xlstm", 512),
        Cell("etth1", 96, "DLinear (ours)", [0.39], [0.41], [1.0], [10], "dlinear", 512),
        Cell("ili", 24, "xlstm_mixer slstm", [1.7], [0.8], [1.0], [10], "xlstm", 104),
        Cell("ili", 24, "seasonal naive (52)", [2.5], [1.0], [0.0], [0], "seasonal_naive", 104),
    ]
    bars = summary_bars(config, cells)
    # Model kinds, not the per-cell labels, name the bars, so a kind keeps one colour across panels.
    assert bars["etth1"] == {
        "xLSTM (ours)": {96: pytest.approx(0.37)},
        "PatchTST/64 (published)": {96: 0.37},
        "DLinear (ours)": {96: 0.39},
    }
    assert bars["ili"] == {
        "xLSTM (ours)": {24: 1.7},
        "PatchTST/64 (published)": {24: 1.319},
        "seasonal naive": {24: 2.5},
    }
    # The published numbers are test numbers: a validation run's figure leaves them out.
    assert "PatchTST/64 (published)" not in summary_bars(config.replace(eval_split="val"), cells)["etth1"]
    figure = summary_figure(config, cells)
    assert [ax.get_title() for ax in figure.axes] == ["etth1", "ili"]
    assert len(figure.axes[1].patches) == 3
    figure.savefig(tmp_path / "summary.png")
    assert (tmp_path / "summary.png").stat().st_size > 1000


@pytest.mark.skipif(not (ROOT / "ett/ETTh1.csv").is_file(), reason="ETTh1 not in the data root")
def test_validation_split_scores_other_windows_than_test(tmp_path):
    tiny = ModelSettings(embedding_dim=8, num_heads=2, max_steps=2, batch_size=4, val_check_steps=2)
    config = LongHorizonConfig(
        datasets=["etth1"], horizons=[24], input_size=48, max_test_windows=3, num_threads=1, xlstm=tiny,
        baselines=["seasonal_naive"], out=str(tmp_path / "fc.md"), per_dataset={"etth1": {"input_size": 36}},
    )  # fmt: skip
    test_cells = run_benchmark(config, track=False, out=lambda line: None)
    val_cells = run_benchmark(config.replace(eval_split="val"), track=False, out=lambda line: None)
    assert [c.input_size for c in test_cells] == [36, 36]
    # Same seed and training rows: the models are the same, the scored windows differ.
    assert test_cells[0].steps == val_cells[0].steps
    assert test_cells[1].mse != val_cells[1].mse and test_cells[0].mse != val_cells[0].mse
    assert "validation split" in (tmp_path / "fc.md").read_text()


@pytest.mark.skipif(not (ROOT / "ett/ETTh1.csv").is_file(), reason="ETTh1 not in the data root")
def test_validation_backtest_moves_training_and_early_stopping_back_one_validation_length(tmp_path, monkeypatch):
    from xlstm_seq.forecasting.datasets import load_long_horizon
    from xlstm_seq.forecasting.forecaster import XLSTMForecaster

    seen = []  # (last training row, val_size) of every fit
    fit = XLSTMForecaster.fit

    def recording_fit(self, df, *args, val_size=0, **kwargs):
        seen.append((int(df["ds"].max()), val_size))
        return fit(self, df, *args, val_size=val_size, **kwargs)

    monkeypatch.setattr(XLSTMForecaster, "fit", recording_fit)
    tiny = ModelSettings(embedding_dim=8, num_heads=2, max_steps=2, batch_size=4, val_check_steps=2)
    config = LongHorizonConfig(
        datasets=["etth1"], horizons=[24], input_size=36, max_test_windows=3, num_threads=1, xlstm=tiny,
        baselines=["seasonal_naive"], out=str(tmp_path / "fc.md"), eval_split="val",
    )  # fmt: skip
    val_cells = run_benchmark(config, track=False, out=lambda line: None)
    backtest_cells = run_benchmark(config.replace(eval_split="val_backtest"), track=False, out=lambda line: None)
    borders = load_long_horizon("etth1").borders
    val_size = borders["val"][1] - borders["val"][0]
    # "val" trains up to the test part and early-stops on the validation part; the backtest stops a part earlier.
    assert seen == [(borders["test"][0] - 1, val_size), (borders["val"][0] - 1, val_size)]
    # Both score the same validation windows: the seasonal naive, which trains on nothing, agrees to the digit.
    assert backtest_cells[1].mse == val_cells[1].mse
    assert backtest_cells[0].mse != val_cells[0].mse
    with pytest.raises(ValueError, match="eval_split must be one of"):
        config.replace(eval_split="backtest")


@pytest.mark.skipif(not (ROOT / "ett/ETTh1.csv").is_file(), reason="ETTh1 not in the data root")
def test_an_ensemble_cell_trains_every_member_and_says_so(tmp_path):
    tiny = ModelSettings(embedding_dim=8, num_heads=2, max_steps=2, batch_size=4, val_check_steps=2)
    config = LongHorizonConfig(
        datasets=["etth1"], horizons=[24], input_size=36, max_test_windows=3, num_threads=1, xlstm=tiny,
        baselines=[], out=str(tmp_path / "fc.md"),
    )  # fmt: skip
    single = run_benchmark(config, track=False, out=lambda line: None)[0]
    pair = run_benchmark(config.replace(xlstm=tiny.replace(ensemble=2)), track=False, out=lambda line: None)[0]
    assert pair.steps == [2 * single.steps[0]]  # both members trained
    assert pair.mse != single.mse  # member 1 (seed 1) moved the mean forecast
    assert "mean of 2 seeds" in pair.model and "mean of" not in single.model
    with pytest.raises(ValueError, match="ensemble must be >= 1"):
        ModelSettings(ensemble=0)


@pytest.mark.skipif(not (ROOT / "ett/ETTh1.csv").is_file(), reason="ETTh1 not in the data root")
def test_published_windows_column_scores_the_windows_a_drop_last_loader_keeps(tmp_path):
    tiny = ModelSettings(embedding_dim=8, num_heads=2, max_steps=2, batch_size=4, val_check_steps=2)
    config = LongHorizonConfig(
        datasets=["etth1"], horizons=[24], input_size=36, num_threads=1, xlstm=tiny, baselines=["seasonal_naive"],
        out=str(tmp_path / "fc.md"), published_test_batch={"etth1": 1},
    )  # fmt: skip
    # Batch 1 drops nothing: the same windows, the same MSE.
    every = run_benchmark(config, track=False, out=lambda line: None)
    assert every[0].mse_published_windows == pytest.approx(every[0].mse, rel=1e-9)
    assert every[1].mse_published_windows == []  # seasonal naive: not computed
    # ETTh1's test split has 2880 rows, so 2857 windows at h=24; batch 1000 keeps the first 2000 only.
    dropped = run_benchmark(config.replace(published_test_batch={"etth1": 1000}), track=False, out=lambda x: None)
    assert dropped[0].mse == every[0].mse and dropped[0].mse_published_windows != every[0].mse_published_windows
    row = [line for line in (tmp_path / "fc.md").read_text().splitlines() if line.startswith("| etth1 | 24")][0]
    assert row.endswith(f"| {dropped[0].mse_published_windows[0]:.3f} | - |")  # no published number at h=24
    # Sampled windows or the validation split: no published windows to compare with.
    sampled = run_benchmark(config.replace(max_test_windows=3), track=False, out=lambda line: None)
    assert sampled[0].mse_published_windows == []
    # A batch larger than the split: such a loader scores no window, so there is nothing to show.
    too_big = run_benchmark(config.replace(published_test_batch={"etth1": 5000}), track=False, out=lambda x: None)
    assert too_big[0].mse_published_windows == [] and too_big[0].mse == every[0].mse
    with pytest.raises(ValueError, match="published_test_batch"):
        LongHorizonConfig(published_test_batch={"etth1": 0})


def test_ensemble_variants_alternate_between_members_and_bad_ones_are_named():
    settings = ModelSettings(ensemble=5, ensemble_variants=[{}, {"backbone": "slstm", "patch_len": 8}])
    members = settings.members(512)
    assert [m["backbone"] for m in members] == ["mlstm", "slstm", "mlstm", "slstm", "mlstm"]
    assert [m["patch_len"] for m in members] == [None, 8, None, 8, None]
    assert all("ensemble" not in m and "ensemble_variants" not in m for m in members)
    assert ModelSettings(ensemble=2).members(512) == [ModelSettings().members(512)[0]] * 2
    assert all(m["input_size"] == 512 for m in members)
    label = model_label("xlstm", settings)
    assert label.endswith("mean of 5 seeds taking in turn: as is / backbone slstm, patch_len 8")
    # Through a per-data-set change, as the YAML writes it.
    config = LongHorizonConfig(per_dataset={"ili": {"xlstm": {"ensemble": 2, "ensemble_variants": [{"dropout": 0.1}]}}})
    _, xlstm, _ = config.settings_for("ili", 24)
    assert [m["dropout"] for m in xlstm.members(104)] == [0.1, 0.1]
    # Members may read a shorter look-back than the cell's, never a longer one.
    looks = ModelSettings(ensemble=3, ensemble_variants=[{}, {"input_size": 336}])
    assert [m["input_size"] for m in looks.members(512)] == [512, 336, 512]
    with pytest.raises(ValueError, match=r"input_size \[336\] is longer than the look-back 104"):
        looks.members(104)
    with pytest.raises(ValueError, match="ensemble_variants: input_size must be an int >= 1"):
        ModelSettings(ensemble_variants=[{"input_size": 0}])
    with pytest.raises(ValueError, match=r"ensemble_variants: \['mixing'\] cannot change between members"):
        ModelSettings(ensemble_variants=[{"mixing": "independent"}])
    with pytest.raises(ValueError, match="embedding_dim must be >= 1"):
        ModelSettings(ensemble_variants=[{"embedding_dim": 0}])
    with pytest.raises(TypeError, match="ensemble_variants holds mappings"):
        ModelSettings(ensemble_variants=["slstm"])


def test_valid_loss_and_moving_average_reach_the_label_and_bad_losses_are_named():
    assert "early-stopped on mse" in model_label("xlstm", ModelSettings(loss="mae", valid_loss="mse"))
    assert "early-stopped" not in model_label("xlstm", ModelSettings(loss="mae", valid_loss="mae"))
    assert " EMA0.99" in model_label("xlstm", ModelSettings(ema_decay=0.99))
    assert "EMA" not in model_label("xlstm", ModelSettings())
    assert " MA13" in model_label("xlstm", ModelSettings(moving_avg=13))
    assert " MA" not in model_label("xlstm", ModelSettings())
    # Settings a network does not read stay out of its label; patch lengths show each model's own default.
    assert " MA" not in model_label("xlstm", ModelSettings(model="xlstm_mixer", moving_avg=13))
    assert " P" not in model_label("xlstm", ModelSettings(model="xlstm_mixer", mixing="independent"))
    assert " P16 " in model_label("xlstm", ModelSettings(mixing="independent"))
    assert " P1 " in model_label("xlstm", ModelSettings(model="xlstm_encoder", mixing="variates"))
    with pytest.raises(ValueError, match="loss and valid_loss must be one of"):
        ModelSettings(valid_loss="rmse")
    with pytest.raises(ValueError, match="loss and valid_loss must be one of"):
        ModelSettings(loss="huber")


def test_left_out_windows_recovers_the_last_windows_error():
    errors = np.array([0.2, 0.3, 0.25, 0.35, 0.3, 0.2, 0.4, 0.3, 1.5, 2.5])  # per window; the last two left out
    cell = Cell("etth2", 336, "xlstm_time", [errors.mean()], [0.1], [1.0], [10], "xlstm", 512,
                mse_published_windows=[errors[:8].mean()], windows=10, published_windows=8)  # fmt: skip
    left_out, needed = left_out_windows(cell, 0.45)
    assert left_out == pytest.approx(errors[8:].mean())
    # A model with our error on the left-out windows and `needed` on the others scores 0.45 on every window.
    assert (needed * 8 + errors[8:].sum()) / 10 == pytest.approx(0.45)
    assert left_out_windows(replace(cell, published_windows=0), 0.45) is None  # nothing was left out
    assert left_out_windows(replace(cell, mse_published_windows=[]), 0.45) is None


def test_markdown_left_out_section_only_for_cells_that_miss():
    config = LongHorizonConfig(datasets=["etth2"], horizons=[96, 336])
    counts = {"windows": 2545, "published_windows": 2432}
    cells = [
        Cell("etth2", 96, "xlstm_time", [0.27], [0.3], [1.0], [10], "xlstm", 512, [0.27], **counts),
        Cell("etth2", 336, "xlstm_time", [0.372], [0.4], [1.0], [10], "xlstm", 512, [0.338], **counts),
    ]
    text = benchmark_markdown(config, cells)
    section = text.split("## What met? asks of the windows the published runs left out")[1]
    rows = [line for line in section.splitlines() if line.startswith("| etth2")]
    assert len(rows) == 1 and rows[0].startswith("| etth2 | 336 | 2545 | 113 | 0.338 | 1.104 | 0.329 | 0.293 (-11%) |")
    cells[1].mse = [0.32]  # meets on every window: no section
    assert "## What met? asks" not in benchmark_markdown(config, cells)
