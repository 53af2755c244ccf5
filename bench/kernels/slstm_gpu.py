"""``xlstm-seq kernels bench --op slstm``: our CUDA sLSTM against the torch loop, cuDNN, xlstm and FlashRNN.

Shapes: B = 16, T = 1,024, hidden 768 as (head dim, heads) in (192, 4) (the 125M xLSTM's sLSTM blocks), (64, 12),
(128, 6), (256, 3); bf16 inputs. Providers, in one process on the same inputs:

* ours: ``backend="cuda"``, whose kernel variant the row names (fused up to head dim 128, multiblock above); at
  head dim 128 also the multiblock variant by name, beside the fused one;
* the torch reference loop (our ``backend="torch"``, one Python step per time step);
* ``nn.LSTM`` with hidden 768 (cuDNN), on (B, T, 768) inputs;
* NX-AI's official xlstm sLSTM cell, ``backend="cuda"`` (pip ``xlstm``; alternating GEMM + pointwise per step);
* FlashRNN ``cuda_fused`` (pip ``flashrnn``).

The last two compile CUDA code on first use (minutes); that happens before timing and is not counted.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from tqdm.auto import tqdm

from xlstm_seq_bench.kernels.device_timing import Measurement, measure_passes
from xlstm_seq_bench.kernels.kernel_report import KernelReport

__all__ = ["run_slstm_benchmark"]

DEFAULT_OUT = Path("benchmarks/kernels/slstm_gpu.md")
HIDDEN = 768
# (B, T, D, H); the 125M xLSTM's shape first, so that a run stopped part-way has measured it.
SHAPES = [(16, 1024, 192, 4), (16, 1024, 64, 12), (16, 1024, 128, 6), (16, 1024, 256, 3)]
QUICK_SHAPES = [(2, 20, 16, 2)]
#: Head dims where ``backend="cuda"`` runs the fused kernel and the multiblock kernel is timed beside it.
MULTIBLOCK_BESIDE_FUSED = (128,)

Run = Callable[[bool], torch.Tensor]  # run(with_grad) -> an output to take the backward of


def _ours(backend: str, gates_x: torch.Tensor, R: torch.Tensor, b: torch.Tensor) -> Run:
    from xlstm_seq.kernels.slstm import slstm

    leaves = [t.detach().clone().requires_grad_() for t in (gates_x, R, b)]

    def run(grad: bool) -> torch.Tensor:
        xs = leaves if grad else [t.detach() for t in leaves]
        return slstm(*xs, backend=backend)[0]

    return run


def _ours_variant(variant: str, gates_x: torch.Tensor, R: torch.Tensor, b: torch.Tensor) -> Run:
    from xlstm_seq.kernels.slstm.fused import slstm_fused

    leaves = [t.detach().clone().requires_grad_() for t in (gates_x, R, b)]

    def run(grad: bool) -> torch.Tensor:
        xs = leaves if grad else [t.detach() for t in leaves]
        return slstm_fused(*xs, variant=variant)[0]

    return run


def _ours_kernel(head_dim: int, gates_x: torch.Tensor, R: torch.Tensor, b: torch.Tensor) -> Callable[[], Run]:
    """The maker of the ``backend="cuda"`` row; the multiblock kernel by name, since backend "cuda" runs it only once
    confirmed on a GPU (kernels/slstm/fused.py, ``multiblock_enabled``) and the row times the kernel either way."""
    if _ours_label(head_dim) == "ours cuda (multiblock)":
        return partial(_ours_variant, "multiblock", gates_x, R, b)
    return partial(_ours, "cuda", gates_x, R, b)


def _ours_label(head_dim: int) -> str:
    """The row of ``backend="cuda"``, named after the kernel variant that runs this head dim."""
    from xlstm_seq.kernels.slstm.cuda_loader import resolve_variant, unsupported_reason

    if unsupported_reason(head_dim, torch.bfloat16):
        return "ours cuda (torch reference fallback)"
    return f"ours cuda ({resolve_variant(head_dim)})"


def _cudnn_lstm(B: int, T: int, device: torch.device, dtype: torch.dtype) -> Run:
    lstm = torch.nn.LSTM(HIDDEN, HIDDEN, batch_first=True).to(device, dtype)
    x = torch.randn(B, T, HIDDEN, device=device, dtype=dtype, requires_grad=True)

    def run(grad: bool) -> torch.Tensor:
        return lstm(x if grad else x.detach())[0]

    return run


def _flashrnn(gates_x: torch.Tensor, R: torch.Tensor, b: torch.Tensor) -> Run:
    from flashrnn import flashrnn

    # FlashRNN's layout: Wx (B,T,4,H,D), R (4,H,D,D), b (4,H,D).
    Wx = gates_x.detach().clone().requires_grad_()
    Rf = R.detach().permute(2, 0, 1, 3).contiguous().requires_grad_()
    bf = b.detach().clone().requires_grad_()

    def run(grad: bool) -> torch.Tensor:
        xs = (Wx, Rf, bf) if grad else (Wx.detach(), Rf.detach(), bf.detach())
        return flashrnn(*xs, function="slstm", backend="cuda_fused", dtype="bfloat16")[0]

    return run


def _official_xlstm(B: int, T: int, D: int, H: int, device: torch.device) -> Run:
    from xlstm.blocks.slstm.cell import sLSTMCell, sLSTMCellConfig

    config = sLSTMCellConfig(hidden_size=D * H, num_heads=H, backend="cuda", dtype="bfloat16", batch_size=B)
    cell = sLSTMCell(config).to(device)
    x = torch.randn(B, T, 4 * D * H, device=device, dtype=torch.bfloat16, requires_grad=True)

    def run(grad: bool) -> torch.Tensor:
        return cell(x if grad else x.detach())[0]

    return run


def run_slstm_benchmark(
    out: Path = DEFAULT_OUT,
    *,
    device: str = "cuda",
    quick: bool = False,
    command: str = "xlstm-seq kernels bench --op slstm --device cuda",
    track: bool = True,
    baselines: tuple[str, ...] = ("cudnn", "xlstm", "flashrnn"),
) -> str:
    """Measures every provider at every shape and writes ``out``; returns the markdown."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"kernels bench --op slstm --device {device}: torch sees no CUDA device here")
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    report = KernelReport(
        title="sLSTM kernels on the GPU: ours (CUDA) vs FlashRNN, the official xlstm, cuDNN and the torch loop",
        command=command,
        device=dev,
        out=out,
        baselines=("xlstm", "flashrnn"),
        notes=[
            f"inputs {str(dtype).removeprefix('torch.')} (gate pre-activations (B,T,4,H,D), R (H,D,4,D) scaled by"
            " 1/sqrt(D), b), states fp32; no initial state; the backward of h",
            "CUDA builds (ours, xlstm, FlashRNN) happen before timing and are not counted",
            "ours: the fused kernel (one block per head and 16 batch rows, R resident) covers head dims 16..128;"
            " the multiblock kernel (each head's gate columns over D/32 blocks that meet at a barrier every step)"
            " covers 160..256 and runs beside the fused one at head dim "
            + ", ".join(str(d) for d in MULTIBLOCK_BESIDE_FUSED),
        ],
    )
    shapes = QUICK_SHAPES if quick else SHAPES
    bar = tqdm(shapes, desc="slstm bench", unit="shape")
    for B, T, D, H in bar:
        label = f"B{B} T{T} D{D} H{H}"
        g = torch.Generator(device=dev).manual_seed(0)
        gates_x = torch.randn(B, T, 4, H, D, generator=g, device=dev).to(dtype)
        R = (torch.randn(H, D, 4, D, generator=g, device=dev) / D**0.5).to(dtype)
        b = torch.randn(4, H, D, generator=g, device=dev).to(dtype)
        on_cuda = dev.type == "cuda"
        providers: list[tuple[str, Callable[[], Run] | None, str]] = [
            (_ours_label(D), _ours_kernel(D, gates_x, R, b) if on_cuda else None, "needs CUDA"),
        ]
        if D in MULTIBLOCK_BESIDE_FUSED:
            make = partial(_ours_variant, "multiblock", gates_x, R, b) if on_cuda else None
            providers.append(("ours cuda (multiblock)", make, "needs CUDA"))
        providers.append(("torch reference loop", partial(_ours, "torch", gates_x, R, b), ""))
        if "cudnn" in baselines:
            providers.append(("nn.LSTM hidden 768 (cuDNN)", partial(_cudnn_lstm, B, T, dev, dtype), ""))
        for name, label_, make in (
            ("xlstm", "official xlstm sLSTM cuda", partial(_official_xlstm, B, T, D, H, dev)),
            ("flashrnn", "flashrnn cuda_fused", partial(_flashrnn, gates_x, R, b)),
        ):
            if name in baselines:
                ok = importlib.util.find_spec(name) is not None and dev.type == "cuda"
                providers.append((label_, make if ok else None, "not installed or no CUDA"))
        for name, make, why in providers:
            bar.set_postfix_str(name)
            if make is None:
                results = (Measurement(error=why), Measurement(error=why))
            else:
                try:
                    results = measure_passes(make(), dev)
                except Exception as err:  # noqa: BLE001 - a baseline that cannot build must not end the run
                    msg = f"{type(err).__name__}: {str(err).strip()[:120]}"
                    results = (Measurement(error=msg), Measurement(error=msg))
            report.add_passes(label, name, *results)
            report.write(complete=False)  # a provider that hangs or crashes the process leaves the rows before it
    text = report.write(complete=True, extra=_summary(report))
    if track:
        report.log_to_mlflow("slstm_gpu", {"device": device, "quick": quick, "baselines": list(baselines)})
    return text


def _summary(report: KernelReport) -> list[str]:
    lines = ["", "## Speed-ups (other's time / ours; above 1: ours faster)", ""]
    others = ("torch reference loop", "flashrnn cuda_fused", "official xlstm sLSTM cuda", "nn.LSTM hidden 768 (cuDNN)")
    for ours in ("ours cuda (fused)", "ours cuda (multiblock)"):
        for other in (*others, *(("ours cuda (fused)",) if ours != "ours cuda (fused)" else ())):
            for passes in ("fwd", "fwd+bwd"):
                ratios = report.speedups(ours, other, passes)
                if ratios:
                    cells = "; ".join(f"{shape}: {r:.2f}x" for shape, r in ratios.items())
                    lines.append(f"- {ours} vs {other}, {passes}: {cells}")
    return lines
