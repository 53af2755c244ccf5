"""The Triton mLSTM backward's fused dk+dv layout (``chunkwise_bwd.BWD_LAYOUT = "fused_dkdv"``) against the naive
reference, under the same criteria as the split layout's tests in test_mlstm_triton.py.

Without CUDA the kernels run in Triton's interpreter on CPU tensors (tiny shapes: 2-13 chunks, one head); the
``gpu`` test runs the compiled kernel at real shapes in bf16. The fused kernel's tile sizes are set per case so
that key blocks smaller than, equal to and larger than the query blocks all appear (the causal walk starts at the
query block holding the key block's first row).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_mlstm_inputs
from test_mlstm_triton import GRADS, OUTPUTS, _bf16_case, _run, _triton
from tolerances import assert_close, assert_within_reference_error

from xlstm_seq.kernels.mlstm.naive import mlstm_chunkwise

HAS_TRITON = importlib.util.find_spec("triton") is not None
HAS_CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if HAS_CUDA else "cpu")
CPU = torch.device("cpu")

pytestmark = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (pip install 'xlstm-seq[triton]')")


@pytest.fixture(autouse=True)
def fused_layout(monkeypatch):
    """Interpreter without CUDA; every kernel output starts as NaN (an element never written fails); fused layout."""
    if not HAS_CUDA:
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    from xlstm_seq.kernels.mlstm import chunkwise_bwd, chunkwise_fwd

    monkeypatch.setattr(chunkwise_fwd, "POISON_OUTPUTS", True)
    monkeypatch.setattr(chunkwise_bwd, "BWD_LAYOUT", "fused_dkdv")
    return chunkwise_bwd


def _set_blocks(monkeypatch, bwd, block_k: int, block_q: int) -> None:
    monkeypatch.setattr(bwd, "FUSED_BLOCK_K", block_k)
    monkeypatch.setattr(bwd, "FUSED_BLOCK_Q", block_q)


# (T, DK, DV, chunk, input gate, initial state, resets, key block, query block, column parts). make_resets puts
# resets at step 0, T // 3, 16 (a chunk boundary) and T - 1.
CASES = [
    (40, 16, 32, 16, "exp", True, True, 16, 16, 1),
    (70, 32, 16, 32, "sigmoid", True, False, 16, 32, 1),  # key block < query block; T not a multiple of the chunk
    (130, 24, 40, 64, "exp", False, True, 32, 16, 2),  # key block > query block; head dims not powers of two
    (200, 16, 16, 128, "sigmoid", True, True, 32, 64, 1),  # four key blocks per chunk; resets inside the second
    (100, 64, 96, 64, "exp", True, True, 32, 32, 1),  # the end-state products in several 32-wide slices of DK and DV
    (100, 64, 96, 64, "sigmoid", True, True, 32, 32, 2),  # the same in two column parts
]


def _case_id(T, DK, DV, L, gate, state, resets, bk, bq, parts=1) -> str:
    kind = f"{gate}-{'state' if state else 'zero'}-{'resets' if resets else 'no'}"
    return f"T{T}-dk{DK}-dv{DV}-L{L}-{kind}-k{bk}q{bq}" + (f"-parts{parts}" if parts > 1 else "")


@pytest.mark.parametrize(("T", "DK", "DV", "L", "gate", "state", "resets", "bk", "bq", "parts"), CASES,
                         ids=[_case_id(*c) for c in CASES])  # fmt: skip
def test_fused_dkdv_matches_naive_fp32(T, DK, DV, L, gate, state, resets, bk, bq, parts, fused_layout, monkeypatch):
    _set_blocks(monkeypatch, fused_layout, bk, bq)
    monkeypatch.setattr(fused_layout, "FUSED_SPLITS", parts)
    monkeypatch.setattr(fused_layout, "FUSED_DQ_BLOCK", 16)  # dq in head-dim blocks of 16 (two where DK >= 24)
    x = make_mlstm_inputs(B=2, H=1, T=T, DK=DK, DV=DV, with_state=state, with_resets=resets, seed=T + DK)
    out = _run(_triton, x, torch.float32, DEVICE, chunk_size=L, input_gate=gate)
    ref = _run(mlstm_chunkwise, x, torch.float64, CPU, chunk_size=L, input_gate=gate)
    for name in OUTPUTS:
        assert_close(out[name], ref[name], torch.float32, msg=name)
    for name in GRADS if state else GRADS[:5]:
        assert_close(out[f"d{name}"], ref[f"d{name}"], torch.float32, grad=True, msg=f"d{name}")


FP16_CASES = [(33, 16, 32, 16, "exp", True, True, 16, 16), (100, 32, 16, 32, "sigmoid", False, True, 16, 32)]


@pytest.mark.parametrize("grad_fp32", [True, False], ids=["grad_fp32", "grad_rounded"])
@pytest.mark.parametrize(("T", "DK", "DV", "L", "gate", "state", "resets", "bk", "bq"), FP16_CASES,
                         ids=[_case_id(*c) for c in FP16_CASES])  # fmt: skip
def test_fused_dkdv_fp16_within_twice_the_reference_error(
    T, DK, DV, L, gate, state, resets, bk, bq, grad_fp32, fused_layout, monkeypatch
):
    """fp16 (the interpreter's bf16 dot is wrong, so fp16 stands in for the 16-bit path): h and the fused kernel's
    gradients dk, dv, and di (= k.dk) err at most 2x the reference's own fp16 error with dS and P in fp32 (the
    default). dq, dn0 and dm0 come from the split layout's kernels, which exceed that bound in fp16 in both layouts
    (test_mlstm_triton.py), so they are checked finite here. With dS and P rounded to fp16 (GRAD_DOT_FP32 off) the
    fused gradients stay finite and agree with the split layout's at fp16's gradient tolerance."""
    from xlstm_seq.kernels.mlstm import chunkwise_fwd

    monkeypatch.setattr(chunkwise_fwd, "GRAD_DOT_FP32", grad_fp32)
    _set_blocks(monkeypatch, fused_layout, bk, bq)
    x = make_mlstm_inputs(B=2, H=1, T=T, DK=DK, DV=DV, with_state=state, with_resets=resets)
    x.update({name: x[name].half().double() for name in "qkvif"})
    out = _run(_triton, x, torch.float16, DEVICE, chunk_size=L, input_gate=gate)
    grads = [f"d{name}" for name in (GRADS if state else GRADS[:5])]
    assert all(torch.isfinite(out[name]).all() for name in grads)
    if grad_fp32:
        exact = _run(mlstm_chunkwise, x, torch.float64, CPU, chunk_size=L, input_gate=gate)
        ref_low = _run(mlstm_chunkwise, x, torch.float16, CPU, chunk_size=L, input_gate=gate)
        for name in (*OUTPUTS, "dk", "dv", "di"):
            assert_within_reference_error(out[name], ref_low[name], exact[name], msg=name)
    else:
        monkeypatch.setattr(fused_layout, "BWD_LAYOUT", "split")
        split = _run(_triton, x, torch.float16, DEVICE, chunk_size=L, input_gate=gate)
        for name in grads:
            assert_close(out[name], split[name], torch.float16, grad=True, msg=name)


def test_fused_dkdv_padded_rows_with_huge_gates_stay_finite(fused_layout, monkeypatch):
    """i = f = +200: exp(-m) = 0 and the padded rows of the last chunk have den = 0 (their 1/Z is set to 0)."""
    _set_blocks(monkeypatch, fused_layout, 16, 16)
    x = make_mlstm_inputs(B=1, H=1, T=40, DK=16, DV=16, seed=7)
    x["i"] = torch.full_like(x["i"], 200.0)
    x["f"] = torch.full_like(x["f"], 200.0)
    out = _run(_triton, x, torch.float32, DEVICE, chunk_size=32)
    ref = _run(mlstm_chunkwise, x, torch.float64, CPU, chunk_size=32)
    for name in (*OUTPUTS, *(f"d{n}" for n in GRADS[:5])):
        assert torch.isfinite(out[name]).all(), f"{name} has NaN/inf"
    assert_close(out["h"], ref["h"], torch.float32, msg="h")


def test_unknown_layout_is_refused(fused_layout, monkeypatch):
    monkeypatch.setattr(fused_layout, "BWD_LAYOUT", "fused_everything")
    x = make_mlstm_inputs(B=1, H=1, T=5, DK=16, DV=16)
    with pytest.raises(ValueError, match=r"BWD_LAYOUT must be one of \('split', 'fused_dkdv'\), got 'fused_every"):
        _run(_triton, x, torch.float32, DEVICE, chunk_size=16)


def _sweep_module():
    path = Path(__file__).resolve().parents[2] / "tools" / "gpu" / "mlstm_sweep.py"
    spec = importlib.util.spec_from_file_location("mlstm_sweep", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sweep_dry_run_lists_both_backward_layouts_and_refuses_unknown_settings(monkeypatch, capsys):
    """tools/gpu/mlstm_sweep.py --dry-run (what a GPU lease runs, without running it): every variant names a known
    setting, the fused layout is swept beside the split one, and a misspelt setting or layout stops it up front."""
    sweep = _sweep_module()
    monkeypatch.setattr(sys, "argv", ["mlstm_sweep.py", "--dry-run", "--variants", "bwd"])
    assert sweep.main() == 0
    listed = capsys.readouterr().out
    assert "- baseline (the committed settings)" in listed and "- BWD_LAYOUT=fused_dkdv\n" in listed
    committed = sweep._committed()
    with pytest.raises(ValueError, match="unknown settings"):
        sweep._check_variants([{"FUSED_BLOCKK": 64}], committed)
    with pytest.raises(ValueError, match="BWD_LAYOUT must be one of"):
        sweep._check_variants([{"BWD_LAYOUT": "fused"}], committed)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("gate", ["exp", "sigmoid"])
@pytest.mark.parametrize(("T", "DK", "DV", "L"), [(1000, 128, 256, 64), (2048, 256, 512, 128)], ids=lambda v: str(v))
def test_gpu_fused_dkdv_bf16_real_shapes_within_twice_the_reference_error(T, DK, DV, L, gate):
    """The split layout's real-shape test (test_mlstm_triton.py) under the fused layout, at the committed tiles."""
    x = _bf16_case(2, 4, T, DK, DV)
    cuda = torch.device("cuda")
    exact = _run(mlstm_chunkwise, x, torch.float64, cuda, chunk_size=L, input_gate=gate)
    ref_low = _run(mlstm_chunkwise, x, torch.bfloat16, cuda, chunk_size=L, input_gate=gate)
    out = _run(_triton, x, torch.bfloat16, cuda, chunk_size=L, input_gate=gate)
    for name in (*OUTPUTS, *(f"d{n}" for n in GRADS)):
        assert_within_reference_error(out[name], ref_low[name], exact[name], msg=name)
