"""Smoke test of the CPU benchmark of the core (tiny sizes; speed itself is checked by benchmarks, never here)."""

from __future__ import annotations

import re

import pytest

from xlstm_seq_bench.kernels.core_cpu import (
    BenchSettings,
    Point,
    _fit_slope,
    _skip_reason,
    reference_figures,
    run_core_cpu_benchmark,
)
from xlstm_seq_bench.kernels.timing import WorkerError, measure_peak_memory, median_time, run_worker


def test_median_time_and_peak_memory():
    calls = []
    timing = median_time(lambda: calls.append(1), warmup=2, min_repeats=3, max_repeats=5, min_total_s=0.0)
    assert timing.repeats == 3 and len(calls) == 5 and 0 < timing.min_s <= timing.median_s <= timing.max_s
    memory = measure_peak_memory(lambda: bytearray(64 * 2**20))
    assert memory.peak_delta_bytes >= 48 * 2**20  # 64 MiB touched, freed at once; a page or two of slack


def test_worker_reports_failures():
    with pytest.raises(WorkerError, match="failed: exit status 1"):
        run_worker("xlstm_seq_bench.kernels.core_cpu:mlstm_point", {"form": "nope"}, timeout=60)


def test_skip_rule_and_slope():
    settings = BenchSettings(memory_budget_gib=1.0, time_budget_s=10.0)
    previous = Point("parallel", 1024, fwd_bwd_s=0.1, fwd_s=0.05, peak_bytes=2**28)
    assert _skip_reason(2, 2048, previous, settings) is None  # 1 GiB, 0.4 s: within budget
    assert _skip_reason(2, 4096, previous, settings).startswith("skipped: O(T^2) memory, predicted 4.0 GiB")
    assert _skip_reason(1, 4096, previous, settings) is None
    assert "O(T) time" in _skip_reason(1, 2**17, Point("c", 1024, 0.1, 0.05, 1), settings)
    quadratic = [Point("p", t, fwd_bwd_s=1e-6 * t**2, fwd_s=1.0, peak_bytes=t) for t in (256, 512, 1024, 2048)]
    assert _fit_slope(quadratic, lambda p: p.fwd_bwd_s, 512) == pytest.approx(2.0)
    assert _fit_slope(quadratic, lambda p: p.peak_bytes, 0) == pytest.approx(1.0)
    assert _fit_slope(quadratic[:1], lambda p: p.fwd_bwd_s, 0) is None


def test_quick_benchmark_writes_table_and_one_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "bench" / "core_cpu.md"
    markdown = run_core_cpu_benchmark(out, quick=True, track=True)
    assert out.read_text(encoding="utf-8") == markdown
    assert "xlstm-seq kernels bench --device cpu --quick --out" in markdown
    assert "torch.set_num_threads(1)" in markdown and "torch 2." in markdown and "- date: 20" in markdown
    # Every sweep cell is a positive number (the ratio in brackets aside): nothing skipped or failed at tiny sizes.
    rows = re.findall(r"^\| (128|256) \| (.*) \|$", markdown, flags=re.MULTILINE)
    assert len(rows) == 8  # two lengths in each of the median, fastest, memory and forward tables
    for _, cells in rows:
        for cell in cells.split(" | "):
            assert float(cell.split(" (")[0]) >= 0, cells
    values = [float(c.split(" (")[0]) for _, cells in rows for c in cells.split(" | ")]
    assert all(x > 0 for x in values[:8] + values[12:])  # the three time tables
    assert values[10] > 0  # parallel at T=256 holds T x T matrices: its peak memory shows (small chunks may not)
    model_rows = re.findall(r"^\| (xLSTMStack[^|]*|nn\.LSTM[^|]*) \| ([\d,]+) \| (.*) \|$", markdown, re.MULTILINE)
    # all mLSTM, slstm_at=[1] on the default sLSTM backend and on the torch loop, nn.LSTM
    assert len(model_rows) == 4
    assert "slstm_at=[1], sLSTM backend 'torch'" in markdown
    for _, params, numbers in model_rows:
        assert int(params.replace(",", "")) > 0
        assert all(float(x) > 0 for x in numbers.split(" | "))
    assert "measured in ENVIRONMENT.md" in markdown
    for what, numbers in reference_figures():  # the quoted figures are the data file's, word for word
        assert f"- {what}: {numbers}" in markdown

    import mlflow

    client = mlflow.MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "xlstm-seq-benchmarks"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert {"core_cpu.md", "core_cpu.png"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    history = client.get_metric_history(run.info.run_id, "mlstm/parallel/fwd_bwd_ms")
    assert sorted(m.step for m in history) == [128, 256] and all(m.value > 0 for m in history)
    assert any(key.startswith("step/lstm") for key in run.data.metrics)


def test_reference_figures_are_the_published_ones():
    assert reference_figures() == [
        (
            "official xlstm 2.0.6 stack, 4 blocks (E=128, 4 heads, one sLSTM, vanilla backend), B=8, T=256, fp32",
            "forward+backward 0.55 s; `step()` 3.4 ms per step",
        ),
        (
            "mlstm-kernels 2.0.6 native chunkwise, B=8, NH=4, T=256, D=64",
            "forward 6.3 ms, forward+backward 17.5 ms; native step 0.19 ms",
        ),
    ]


def _eager_rows():
    stack = {"name": "xLSTMStack, 2 blocks, all mLSTM", "kind": "stack", "step_median_s": 2e-3, "fwd_bwd_s": 0.3}
    lstm = {"name": "nn.LSTM", "kind": "lstm", "step_median_s": 5e-4, "fwd_bwd_s": 0.1}
    return [stack, lstm]


def test_compiled_section_states_each_target_from_the_same_run():
    from xlstm_seq_bench.kernels.core_cpu import BenchSettings
    from xlstm_seq_bench.kernels.core_cpu_compiled import compiled_section

    run = {"step_compile_s": 20.0, "train_compile_s": 50.0, "step_median_s": 4e-4, "fwd_bwd_s": 0.2}
    warm = {**run, "step_compile_s": 3.0, "train_compile_s": 4.0}
    rows = [{"slstm_at": [], "cold": run, "warm": warm}]
    text = "\n".join(compiled_section(BenchSettings(), _eager_rows(), rows))
    # step 0.4 / 0.5 ms: met; fwd+bwd 0.2 / 0.1 s = 2.0x: missed; cold 70 s: missed; warm 7 s: met.
    assert "| 0.80 (met) | 2.00 (missed) | 70.0 (missed) | 7.0 (met) |" in text
    assert "| 20.0 + 50.0 = 70.0 | 7.0 |" in text
    failed = [{"slstm_at": [], "cold": {"error": "timed out"}, "warm": {"error": "timed out"}}]
    assert "failed: timed out" in "\n".join(compiled_section(BenchSettings(), _eager_rows(), failed))


@pytest.mark.slow  # a cold and a warm compile of a tiny stack in fresh processes: 1-3 min on 2 loaded cores
def test_compiled_columns_measure_a_cold_and_a_warm_compile(tmp_path):
    from dataclasses import replace

    from xlstm_seq_bench.kernels.core_cpu import BenchSettings
    from xlstm_seq_bench.kernels.core_cpu_compiled import measure_compiled

    class Progress:
        def set_postfix_str(self, text):
            pass

        def update(self, n):
            pass

    settings = replace(BenchSettings.quick(), slstm_variants=((),), num_blocks=1, worker_timeout_s=400.0)
    (row,) = measure_compiled(settings, 1, Progress())
    cold, warm = row["cold"], row["warm"]
    assert "error" not in cold and "error" not in warm, row
    assert cold["fx_cache_misses"] > 0 and warm["fx_cache_hits"] > 0 and warm["fx_cache_misses"] == 0
    assert warm["step_compile_s"] + warm["train_compile_s"] < cold["step_compile_s"] + cold["train_compile_s"]
    assert cold["step_median_s"] > 0 and cold["fwd_bwd_s"] > 0
