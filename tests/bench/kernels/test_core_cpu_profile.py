"""``kernels bench --op core_profile``: the grouping of profiler events and the report, eager at smoke sizes."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from xlstm_seq.cli.main import main
from xlstm_seq_bench.kernels.core_cpu_profile import ProfileSettings, op_group, run_core_cpu_profile


def test_events_fall_into_their_groups():
    assert op_group("aten::mm") == op_group("aten::bmm") == op_group("aten::addmm") == "matrix products"
    assert op_group("## Call CompiledFxGraph fa24r4iuppotdnb7 ##") == "inductor fused kernels"
    assert op_group("aten::mkldnn_rnn_layer_backward") == "oneDNN RNN kernels"
    assert op_group("aten::mul") == op_group("aten::copy_") == "other ops"


def test_the_report_has_a_row_per_model_and_groups_that_add_up(tmp_path, mlflow_in_tmp):
    out = tmp_path / "profile.md"
    settings = ProfileSettings(**{**ProfileSettings.quick().__dict__, "compiled": False})
    markdown = run_core_cpu_profile(out, settings=settings)
    assert out.read_text() == markdown and "Written by `xlstm-seq kernels bench --op core_profile" in markdown
    rows = [line.split("|")[1:-1] for line in markdown.splitlines() if line.startswith("| xLSTMStack") or
            line.startswith("| nn.LSTM")]  # fmt: skip
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [
        ("xLSTMStack, 2 blocks, all mLSTM", "eager"),
        ("nn.LSTM(16, 16, num_layers=2)", "eager"),
    ]
    share = lambda cell: float(cell.split("%")[0])  # noqa: E731 - "41% (2.0 ms)" -> 41.0
    stack, lstm = ([float(r[2]), *(share(c) for c in r[3:7]), float(r[7])] for r in rows)
    assert stack[1] > 0 and stack[2] == 0.0  # eager: projections are matrix products, nothing is fused
    assert lstm[3] > 0 and lstm[-1] == 1.0  # nn.LSTM runs oneDNN's cell; the ratio column is relative to it
    assert sum(stack[1:5]) == pytest.approx(100, abs=2)  # the groups' shares cover the profiled time
    run = MlflowClient().search_runs([MlflowClient().get_experiment_by_name("xlstm-seq-benchmarks").experiment_id])[0]
    assert run.data.tags["benchmark"] == "core_cpu_profile"
    assert any(key.endswith("/eager/matrix_products_s") for key in run.data.metrics)


def test_the_profile_runs_on_the_cpu_only(tmp_path):
    from xlstm_seq.config_io import ConfigError

    with pytest.raises(ConfigError, match="core_profile --device cuda: the profile is of the CPU path"):
        main(["kernels", "bench", "--op", "core_profile", "--device", "cuda", "--out", str(tmp_path / "p.md")])
