"""Measurement helpers for the benchmarks: median wall-clock time with warm-up, and peak memory.

Time: :func:`median_time` runs a callable a few times for warm-up, then repeats it (at least ``min_repeats``
times, more while the total stays under ``min_total_s``) and reports the median of the per-call wall-clock
times (``time.perf_counter``). :func:`per_call_times` times every call of a short callable one by one (for
per-step latencies, where the median over hundreds of single calls is the figure of interest).

Peak memory on a CPU: torch keeps no allocator statistics for CPU tensors, so memory is read from the
operating system. :func:`measure_peak_memory` records the resident set size (``VmRSS``) just before the
measured call, resets the kernel's high-water mark (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0) and
reads the high-water mark ``VmHWM`` after the call: peak minus baseline is the extra resident memory the call
needed at its peak. Where the high-water mark cannot be reset, ``getrusage``'s ``ru_maxrss`` is used instead
and the method says so. Memory that an allocator keeps after an earlier call is reused without raising the
resident size, so a sound figure needs the call to be the first big one in its process:
:func:`run_worker` runs a function in a fresh Python subprocess for exactly that.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "MemoryResult",
    "Timing",
    "WorkerError",
    "measure_peak_memory",
    "median_time",
    "per_call_times",
    "run_worker",
]

_RESULT_MARKER = "@@xlstm_seq_worker_result@@ "


@dataclass(frozen=True)
class Timing:
    """Wall-clock times of repeated calls, in seconds."""

    median_s: float
    min_s: float
    max_s: float
    repeats: int
    warmup: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def median_time(
    fn: Callable[[], Any],
    *,
    warmup: int = 1,
    min_repeats: int = 3,
    max_repeats: int = 50,
    min_total_s: float = 1.0,
) -> Timing:
    """Median wall-clock time of ``fn()`` after ``warmup`` untimed calls.

    Args:
        fn: The call to time (it must do all of its work before returning; CPU only, no device sync).
        warmup: Untimed calls first (lazy initialisation, allocator warm-up). Default 1.
        min_repeats: At least this many timed calls. Default 3.
        max_repeats: At most this many timed calls. Default 50.
        min_total_s: Keep repeating (up to ``max_repeats``) until the timed calls add up to this. Default 1.0.

    Returns:
        A :class:`Timing` with the median, min and max over the timed calls.
    """
    if min_repeats < 1 or max_repeats < min_repeats:
        raise ValueError(f"need 1 <= min_repeats <= max_repeats, got {min_repeats}, {max_repeats}")
    for _ in range(warmup):
        fn()
    times: list[float] = []
    while len(times) < min_repeats or (len(times) < max_repeats and sum(times) < min_total_s):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return Timing(statistics.median(times), min(times), max(times), len(times), warmup)


def per_call_times(fn: Callable[[], Any], calls: int, *, warmup: int = 20) -> list[float]:
    """Wall-clock seconds of each of ``calls`` calls of ``fn()``, timed one by one after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


# ----------------------------------------------------------------------------------------------- memory


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            match = re.search(rf"^{field}:\s+(\d+)\s+kB", fh.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_peak_rss() -> bool:
    """Resets this process's resident-set high-water mark (VmHWM) to the current RSS; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def _ru_maxrss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


@dataclass(frozen=True)
class MemoryResult:
    """Resident memory around one call, in bytes; ``peak_delta_bytes`` is the figure to report."""

    peak_delta_bytes: int
    baseline_bytes: int
    peak_bytes: int
    method: str

    def to_dict(self) -> dict[str, int | str]:
        return asdict(self)


def measure_peak_memory(fn: Callable[[], Any]) -> MemoryResult:
    """Peak resident memory of ``fn()`` above the resident size just before it (see the module docstring).

    Call it in a fresh process (:func:`run_worker`) with ``fn`` the first large call there: memory an allocator
    kept from an earlier call would be reused without showing up in the resident size.
    """
    gc.collect()
    baseline_kib = _status_kib("VmRSS")
    if baseline_kib is not None and _reset_peak_rss():
        fn()
        peak_kib = _status_kib("VmHWM") or baseline_kib
        method = "VmHWM after the call (high-water mark reset via /proc/self/clear_refs) minus VmRSS before it"
        baseline, peak = baseline_kib * 1024, peak_kib * 1024
    else:
        # ru_maxrss cannot be reset: the delta is only meaningful when the process never peaked above its
        # current size before, which holds for a fresh worker that has only imported its modules.
        baseline = max(_ru_maxrss_bytes(), (baseline_kib or 0) * 1024)
        fn()
        peak = _ru_maxrss_bytes()
        method = "getrusage ru_maxrss after the call minus max(ru_maxrss, RSS) before it"
    return MemoryResult(max(0, peak - baseline), baseline, peak, method)


# ----------------------------------------------------------------------------------------------- worker


class WorkerError(RuntimeError):
    """A worker subprocess failed, was killed (``returncode`` < 0, e.g. out of memory) or timed out."""

    def __init__(self, message: str, *, returncode: int | None = None, timed_out: bool = False):
        super().__init__(message)
        self.returncode = returncode
        self.timed_out = timed_out


def run_worker(target: str, kwargs: Mapping[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
    """Runs ``module:function(**kwargs)`` in a fresh Python subprocess and returns its (JSON-able) dict result.

    Args:
        target: ``"package.module:function"``; the function takes JSON-able keyword arguments and returns a
            JSON-able dict.
        kwargs: The keyword arguments.
        timeout: Seconds before the worker is killed; None waits forever.

    Raises:
        WorkerError: the worker raised, died (killed by a signal, e.g. the out-of-memory killer) or timed out.
    """
    payload = json.dumps({"target": target, "kwargs": dict(kwargs)})
    code = "from xlstm_seq_bench.kernels.timing import _worker_main; _worker_main()"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], input=payload, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as err:
        raise WorkerError(f"{target} timed out after {timeout:.0f} s", timed_out=True) from err
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_RESULT_MARKER) and proc.returncode == 0:
            return json.loads(line[len(_RESULT_MARKER) :])
    if proc.returncode < 0:
        reason = f"killed by signal {-proc.returncode}" + (" (out of memory?)" if proc.returncode == -9 else "")
    else:
        reason = f"exit status {proc.returncode}"
    tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
    raise WorkerError(f"{target} failed: {reason}\n{tail}", returncode=proc.returncode)


def _worker_main() -> None:
    """Entry point of a :func:`run_worker` subprocess: reads the call from stdin, prints the marked result."""
    request = json.loads(sys.stdin.read())
    module, _, name = request["target"].partition(":")
    fn = getattr(importlib.import_module(module), name)
    result = fn(**request["kwargs"])
    sys.stdout.write(_RESULT_MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown (torch thread pools); the result is out
