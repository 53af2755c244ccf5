"""Launch-setting sweep of the Triton mLSTM kernels, for a lent GPU (see NOTES.md beside this file).

For each setting (state tile, warps, stages; chunk tile, warps, stages; state dots in fp32 or on tensor cores;
chunk size) it times, at TFLA's T = 8,192 shape in bf16: the inter-chunk state kernel alone, the intra-chunk output
kernel alone, the whole forward and forward+backward; and it checks accuracy at a smaller shape against the float64
reference (relative error of h and of every gradient, next to the bf16 reference's own error). Prints a markdown
table and writes it to --out.

    python3 tools/gpu/mlstm_sweep.py --out $OUT/mlstm_gpu_sweep.md      (CUDA)
    python3 tools/gpu/mlstm_sweep.py --variants bwd --out ...           (CUDA: the backward layouts only)
    python3 tools/gpu/mlstm_sweep.py --dry-run                          (any machine: lists the variants)
    TRITON_INTERPRET=1 python3 tools/gpu/mlstm_sweep.py --quick         (CPU: checks the script runs)

The backward's layout (``chunkwise_bwd.BWD_LAYOUT``: the split dq/dk/dv kernels or the fused dk+dv kernel) and the
fused kernel's tiles are settings like the others; the per-kernel profile opens the page once per layout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

import torch

#: The settings a variant may change (launch settings and switches of chunkwise_fwd and chunkwise_bwd, by module),
#: and the chunk size ("chunk").
SETTINGS = {
    "chunkwise_fwd": (
        "STATE_BLOCK",
        "STATE_WARPS",
        "STATE_STAGES",
        "STATE_BLOCK_IEEE",
        "STATE_STAGES_IEEE",
        "CHUNK_BLOCK",
        "CHUNK_WARPS",
        "CHUNK_STAGES",
        "STATE_DOT_SPLITS",
        "GRAD_DOT_FP32",
    ),
    "chunkwise_bwd": (
        "BWD_LAYOUT",
        "FUSED_BLOCK_K",
        "FUSED_BLOCK_Q",
        "FUSED_STATE_BLOCK",
        "FUSED_WARPS",
        "FUSED_STAGES",
        "FUSED_SPLITS",
        "FUSED_DQ_BLOCK",
        "FUSED_DQ_WARPS",
    ),
}
# Each entry changes the committed settings. The first sweep (H200, 2026-12-04;
# benchmarks/archive/2026-12-04_kernels_mlstm_gpu_sweep_1.md) chose tensor-core state dots with 64-wide two-stage
# tiles, 4-warp chunk kernels and fp32 dS and P in the backward; the second (..._sweep_2.md) one-stage chunk kernels;
# the tests then found one bf16 term per state product too coarse for C (the third sweep, at the committed
# defaults: benchmarks/kernels/mlstm_gpu_sweep.md).
VARIANTS = [
    {},
    {"STATE_DOT_SPLITS": 2},
    {"STATE_DOT_SPLITS": 1},
    {"STATE_DOT_SPLITS": 0},  # fp32 IEEE state dots (32-wide single-stage tiles), the first GPU run's choice
    {"STATE_BLOCK": 128, "STATE_WARPS": 8},
    {"STATE_STAGES": 3},
    {"CHUNK_STAGES": 2},
    # Compiled for sm_90 by triton 3.7.1 (bf16, DK 128, DV 256, chunk 64, one stage), every chunk kernel spills at 4
    # warps (520-880 bytes of stack); at 8 the backward's use none and the output kernel's 40 bytes (the first sweep
    # timed 8 warps with two stages only).
    {"CHUNK_WARPS": 8},
    {"chunk": 128},
]
_FUSED = {"BWD_LAYOUT": "fused_dkdv"}
#: The backward's layouts: the fused dk+dv kernel (committed tiles: 32 key rows x 32 query rows, 8 warps, the sizes
#: that compile without stack for sm_90 at DK 128, DV 256; in two column parts 64 x 32 compiles without stack too)
#: and its tiles; the first entry of VARIANTS is the split layout at the committed settings.
BWD_VARIANTS = [
    _FUSED,
    {**_FUSED, "FUSED_BLOCK_Q": 64},
    {**_FUSED, "FUSED_BLOCK_K": 64},
    {**_FUSED, "FUSED_BLOCK_K": 64, "FUSED_BLOCK_Q": 64},
    {**_FUSED, "FUSED_BLOCK_K": 16, "FUSED_BLOCK_Q": 64, "FUSED_WARPS": 4},
    {**_FUSED, "FUSED_WARPS": 4},
    {**_FUSED, "FUSED_STAGES": 2},
    {**_FUSED, "FUSED_STATE_BLOCK": 64},
    {**_FUSED, "FUSED_SPLITS": 2},
    {**_FUSED, "FUSED_SPLITS": 2, "FUSED_BLOCK_K": 64},
    {**_FUSED, "FUSED_SPLITS": 2, "FUSED_BLOCK_Q": 64},
    {**_FUSED, "FUSED_DQ_WARPS": 8},
    {**_FUSED, "FUSED_DQ_BLOCK": 128, "FUSED_DQ_WARPS": 8},
    {**_FUSED, "chunk": 128},
]
#: The per-kernel profile is taken once per backward layout.
PROFILED = [{}, _FUSED]


def _variants(which: str, quick: bool) -> list[dict]:
    """The variants of --variants (all: the launch settings and the backward layouts; bwd: the committed settings,
    the split kernels with 8 warps and the backward layouts), or under --quick one of each code path."""
    if quick:
        return [{}, {"STATE_DOT_SPLITS": 1}, {"STATE_DOT_SPLITS": 0}, _FUSED]
    return [{}, {"CHUNK_WARPS": 8}, *BWD_VARIANTS] if which == "bwd" else [*VARIANTS, *BWD_VARIANTS]


def _modules() -> dict:
    from xlstm_seq.kernels.mlstm import chunkwise_bwd, chunkwise_fwd

    return {"chunkwise_fwd": chunkwise_fwd, "chunkwise_bwd": chunkwise_bwd}


def _committed() -> dict:
    """The committed value of every setting, by name (and "chunk": the default chunk size)."""
    from xlstm_seq.kernels.mlstm.naive import DEFAULT_CHUNK_SIZE

    modules = _modules()
    values = {name: getattr(modules[mod], name) for mod, names in SETTINGS.items() for name in names}
    return {**values, "chunk": DEFAULT_CHUNK_SIZE}


def _apply(setting: dict) -> int:
    """Sets every launch setting in ``setting`` (a full set, as _committed returns); returns its chunk size."""
    modules = _modules()
    for mod, names in SETTINGS.items():
        for name in names:
            setattr(modules[mod], name, setting[name])
    return setting["chunk"]


def _label(change: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in change.items()) or "baseline (the committed settings)"


def _check_variants(variants: list[dict], committed: dict) -> None:
    """Every variant names known settings, and every layout is one the backward knows (before any kernel runs)."""
    from xlstm_seq.kernels.mlstm.chunkwise_bwd import BWD_LAYOUTS

    for change in variants:
        unknown = sorted(set(change) - set(committed))
        if unknown:
            raise ValueError(f"variant {change} names unknown settings {unknown}")
        if change.get("BWD_LAYOUT", committed["BWD_LAYOUT"]) not in BWD_LAYOUTS:
            raise ValueError(f"variant {change}: BWD_LAYOUT must be one of {BWD_LAYOUTS}")


def _inputs(B, H, T, DK, DV, device, dtype, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = {n: torch.randn(B, H, T, d, generator=g) for n, d in (("q", DK), ("k", DK), ("v", DV))}
    x["i"] = torch.randn(B, H, T, generator=g)
    x["f"] = torch.randn(B, H, T, generator=g) + 3.0
    return {n: t.to(device, dtype) for n, t in x.items()}


def _timer(device):
    if device.type == "cuda":
        import triton.testing

        return lambda fn: triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")
    from xlstm_seq_bench.kernels.timing import median_time

    return lambda fn: median_time(fn, warmup=1, min_repeats=2, min_total_s=0.0).median_s * 1e3


_REFERENCE_CACHE: dict = {}


def _accuracy(device, dtype, chunk, shape):
    """The worst, over h and the gradients, of our error over the bf16 reference's error against float64: as norms
    of the difference, and as max-abs differences (the tests' criterion, tests/kernels/tolerances.py)."""
    from xlstm_seq.kernels.mlstm import mlstm
    from xlstm_seq.kernels.mlstm.naive import mlstm_chunkwise

    x = _inputs(*shape, device="cpu", dtype=torch.float32, seed=1)
    x = {n: t.to(dtype).double() for n, t in x.items()}
    g = torch.Generator().manual_seed(2)
    dh = torch.randn(*shape[:3], shape[4], generator=g, dtype=torch.float64)

    def run(fn, dt_, dev):
        leaves = {n: t.detach().to(dev, dt_, copy=True).requires_grad_() for n, t in x.items()}
        h = fn(*(leaves[n] for n in "qkvif"))[0]
        (h.double() * dh.to(dev)).sum().backward()
        return {"h": h.detach().cpu().double(), **{f"d{n}": t.grad.cpu().double() for n, t in leaves.items()}}

    key = (chunk, shape, dtype, device)
    if key not in _REFERENCE_CACHE:  # the references do not depend on the launch settings: once per chunk size
        exact = run(lambda *a: mlstm_chunkwise(*a, chunk_size=chunk), torch.float64, device)
        low = run(lambda *a: mlstm_chunkwise(*a, chunk_size=chunk), dtype, device)
        _REFERENCE_CACHE[key] = exact, low
    exact, low = _REFERENCE_CACHE[key]
    ours = run(lambda *a: mlstm(*a, backend="triton", chunk_size=chunk), dtype, device)
    norm_ratios, max_ratios = {}, {}
    for name, ref in exact.items():
        if not torch.isfinite(ours[name]).all():
            norm_ratios[name] = max_ratios[name] = float("inf")
            continue
        norm_ratios[name] = ((ours[name] - ref).norm() / (low[name] - ref).norm().clamp_min(1e-12)).item()
        max_ratios[name] = ((ours[name] - ref).abs().max() / (low[name] - ref).abs().max().clamp_min(1e-12)).item()
    worst_norm = max(norm_ratios, key=norm_ratios.get)
    worst_max = max(max_ratios, key=max_ratios.get)
    return f"{norm_ratios[worst_norm]:.2f} ({worst_norm})", f"{max_ratios[worst_max]:.2f} ({worst_max})"


def _forward_backward(leaves, dh, chunk):
    """One forward+backward of the Triton op on the leaves (gradients dropped after, so calls do not accumulate)."""
    from xlstm_seq.kernels.mlstm import mlstm

    def run():
        h = mlstm(*(leaves[n] for n in "qkvif"), backend="triton", chunk_size=chunk)[0]
        h.backward(dh)
        for t in leaves.values():
            t.grad = None

    return run


def _kernel_times(x, leaves, dh, chunk, device, time_ms) -> list[float]:
    """ms of the state kernel alone, the output kernel alone, the forward and the forward+backward."""
    from xlstm_seq.kernels.mlstm import chunkwise, chunkwise_fwd, mlstm

    g = chunkwise._gate_prep(x["i"], x["f"], None, "exp", chunk)
    B, H, _, DK = x["q"].shape
    DV = x["v"].shape[-1]
    zeros = (torch.zeros(B, H, DK, DV, device=device), torch.zeros(B, H, DK, device=device))
    zeros += (torch.zeros(B, H, device=device),)

    def state():
        return chunkwise_fwd.launch_fwd_state(x["k"], x["v"], g["cs"], g["logi"], g["seg"], g["mloc"], *zeros, chunk)

    C_all, n_all, m_all = state()
    gates = (g["cs"], g["logi"], g["logim"], g["seg"])

    def out():
        block_l = chunkwise._block_l(chunk)
        return chunkwise_fwd.launch_fwd_out(x["q"], x["k"], x["v"], *gates, C_all, n_all, m_all, chunk, block_l)

    def forward():
        with torch.no_grad():
            mlstm(*(x[n] for n in "qkvif"), backend="triton", chunk_size=chunk)

    return [time_ms(fn) for fn in (state, out, forward, _forward_backward(leaves, dh, chunk))]


def _profile_lines(x, leaves, dh, chunk, device, label: str, top: int = 12) -> list[str]:
    """Per-kernel table of one forward+backward under the settings in force (torch.profiler; device time on CUDA,
    CPU time under the interpreter): where the time goes, the backward's kernels included."""
    from torch.profiler import ProfilerActivity, profile

    forward_backward = _forward_backward(leaves, dh, chunk)
    forward_backward()  # compiled and warm before it is profiled
    cuda = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
        forward_backward()
        if cuda:
            torch.cuda.synchronize()
    key = "device_time_total" if cuda else "cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key), reverse=True)
    events = [e for e in events if getattr(e, key) > 0 and not e.key.startswith("ProfilerStep")][:top]
    lines = [f"| kernel (one forward+backward, {label}) | calls | ms |", "|---|---|---|"]
    lines += [f"| `{e.key[:90]}` | {e.count} | {getattr(e, key) / 1e3:.2f} |" for e in events]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes (a smoke run of the script)")
    parser.add_argument(
        "--variants", choices=("all", "bwd"), default="all", help="all settings, or the backward layouts only"
    )
    parser.add_argument("--dry-run", action="store_true", help="list the variants and check their names; run nothing")
    parser.add_argument("--out", type=Path, help="markdown file to write")
    args = parser.parse_args()

    baseline = _committed()
    variants = _variants(args.variants, args.quick)
    _check_variants(variants + PROFILED, baseline)
    if args.dry_run:
        print(f"{len(variants)} variants (--variants {args.variants}{' --quick' if args.quick else ''}):")
        for change in variants:
            print(f"- {_label(change)}")
        print("profiled: " + "; ".join(_label(change) for change in PROFILED))
        return 0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float16  # the interpreter's bf16 dot is wrong
    shape = (1, 2, 100, 32, 32) if args.quick else (8, 16, 8192, 128, 256)
    acc_shape = (1, 2, 70, 16, 32) if args.quick else (2, 4, 1000, 128, 256)
    time_ms = _timer(device)
    x = _inputs(*shape, device=device, dtype=dtype)
    leaves = {n: t.detach().clone().requires_grad_() for n, t in x.items()}
    dh = torch.randn(*shape[:3], shape[4], device=device, dtype=dtype)
    lines = [
        "| variant | state kernel ms | output kernel ms | fwd ms | fwd+bwd ms | worst error / bf16 reference error,"
        " norm | the same, max-abs |",
        "|---|---|---|---|---|---|---|",
    ]
    profile_lines = []
    for change in PROFILED:
        chunk = _apply({**baseline, **change})
        profile_lines += _profile_lines(x, leaves, dh, chunk, device, _label(change)) + [""]
    _apply(baseline)
    print("\n".join(profile_lines), flush=True)
    for change in variants:
        chunk = _apply({**baseline, **change})
        try:
            cells = _kernel_times(x, leaves, dh, chunk, device, time_ms)
            row = [f"{c:.2f}" for c in cells] + list(_accuracy(device, dtype, chunk, acc_shape))
        except Exception as err:  # noqa: BLE001 - a setting that does not compile or fit is a row, not the end
            row = [f"failed: {type(err).__name__}: {str(err).strip()[:100]}"] + ["-"] * 5
        lines.append(f"| {_label(change)} | " + " | ".join(row) + " |")
        print(lines[-1], flush=True)
    _apply(baseline)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (Triton interpreter)"
    header = [
        "# Triton mLSTM launch-setting sweep",
        "",
        f"Written by `python3 tools/gpu/mlstm_sweep.py{' --quick' if args.quick else ''}"
        f"{' --variants bwd' if args.variants == 'bwd' else ''}`.",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; git {os.environ.get('XLSTM_SEQ_REVISION', '?')};"
        f" device: {name}; torch {torch.__version__}",
        f"- timing shape B, H, T, DK, DV = {shape} in {str(dtype).removeprefix('torch.')}, exponential gate, no state;"
        f" accuracy shape {acc_shape} against float64 (h and every gradient; 2.0 is the tests' bound)",
        "",
    ]
    text = "\n".join(header + profile_lines + lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
