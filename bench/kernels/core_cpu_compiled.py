"""The compiled columns of the CPU core benchmark: ``xLSTMStack(compile=True)`` against eager and nn.LSTM.

Each stack is measured in two fresh subprocesses sharing one new inductor cache folder: the first starts with
an empty cache (the cold compile a new user pays), the second with the cache the first filled (the warm compile
of every later process). In each, the first ``step`` (B=1) and the first forward+backward (the training shape)
are timed as the compile times; then the step latency and the forward+backward time are measured as in the eager
part of the benchmark. The eager and nn.LSTM figures come from the same benchmark run (the main process).
"""

from __future__ import annotations

import os
import statistics
import tempfile
from typing import Any

from xlstm_seq_bench.kernels.timing import WorkerError, median_time, per_call_times, run_worker

__all__ = ["TARGETS", "compiled_metrics", "compiled_section", "compiled_stack_point", "measure_compiled"]

_WORKER = "xlstm_seq_bench.kernels.core_cpu_compiled:compiled_stack_point"

#: The speed targets the compiled path is held to (ratios to nn.LSTM from the same run; seconds).
TARGETS = {"step_ratio": 1.0, "fwd_bwd_ratio": 1.5, "cold_compile_s": 60.0, "warm_compile_s": 10.0}


def compiled_stack_point(
    slstm_at: list[int],
    embedding_dim: int,
    num_blocks: int,
    heads: int,
    train_batch: int,
    train_length: int,
    step_calls: int,
    step_warmup: int,
    min_total_s: float,
    threads: int,
    seed: int,
    cache_dir: str,
) -> dict[str, Any]:
    """Worker (fresh process): compile times and speed of one compiled stack; inductor caches in ``cache_dir``, and
    so does the C++ sLSTM (a cold run builds it too)."""
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache_dir  # read when inductor first looks for its cache
    os.environ["XLSTM_SEQ_CPU_KERNEL_DIR"] = os.path.join(cache_dir, "xlstm_seq_cpu_kernels")
    import time

    import torch
    from torch._dynamo.utils import counters

    from xlstm_seq import xLSTMConfig, xLSTMStack

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    config = xLSTMConfig(embedding_dim=embedding_dim, num_blocks=num_blocks, num_heads=heads, slstm_at=slstm_at)
    stack = xLSTMStack(config, compile=True).eval()
    x_t = torch.randn(1, embedding_dim)
    with torch.inference_mode():
        carry: list[Any] = [stack.init_state(1)]
        started = time.perf_counter()
        carry[0] = stack.step(x_t, carry[0])[1]
        step_compile_s = time.perf_counter() - started

        def step() -> None:
            carry[0] = stack.step(x_t, carry[0])[1]

        times = per_call_times(step, step_calls, warmup=step_warmup)
    stack.train()
    x = torch.randn(train_batch, train_length, embedding_dim)

    def forward_backward() -> None:
        stack.zero_grad(set_to_none=True)
        stack(x)[0].sum().backward()

    started = time.perf_counter()
    forward_backward()
    train_compile_s = time.perf_counter() - started
    train = median_time(forward_backward, warmup=1, max_repeats=20, min_total_s=min_total_s)
    paths = {name: stack.compiled_path(name) for name in ("step", "forward")}
    fallbacks = {name: path.fallback_reason for name, path in paths.items() if not path.is_compiled}
    if fallbacks:
        raise RuntimeError(f"the compiled paths fell back to eager: {fallbacks}")
    return {
        "step_compile_s": step_compile_s,
        "train_compile_s": train_compile_s,
        "step_median_s": statistics.median(times),
        "fwd_bwd_s": train.median_s,
        "graphs": int(counters["stats"]["unique_graphs"]),
        "fx_cache_hits": int(counters["inductor"]["fxgraph_cache_hit"]),
        "fx_cache_misses": int(counters["inductor"]["fxgraph_cache_miss"]),
    }


def measure_compiled(settings: Any, threads: int, progress: Any) -> list[dict[str, Any]]:
    """Cold and warm runs of each stack variant of ``settings`` (a ``BenchSettings``); one row per variant."""
    rows = []
    for slstm_at in settings.slstm_variants:
        kwargs = dict(
            slstm_at=list(slstm_at),
            embedding_dim=settings.embedding_dim,
            num_blocks=settings.num_blocks,
            heads=settings.stack_heads,
            train_batch=settings.train_batch,
            train_length=settings.train_length,
            step_calls=settings.step_calls,
            step_warmup=settings.step_warmup,
            min_total_s=settings.min_total_s,
            threads=threads,
            seed=settings.seed,
        )
        row: dict[str, Any] = {"slstm_at": list(slstm_at)}
        with tempfile.TemporaryDirectory(prefix="xlstm_seq_inductor_") as cache_dir:
            for run in ("cold", "warm"):
                progress.set_postfix_str(f"compiled stack slstm_at={list(slstm_at)}, {run} cache")
                try:
                    row[run] = run_worker(
                        _WORKER, {**kwargs, "cache_dir": cache_dir}, timeout=settings.worker_timeout_s
                    )
                except WorkerError as err:
                    row[run] = {"error": str(err).splitlines()[0][:160]}
                progress.update(1)
        rows.append(row)
    return rows


def _compile_s(run: dict[str, Any]) -> float | None:
    return None if "error" in run else run["step_compile_s"] + run["train_compile_s"]


def _verdict(value: float | None, target: float) -> str:
    if value is None:
        return "not measured"
    return "met" if value <= target else "missed"


def compiled_section(settings: Any, stack_rows: list[dict[str, Any]], compiled_rows: list[dict[str, Any]]) -> list:
    """The markdown lines of the compiled part: one table and the targets, ratios taken within this run."""
    s = settings
    lstm = next(r for r in stack_rows if r["kind"] == "lstm")
    eager = [r for r in stack_rows if r["kind"] == "stack"]
    lines = [
        "## Compiled stacks (`xLSTMStack(config, compile=True)`)",
        "",
        "The same stacks, step and forward+backward measured the same way, compiled by torch.compile (inductor's C++ "
        "code, built with the system compiler). Each stack runs in two fresh processes sharing one new inductor cache "
        "folder: *cold* starts with an empty cache, *warm* with the cache the cold process filled (what every later "
        "process pays). Compile time = first `step` (B=1) + first forward+backward "
        f"(B={s.train_batch}, T={s.train_length}) of the process. Latencies are the cold process's, after its "
        "compiles; eager and nn.LSTM come from the table above (same run).",
        "",
        "| model | step eager (ms) | step compiled (ms) | step nn.LSTM (ms) | fwd+bwd eager (ms) | fwd+bwd compiled "
        "(ms) | fwd+bwd nn.LSTM (ms) | compile cold: step + fwd+bwd (s) | compile warm (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for eager_row, row in zip(eager, compiled_rows, strict=True):
        cold, warm = row["cold"], row["warm"]
        if "error" in cold:
            lines.append(f"| {eager_row['name']} | failed: {cold['error']} | | | | | | | |")
            continue
        warm_text = f"{_compile_s(warm):.1f}" if "error" not in warm else f"failed: {warm['error']}"
        lines.append(
            f"| {eager_row['name']} | {eager_row['step_median_s'] * 1e3:.3f} | {cold['step_median_s'] * 1e3:.3f} "
            f"| {lstm['step_median_s'] * 1e3:.3f} | {eager_row['fwd_bwd_s'] * 1e3:.1f} | {cold['fwd_bwd_s'] * 1e3:.1f} "
            f"| {lstm['fwd_bwd_s'] * 1e3:.1f} | {cold['step_compile_s']:.1f} + {cold['train_compile_s']:.1f} "
            f"= {_compile_s(cold):.1f} | {warm_text} |"
        )
    lines += [
        "",
        "### Targets",
        "",
        f"Step latency at B=1 <= nn.LSTM's (ratio <= {TARGETS['step_ratio']:g}); forward+backward <= "
        f"{TARGETS['fwd_bwd_ratio']:g}x nn.LSTM; cold compile <= {TARGETS['cold_compile_s']:g} s; warm compile <= "
        f"{TARGETS['warm_compile_s']:g} s. Ratios are compiled stack / nn.LSTM from this run.",
        "",
        "| model | step ratio | fwd+bwd ratio | cold compile (s) | warm compile (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for eager_row, row in zip(eager, compiled_rows, strict=True):
        cold, warm = row["cold"], row["warm"]
        step_ratio = None if "error" in cold else cold["step_median_s"] / lstm["step_median_s"]
        train_ratio = None if "error" in cold else cold["fwd_bwd_s"] / lstm["fwd_bwd_s"]
        cells = [
            (step_ratio, TARGETS["step_ratio"], "{:.2f}"),
            (train_ratio, TARGETS["fwd_bwd_ratio"], "{:.2f}"),
            (_compile_s(cold), TARGETS["cold_compile_s"], "{:.1f}"),
            (_compile_s(warm), TARGETS["warm_compile_s"], "{:.1f}"),
        ]
        text = ["-" if v is None else f"{fmt.format(v)} ({_verdict(v, target)})" for v, target, fmt in cells]
        lines.append(f"| {eager_row['name']} | " + " | ".join(text) + " |")
    lines.append("")
    return lines


def compiled_metrics(compiled_rows: list[dict[str, Any]]) -> list[tuple[dict[str, float], None]]:
    """MLflow metrics of the compiled rows (keys ``compiled/<variant>/...``)."""
    out = []
    for row in compiled_rows:
        key = "compiled/" + ("all_mLSTM" if not row["slstm_at"] else "slstm_at" + "_".join(map(str, row["slstm_at"])))
        metrics: dict[str, float] = {}
        for run in ("cold", "warm"):
            if "error" not in row[run]:
                metrics[f"{key}/{run}_compile_s"] = _compile_s(row[run])
        if "error" not in row["cold"]:
            metrics[f"{key}/step_median_ms"] = row["cold"]["step_median_s"] * 1e3
            metrics[f"{key}/fwd_bwd_ms"] = row["cold"]["fwd_bwd_s"] * 1e3
        out.append((metrics, None))
    return out
