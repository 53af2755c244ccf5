"""The GPU kernel benchmarks' harness (``kernels bench --op mlstm|slstm``), run on the CPU at smoke sizes.

Speed is not checked here (benchmarks/mlstm_gpu.md and slstm_gpu.md hold the GPU numbers); these tests check the
table, the provider filter, failures becoming rows, the incomplete marker and the command line it records.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import torch

from xlstm_seq.cli.main import build_parser, main
from xlstm_seq_bench.kernels.device_timing import Measurement, measure
from xlstm_seq_bench.kernels.kernel_report import KernelReport, Row

CPU = torch.device("cpu")


def _rows(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| shape")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_a_failing_call_becomes_an_error_text():
    def boom() -> None:
        raise RuntimeError("no kernel for this shape\nsecond line")

    result = measure(boom, CPU)
    assert result.median_ms is None and result.error == "RuntimeError: no kernel for this shape"
    assert result.time_text() == "failed: RuntimeError: no kernel for this shape" and result.memory_text() == "-"
    ok = measure(lambda: torch.ones(10).sum(), CPU)
    assert ok.median_ms is not None and ok.median_ms > 0 and ok.error is None


def test_report_table_speedups_and_incomplete_marker(tmp_path):
    report = KernelReport("t", "cmd", CPU, tmp_path / "r.md")
    report.rows += [  # single passes too: a table cell without a row prints "-"
        Row("S1", "ours", "fwd+bwd", Measurement(median_ms=2.0, peak_mib=10)),
        Row("S1", "theirs", "fwd+bwd", Measurement(median_ms=5.0)),
        Row("S1", "theirs", "fwd", Measurement(error="boom")),
        Row("S2", "ours", "fwd+bwd", Measurement(median_ms=1.0)),
    ]
    assert report.speedups("ours", "theirs") == {"S1": 2.5}  # S2 has no "theirs" row
    text = report.write(complete=False)
    assert "**Incomplete" in text and (tmp_path / "r.md").read_text() == text
    assert _rows(text) == [
        ["S1", "ours", "-", "-", "2.00", "10"],
        ["S1", "theirs", "failed: boom", "-", "5.00", "-"],
        ["S2", "ours", "-", "-", "1.00", "-"],
    ]
    assert "**Incomplete" not in report.write(complete=True)


def test_mlstm_benchmark_on_cpu_measures_the_chosen_providers(tmp_path):
    out = tmp_path / "mlstm.md"
    argv = ["kernels", "bench", "--op", "mlstm", "--device", "cpu", "--quick", "--no-track"]
    argv += ["--providers", "reference,sdpa,xl_chunk", "--out", str(out)]
    assert main(argv) == 0
    rows = _rows(out.read_text())
    providers = [r[1] for r in rows]
    assert providers == [
        "torch chunkwise reference L64",
        "mlstm_kernels triton_xl_chunk (TFLA) exp",
        "torch SDPA flash (32 heads x 128, causal)",
    ]
    assert all(float(r[2]) > 0 and float(r[4]) > 0 for r in rows if not r[1].startswith("mlstm_kernels"))
    assert rows[1][2].startswith("failed: not installed")  # never measured on a CPU
    text = out.read_text()
    assert "--providers reference,sdpa,xl_chunk --quick --no-track" in text and "**Incomplete" not in text


def test_slstm_benchmark_on_cpu_runs_the_reference_and_names_what_it_cannot(tmp_path):
    out = tmp_path / "slstm.md"
    assert (
        main(["kernels", "bench", "--op", "slstm", "--device", "cpu", "--quick", "--no-track", "--out", str(out)]) == 0
    )
    rows = {r[1]: r for r in _rows(out.read_text())}
    assert rows["ours cuda (fused)"][2] == "failed: needs CUDA"
    assert float(rows["torch reference loop"][4]) > 0 and float(rows["nn.LSTM hidden 768 (cuDNN)"][2]) > 0
    assert rows["flashrnn cuda_fused"][2].startswith("failed: not installed or no CUDA")


def test_slstm_benchmark_times_the_125m_xlstm_shape_first_and_names_the_kernel_variant():
    from xlstm_seq_bench.kernels import slstm_gpu

    assert slstm_gpu.SHAPES[0] == (16, 1024, 192, 4)  # B, T, D, H: hidden 768 as 4 heads of 192
    assert all(D * H == slstm_gpu.HIDDEN for _, _, D, H in slstm_gpu.SHAPES)
    assert slstm_gpu._ours_label(192) == slstm_gpu._ours_label(256) == "ours cuda (multiblock)"
    assert slstm_gpu._ours_label(64) == "ours cuda (fused)"
    assert slstm_gpu._ours_label(240) == "ours cuda (torch reference fallback)"


def test_the_recorded_command_parses_back(tmp_path):
    out = tmp_path / "my file.md"
    argv = ["kernels", "bench", "--op", "mlstm", "--device", "cpu", "--quick", "--no-track"]
    argv += ["--providers", "sdpa", "--out", str(out)]
    main(argv)
    recorded = next(line for line in out.read_text().splitlines() if line.startswith("Written by"))
    words = shlex.split(recorded.split("`")[1])
    assert words[:3] == ["xlstm-seq", "kernels", "bench"]
    assert vars(build_parser().parse_args(words[1:])) == vars(build_parser().parse_args(argv))


def test_unknown_mlstm_provider_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"unknown provider\(s\) \['tfla'\]; valid: ours,reference,sdpa"):
        main(["kernels", "bench", "--op", "mlstm", "--device", "cpu", "--providers", "ours,tfla", "--no-track"])


def test_gpu_ops_on_a_machine_without_cuda_and_core_on_cuda_are_refused():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="torch sees no CUDA device"):
        main(
            ["kernels", "bench", "--op", "slstm", "--device", "cuda", "--no-track", "--out", str(Path("/nonexistent"))]
        )
    with pytest.raises(ValueError, match="--op core --device cuda"):
        main(["kernels", "bench", "--device", "cuda"])
