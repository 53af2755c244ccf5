"""``xlstm-seq kernels bench --op mlstm``: the Triton chunkwise mLSTM against TFLA, the torch reference and SDPA.

Shapes: TFLA's (bf16, B*T = 65,536 tokens, 16 heads, DK 128, DV 256) at T in 2,048 / 8,192 / 32,768 /
65,536, and the xLSTM-7B head shape (8 heads, DK 256, DV 512) at T = 8,192. Providers, all in one process on the
same inputs:

* ours: ``backend="triton"`` at each chunk size in ``chunk_sizes`` (exponential input gate), and with the sigmoid
  input gate at the default chunk size;
* the torch chunkwise reference (our ``backend="torch"``), the oracle the kernels are tested against;
* NX-AI's mlstm_kernels (pip ``mlstm-kernels``): ``chunkwise--triton_xl_chunk`` (TFLA), its sigmoid-gate twin
  ``triton_xl_chunk_siging`` and ``chunkwise--triton_limit_chunk``; rows say "not installed" without it;
* torch SDPA (flash attention, causal) with the same tokens and 32 heads of 128.

Forward and forward+backward (the backward of ``h``). ``--device cpu`` runs the same harness at ``--quick`` sizes
(the reference and, under ``TRITON_INTERPRET=1``, the Triton kernels): a smoke run, not a reported number.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from xlstm_seq_bench.kernels.device_timing import Measurement, measure_passes
from xlstm_seq_bench.kernels.kernel_report import KernelReport

__all__ = ["MLSTMShape", "run_mlstm_benchmark"]

DEFAULT_OUT = Path("benchmarks/kernels/mlstm_gpu.md")
#: Provider groups by key (``--providers``): a baseline whose compiler crashes the process can run in its own.
PROVIDER_KEYS = ("ours", "reference", "sdpa", "xl_chunk_siging", "limit_chunk", "xl_chunk")


@dataclass(frozen=True)
class MLSTMShape:
    B: int
    H: int
    T: int
    DK: int
    DV: int
    name: str = ""

    def label(self) -> str:
        prefix = f"{self.name} " if self.name else ""
        return f"{prefix}B{self.B} H{self.H} T{self.T} DK{self.DK} DV{self.DV}"


TOKENS = 65_536
# T = 8,192 first: the target shape is measured even if the run is stopped part-way.
TFLA_SHAPES = [MLSTMShape(TOKENS // T, 16, T, 128, 256, "TFLA") for T in (8192, 2048, 32768, 65536)]
XLSTM_7B_SHAPE = MLSTMShape(TOKENS // 8192, 8, 8192, 256, 512, "xLSTM-7B")
QUICK_SHAPES = [MLSTMShape(2, 2, 100, 16, 32, "quick")]


def _inputs(shape: MLSTMShape, device: torch.device, dtype: torch.dtype, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator(device=device).manual_seed(seed)

    def randn(*size: int) -> torch.Tensor:
        return torch.randn(*size, generator=g, device=device, dtype=torch.float32).to(dtype)

    B, H, T, DK, DV = shape.B, shape.H, shape.T, shape.DK, shape.DV
    return {
        "q": randn(B, H, T, DK),
        "k": randn(B, H, T, DK),
        "v": randn(B, H, T, DV),
        "i": randn(B, H, T),
        "f": randn(B, H, T) + 3.0,  # forget gates mostly open, as after the paper's initialisation
    }


Provider = Callable[[dict[str, torch.Tensor]], torch.Tensor]


def _ours(chunk_size: int, gate: str) -> Provider:
    from xlstm_seq.kernels.mlstm import mlstm

    def run(x: dict[str, torch.Tensor]) -> torch.Tensor:
        h, _ = mlstm(x["q"], x["k"], x["v"], x["i"], x["f"], backend="triton", chunk_size=chunk_size, input_gate=gate)
        return h

    return run


def _reference(chunk_size: int) -> Provider:
    from xlstm_seq.kernels.mlstm import mlstm

    def run(x: dict[str, torch.Tensor]) -> torch.Tensor:
        return mlstm(x["q"], x["k"], x["v"], x["i"], x["f"], backend="torch", chunk_size=chunk_size)[0]

    return run


def _mlstm_kernels(name: str, chunk_size: int | None) -> Provider:
    from mlstm_kernels.torch import get_mlstm_kernel

    kernel = get_mlstm_kernel(f"chunkwise--{name}")
    extra = {} if chunk_size is None else {"chunk_size": chunk_size}

    def run(x: dict[str, torch.Tensor]) -> torch.Tensor:
        return kernel(x["q"], x["k"], x["v"], x["i"], x["f"], autocast_kernel_dtype=x["q"].dtype, **extra)

    return run


def _sdpa(shape: MLSTMShape) -> tuple[Provider, Callable[[torch.Tensor, torch.dtype], dict]]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    heads, dim = 32, 128
    seq = shape.T

    def make(device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        batch = shape.B * shape.T // seq
        g = torch.Generator(device=device).manual_seed(0)
        return {n: torch.randn(batch, heads, seq, dim, generator=g, device=device).to(dtype) for n in "qkv"}

    def run(x: dict[str, torch.Tensor]) -> torch.Tensor:
        backend = SDPBackend.FLASH_ATTENTION if x["q"].is_cuda else SDPBackend.MATH
        with sdpa_kernel(backend):
            return torch.nn.functional.scaled_dot_product_attention(x["q"], x["k"], x["v"], is_causal=True)

    return run, make


def _measure_provider(
    run: Provider, inputs: dict[str, torch.Tensor], device: torch.device
) -> tuple[Measurement, Measurement]:
    leaves = {n: t.detach().clone().requires_grad_() for n, t in inputs.items()}

    def clear_grads() -> None:
        for t in leaves.values():
            t.grad = None

    return measure_passes(lambda grad: run(leaves if grad else inputs), device, clear_grads)


def run_mlstm_benchmark(
    out: Path = DEFAULT_OUT,
    *,
    device: str = "cuda",
    quick: bool = False,
    chunk_sizes: tuple[int, ...] = (64, 128),
    dtype: torch.dtype = torch.bfloat16,
    command: str = "xlstm-seq kernels bench --op mlstm --device cuda",
    track: bool = True,
    reference_max_T: int = 8192,
    providers: tuple[str, ...] = PROVIDER_KEYS,
) -> str:
    """Measures every provider at every shape and writes ``out``; returns the markdown."""
    unknown = sorted(set(providers) - set(PROVIDER_KEYS))
    if unknown:
        raise ValueError(f"kernels bench --op mlstm: unknown provider(s) {unknown}; valid: {','.join(PROVIDER_KEYS)}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"kernels bench --op mlstm --device {device}: torch sees no CUDA device here")
    shapes = QUICK_SHAPES if quick else [TFLA_SHAPES[0], XLSTM_7B_SHAPE, *TFLA_SHAPES[1:]]
    if quick and dev.type == "cpu":
        dtype = torch.float32  # the interpreter's bf16 dot is not exact; the smoke run checks the harness
    have_mk = importlib.util.find_spec("mlstm_kernels") is not None and dev.type == "cuda"
    report = KernelReport(
        title="mLSTM kernels on the GPU: ours (Triton) vs TFLA (mlstm_kernels), the torch reference and SDPA",
        command=command,
        device=dev,
        out=out,
        baselines=("mlstm_kernels",),
        notes=[
            f"inputs {str(dtype).removeprefix('torch.')}, states and accumulation fp32; no initial state, no resets;"
            " forget-gate pre-activations N(3, 1), others N(0, 1)",
            f"ours: backend triton at chunk sizes {list(chunk_sizes)} (exp input gate) and sigmoid at"
            f" {chunk_sizes[0]}; mlstm_kernels at its default chunk size (128)",
            "SDPA: flash attention, causal, the same tokens as 32 heads of 128",
        ],
    )
    bar = tqdm(shapes, desc="mlstm bench", unit="shape")
    for shape in bar:
        inputs = _inputs(shape, dev, dtype)
        chosen: list[tuple[str, Provider | None, str]] = []
        if "ours" in providers:
            for c in chunk_sizes:
                chosen.append((f"ours triton exp L{c}", _ours(c, "exp"), ""))
            chosen.append((f"ours triton sigmoid L{chunk_sizes[0]}", _ours(chunk_sizes[0], "sigmoid"), ""))
        if "reference" in providers and reference_max_T >= shape.T:  # its Python loop over chunks is slow to time
            chosen.append(("torch chunkwise reference L64", _reference(64), ""))
        for key, label in (
            ("xl_chunk_siging", "mlstm_kernels triton_xl_chunk_siging (TFLA) sigmoid"),
            ("limit_chunk", "mlstm_kernels triton_limit_chunk exp"),
            ("xl_chunk", "mlstm_kernels triton_xl_chunk (TFLA) exp"),
        ):
            if key in providers:
                chosen.append((label, _mlstm_kernels(f"triton_{key}", None) if have_mk else None, "not installed"))
        for label, run, why in chosen:
            bar.set_postfix_str(label)
            if run is None:
                report.add_passes(shape.label(), label, Measurement(error=why), Measurement(error=why))
                continue
            report.add_passes(shape.label(), label, *_measure_provider(run, inputs, dev))
            report.write(complete=False)  # a provider that crashes the process leaves the rows before it
        del inputs
        if "sdpa" in providers:
            sdpa, make = _sdpa(shape)
            label = "torch SDPA flash (32 heads x 128, causal)"
            report.add_passes(shape.label(), label, *_measure_provider(sdpa, make(dev, dtype), dev))
            report.write(complete=False)
    text = report.write(complete=True, extra=_summary(report, chunk_sizes))
    if track:
        params = {"device": device, "quick": quick, "chunk_sizes": list(chunk_sizes), "providers": list(providers)}
        report.log_to_mlflow("mlstm_gpu", params)
    return text


def _summary(report: KernelReport, chunk_sizes: tuple[int, ...]) -> list[str]:
    lines = ["", "## Speed-ups, forward+backward (other's time / ours; above 1: ours faster)", ""]
    for c in chunk_sizes:
        ours = f"ours triton exp L{c}"
        for other in ("mlstm_kernels triton_xl_chunk (TFLA) exp", "torch chunkwise reference L64"):
            ratios = report.speedups(ours, other)
            if ratios:
                cells = "; ".join(f"{shape}: {r:.2f}x" for shape, r in ratios.items())
                lines.append(f"- {ours} vs {other}: {cells}")
    tfla_sigmoid = "mlstm_kernels triton_xl_chunk_siging (TFLA) sigmoid"
    sig = report.speedups(f"ours triton sigmoid L{chunk_sizes[0]}", tfla_sigmoid)
    if sig:
        cells = "; ".join(f"{shape}: {r:.2f}x" for shape, r in sig.items())
        lines.append(f"- ours triton sigmoid L{chunk_sizes[0]} vs TFLA sigmoid: {cells}")
    return lines
