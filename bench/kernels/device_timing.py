"""Timing and peak memory of one callable on the device its tensors live on, for the kernel benchmarks.

CUDA: the median of ``triton.testing.do_bench`` (device events around each call, warm-up first, the L2 cache
flushed between calls) and the peak of torch's caching allocator above what was allocated before the call. CPU
(the harness run without a GPU): the median wall-clock time of :func:`~xlstm_seq_bench.kernels.timing.median_time`;
peak memory is not measured there (the process-level figure needs a fresh process per call; see
``core_cpu``). A call that fails (out of memory, a kernel that does not cover the shape) becomes an error text in
the row instead of ending the benchmark.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from xlstm_seq_bench.kernels.timing import median_time

__all__ = ["Measurement", "measure", "measure_passes"]


@dataclass(frozen=True)
class Measurement:
    """Median time (ms) and peak extra memory (MiB, CUDA only) of one call, or why it could not be measured."""

    median_ms: float | None = None
    peak_mib: float | None = None
    error: str | None = None

    def time_text(self) -> str:
        return f"{self.median_ms:.2f}" if self.median_ms is not None else f"failed: {self.error}"

    def memory_text(self) -> str:
        return f"{self.peak_mib:.0f}" if self.peak_mib is not None else "-"


def _short_error(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text[:120]}"


def measure(fn: Callable[[], Any], device: torch.device, *, warmup_ms: int = 25, rep_ms: int = 100) -> Measurement:
    """Median time of ``fn()`` on ``device`` and, on CUDA, its peak allocation above the memory held before it."""
    try:
        if device.type != "cuda":
            return Measurement(median_ms=median_time(fn, warmup=1, min_repeats=3, min_total_s=0.5).median_s * 1e3)
        import triton.testing

        fn()  # compile / autotune / build outside the timed region
        torch.cuda.synchronize(device)
        gc.collect()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        ms = triton.testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="median")
        return Measurement(median_ms=float(ms), peak_mib=peak)
    except Exception as err:  # noqa: BLE001 - one failing provider must not end the benchmark
        if device.type == "cuda":
            try:  # an out-of-memory error leaves the device usable; a sticky launch error would raise here again
                torch.cuda.synchronize(device)
                gc.collect()
                torch.cuda.empty_cache()
            except Exception:  # noqa: BLE001
                pass
        return Measurement(error=_short_error(err))


def measure_passes(
    run: Callable[[bool], torch.Tensor], device: torch.device, after_backward: Callable[[], None] | None = None
) -> tuple[Measurement, Measurement]:
    """The forward (``run(False)`` under no_grad) and the forward+backward (``run(True)``, then the backward of a
    fixed random cotangent of its output) of one provider; ``after_backward`` clears what the backward left."""

    def forward() -> None:
        with torch.no_grad():
            run(False)

    cotangent: list[torch.Tensor] = []

    def forward_backward() -> None:
        out = run(True)
        if not cotangent:
            cotangent.append(torch.randn_like(out))
        out.backward(cotangent[0])
        if after_backward is not None:
            after_backward()

    return measure(forward, device), measure(forward_backward, device)
