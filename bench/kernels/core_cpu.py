"""CPU benchmark of the xLSTM core: ``xlstm-seq kernels bench --device cpu`` (writes
``benchmarks/kernels/core_cpu.md``).

Two parts, both the baseline that the kernel work improves on:

1. The mLSTM reference forms (:mod:`xlstm_seq.kernels.mlstm.naive`) against the sequence length T: forward
   time, forward+backward time and peak memory of ``mlstm_parallel`` (quadratic in T) and ``mlstm_chunkwise``
   (linear in T) at a few chunk sizes. Every point runs in a fresh subprocess so that its peak memory is the
   first large allocation there (see :mod:`xlstm_seq_bench.kernels.timing`). Points whose extrapolated memory
   or time is over budget are skipped and marked so in the table, never attempted.
2. ``xLSTMStack.step`` latency at batch 1 (E=128, 4 blocks; all mLSTM, one sLSTM, and [1:1]) against an
   ``nn.LSTM`` of 4 layers with hidden size 128 stepping one token, and the stacks' forward+backward at B=8,
   T=256; eager, and compiled (``compile=True``, with cold and warm compile times; see
   :mod:`xlstm_seq_bench.kernels.core_cpu_compiled`).

The result is one markdown file and one MLflow run (the table as text, a log-log plot as a figure, every
measurement as a metric). ``quick=True`` uses tiny sizes: a smoke run for tests, not for reporting.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from xlstm_seq.tracking.provenance import Provenance, cpu_model, visible_cores
from xlstm_seq_bench.kernels.core_cpu_compiled import compiled_metrics, compiled_section, measure_compiled
from xlstm_seq_bench.kernels.timing import (
    WorkerError,
    measure_peak_memory,
    median_time,
    per_call_times,
    run_worker,
)

__all__ = ["BenchSettings", "run_core_cpu_benchmark"]

DEFAULT_OUT = Path("benchmarks/kernels/core_cpu.md")
_WORKER = "xlstm_seq_bench.kernels.core_cpu:mlstm_point"
_MIB = 2**20

#: The official libraries' figures quoted under the table (labelled references, never measurements of this command).
REFERENCES_FILE = Path(__file__).with_name("core_cpu_references.yaml")


def reference_figures() -> list[tuple[str, str]]:
    """(what, numbers) of each reference figure in ``core_cpu_references.yaml``, in the file's order."""
    from xlstm_seq.config_io import load_yaml

    return [(entry["what"], entry["numbers"]) for entry in load_yaml(REFERENCES_FILE)["references"]]


@dataclass(frozen=True)
class BenchSettings:
    """Sizes and budgets of the benchmark. ``BenchSettings()`` is the reported run, ``quick()`` the smoke run."""

    batch: int = 1
    """Batch size of the mLSTM sweep."""
    heads: int = 4
    """Heads of the mLSTM sweep."""
    head_dim: int = 64
    """DK = DV of the mLSTM sweep."""
    lengths: tuple[int, ...] = (256, 512, 1024, 2048, 4096, 8192, 16384)
    """Sequence lengths T of the sweep."""
    chunk_sizes: tuple[int, ...] = (64, 128)
    """Chunk sizes of the chunkwise form (64 is the default ``chunk_size=None``)."""
    memory_budget_gib: float = 8.0
    """A point is skipped when its peak memory, extrapolated from the previous T, is over this."""
    time_budget_s: float = 30.0
    """... or when one forward+backward, extrapolated from the previous T, is predicted to take longer."""
    worker_timeout_s: float = 420.0
    """A worker still running after this long is killed and its point marked as timed out."""
    min_total_s: float = 2.0
    """Timed repeats continue (3 at least, 20 at most) until they add up to this many seconds."""
    slope_from: int = 1024
    """The growth exponent is fitted over T >= this (shorter T are dominated by fixed overheads)."""
    compare_point: tuple[int, int, int, int] | None = (8, 4, 256, 64)
    """(B, H, T, D) of one extra chunkwise point at the shape ENVIRONMENT.md measured mlstm-kernels at."""
    embedding_dim: int = 128
    """E of the stacks and the hidden size of the nn.LSTM."""
    num_blocks: int = 4
    """Blocks of the stacks and layers of the nn.LSTM."""
    stack_heads: int = 4
    """Heads of the stacks."""
    slstm_variants: tuple[tuple[int, ...], ...] = ((), (1,), (1, 3))
    """``slstm_at`` of each stack benchmarked: all mLSTM, one sLSTM (the official library's reference), [1:1]."""
    slstm_reference_rows: bool = True
    """Also measure each stack with sLSTM blocks on the torch loop (``slstm.backend="torch"``), beside the default
    backend (the C++ recurrence where a compiler is found): the two side by side in one run."""
    step_calls: int = 300
    """Timed single-token steps per model (after ``step_warmup``)."""
    step_warmup: int = 30
    """Untimed steps first."""
    train_batch: int = 8
    """B of the forward+backward of the stacks."""
    train_length: int = 256
    """T of the forward+backward of the stacks."""
    seed: int = 0
    """Seed of the random inputs and the models' initialisation."""
    threads: int | None = None
    """torch threads; None uses the cores this process may run on."""
    compiled: bool = True
    """Also measure each stack with ``compile=True`` (cold and warm compile, each in a fresh process)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes logged with the params (not used by the benchmark)."""

    @classmethod
    def quick(cls) -> BenchSettings:
        """Tiny sizes: a smoke run of every code path in seconds; the numbers mean nothing."""
        return cls(
            heads=2,
            head_dim=32,
            lengths=(128, 256),
            chunk_sizes=(32,),
            min_total_s=0.0,
            slope_from=0,
            compare_point=None,
            embedding_dim=32,
            num_blocks=2,
            stack_heads=2,
            slstm_variants=((), (1,)),
            step_calls=20,
            step_warmup=2,
            train_batch=2,
            train_length=16,
            worker_timeout_s=120.0,
            threads=1,  # several threads on a busy shared machine turn milliseconds into seconds
            compiled=False,  # a first compile takes a minute or more: not for a smoke run
        )


# ----------------------------------------------------------------------------------------------- mLSTM worker


def mlstm_point(
    form: str,
    T: int,
    batch: int,
    heads: int,
    head_dim: int,
    chunk_size: int | None,
    threads: int,
    min_total_s: float,
    seed: int,
) -> dict[str, Any]:
    """One point of the sweep; runs inside a fresh worker process (see :func:`run_worker`).

    Measures, in this order: the peak memory of the first full-size forward+backward (after a tiny warm-up at
    T <= 64 that initialises autograd and the thread pool without touching the big allocations), the median
    forward+backward time, and the median forward time under ``torch.inference_mode``. The loss is ``h.sum()``;
    the gradients of all five inputs are computed.
    """
    import torch

    from xlstm_seq.kernels.mlstm.naive import mlstm_chunkwise, mlstm_parallel

    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(seed)

    def inputs(length: int) -> list[torch.Tensor]:
        shapes = [(batch, heads, length, head_dim)] * 3 + [(batch, heads, length)] * 2
        return [torch.randn(s, generator=generator).requires_grad_() for s in shapes]

    if form == "parallel":

        def call(xs: list[torch.Tensor]) -> torch.Tensor:
            return mlstm_parallel(*xs)[0]
    elif form == "chunkwise":

        def call(xs: list[torch.Tensor]) -> torch.Tensor:
            return mlstm_chunkwise(*xs, chunk_size=chunk_size)[0]
    else:
        raise ValueError(f"unknown mLSTM form {form!r}")

    def forward_backward(xs: list[torch.Tensor]) -> None:
        for x in xs:
            x.grad = None
        call(xs).sum().backward()

    def forward(xs: list[torch.Tensor]) -> None:
        with torch.inference_mode():
            call(xs)

    forward_backward(inputs(min(T, 64)))
    xs = inputs(T)
    memory = measure_peak_memory(lambda: forward_backward(xs))
    fwd_bwd = median_time(lambda: forward_backward(xs), warmup=0, max_repeats=20, min_total_s=min_total_s)
    fwd = median_time(lambda: forward(xs), warmup=1, max_repeats=20, min_total_s=min_total_s / 2)
    return {"memory": memory.to_dict(), "fwd_bwd": fwd_bwd.to_dict(), "fwd": fwd.to_dict()}


# ----------------------------------------------------------------------------------------------- sweep


@dataclass
class Point:
    """One measured (or skipped) point of the sweep."""

    form: str
    T: int
    fwd_bwd_s: float | None = None
    fwd_s: float | None = None
    peak_bytes: int | None = None
    fwd_bwd_min_s: float | None = None
    repeats: int | None = None
    note: str = ""

    @property
    def measured(self) -> bool:
        return self.fwd_bwd_s is not None


def _form_label(form: str, chunk_size: int | None) -> str:
    return "parallel" if form == "parallel" else f"chunkwise L={chunk_size}"


def _skip_reason(exponent: int, T: int, previous: Point | None, settings: BenchSettings) -> str | None:
    """Why a point would be over budget, extrapolating the previous measured point by (T/T_prev)**exponent."""
    if previous is None or not previous.measured:
        return None
    growth = (T / previous.T) ** exponent
    order = "O(T^2)" if exponent == 2 else "O(T)"
    predicted_gib = (previous.peak_bytes or 0) * growth / 2**30
    if predicted_gib > settings.memory_budget_gib:
        return (
            f"skipped: {order} memory, predicted {predicted_gib:.1f} GiB over the {settings.memory_budget_gib:g} GiB"
            " budget"
        )
    predicted_s = (previous.fwd_bwd_s or 0.0) * growth
    if predicted_s > settings.time_budget_s:
        return (
            f"skipped: {order} time, predicted {predicted_s:.0f} s per forward+backward over the"
            f" {settings.time_budget_s:g} s budget"
        )
    return None


def _run_point(
    form: str, T: int, chunk_size: int | None, settings: BenchSettings, threads: int, *, shape=None
) -> Point:
    batch, heads, head_dim = shape or (settings.batch, settings.heads, settings.head_dim)
    kwargs = dict(
        form=form,
        T=T,
        batch=batch,
        heads=heads,
        head_dim=head_dim,
        chunk_size=chunk_size,
        threads=threads,
        min_total_s=settings.min_total_s,
        seed=settings.seed,
    )
    label = _form_label(form, chunk_size)
    try:
        result = run_worker(_WORKER, kwargs, timeout=settings.worker_timeout_s)
    except WorkerError as err:
        if err.timed_out:
            note = f"failed: timed out after {settings.worker_timeout_s:g} s"
        elif err.returncode is not None and err.returncode < 0:
            note = f"failed: worker killed by signal {-err.returncode}" + (
                " (out of memory?)" if err.returncode == -9 else ""
            )
        else:
            note = "failed: " + str(err).splitlines()[-1][:120]
        return Point(label, T, note=note)
    return Point(
        label,
        T,
        fwd_bwd_s=result["fwd_bwd"]["median_s"],
        fwd_bwd_min_s=result["fwd_bwd"]["min_s"],
        fwd_s=result["fwd"]["median_s"],
        peak_bytes=result["memory"]["peak_delta_bytes"],
        repeats=result["fwd_bwd"]["repeats"],
        note=result["memory"]["method"],
    )


def _fit_slope(points: list[Point], value: Callable[[Point], float | None], t_min: int) -> float | None:
    """Least-squares slope of log(value) against log(T) over measured points with T >= t_min (None if < 2)."""
    xy = [(math.log(p.T), math.log(v)) for p in points if t_min <= p.T and (v := value(p)) is not None and v > 0]
    if len(xy) < 2:
        return None
    mx = statistics.fmean(x for x, _ in xy)
    my = statistics.fmean(y for _, y in xy)
    sxx = sum((x - mx) ** 2 for x, _ in xy)
    return sum((x - mx) * (y - my) for x, y in xy) / sxx if sxx > 0 else None


# ----------------------------------------------------------------------------------------------- stack


def _stack_benchmarks(settings: BenchSettings, threads: int, progress: tqdm) -> list[dict[str, Any]]:
    """Step latency at B=1 and forward+backward at (train_batch, train_length) of each stack and the nn.LSTM."""
    import torch
    from torch import nn

    from xlstm_seq import xLSTMConfig, xLSTMStack
    from xlstm_seq.config import sLSTMLayerConfig
    from xlstm_seq.kernels.registry import resolve_backend

    E, L = settings.embedding_dim, settings.num_blocks
    rows: list[dict[str, Any]] = []
    models: list[tuple[str, str, Callable[[], nn.Module]]] = []
    for slstm_at in settings.slstm_variants:
        kind = "all mLSTM" if not slstm_at else f"slstm_at={list(slstm_at)}"
        config = xLSTMConfig(embedding_dim=E, num_blocks=L, num_heads=settings.stack_heads, slstm_at=list(slstm_at))
        backend = ""
        if slstm_at:
            backend = f", sLSTM backend {resolve_backend('slstm', config.slstm_backend, 'cpu')!r}"
        models.append((f"xLSTMStack, {L} blocks, {kind}{backend}", "stack", lambda c=config: xLSTMStack(c)))
    if settings.slstm_reference_rows:
        for slstm_at in [v for v in settings.slstm_variants if v]:
            config = xLSTMConfig(
                embedding_dim=E,
                num_blocks=L,
                num_heads=settings.stack_heads,
                slstm_at=list(slstm_at),
                slstm=sLSTMLayerConfig(backend="torch"),
            )
            name = f"xLSTMStack, {L} blocks, slstm_at={list(slstm_at)}, sLSTM backend 'torch'"
            models.append((name, "stack_reference", lambda c=config: xLSTMStack(c)))
    models.append((f"nn.LSTM({E}, {E}, num_layers={L})", "lstm", lambda: nn.LSTM(E, E, num_layers=L, batch_first=True)))

    for name, kind, build in models:
        torch.manual_seed(settings.seed)
        rows.append(_measure_model(name, kind, build(), settings, progress))
    return rows


def _measure_model(name: str, kind: str, model: Any, settings: BenchSettings, progress: tqdm) -> dict[str, Any]:
    """Step latency (B=1, each step timed on its own) and forward+backward time of one stack or nn.LSTM."""
    import torch

    E, L = settings.embedding_dim, settings.num_blocks
    model.eval()
    x_t = torch.randn(1, E)
    with torch.inference_mode():
        if kind != "lstm":
            carry: list[Any] = [model.init_state(1)]

            def step() -> None:
                carry[0] = model.step(x_t, carry[0])[1]
        else:
            carry = [(torch.zeros(L, 1, E), torch.zeros(L, 1, E))]
            x_seq = x_t[:, None, :]

            def step() -> None:
                carry[0] = model(x_seq, carry[0])[1]

        times = per_call_times(step, settings.step_calls, warmup=settings.step_warmup)
    progress.update(1)

    model.train()
    x = torch.randn(settings.train_batch, settings.train_length, E)

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        model(x)[0].sum().backward()

    train = median_time(forward_backward, warmup=1, max_repeats=20, min_total_s=settings.min_total_s)
    progress.update(1)
    deciles = statistics.quantiles(times, n=10)
    return {
        "name": name,
        "kind": kind,
        "params": sum(p.numel() for p in model.parameters()),
        "step_median_s": statistics.median(times),
        "step_p10_s": deciles[0],
        "step_p90_s": deciles[-1],
        "step_calls": len(times),
        "fwd_bwd_s": train.median_s,
        "fwd_bwd_repeats": train.repeats,
    }


# ----------------------------------------------------------------------------------------------- environment


def _provenance(command: str, threads: int) -> Provenance:
    """The report's provenance, taken as the run starts; the device is this CPU whatever else the machine has."""
    device = f"{cpu_model()} (CPU, {visible_cores()} cores visible, `torch.set_num_threads({threads})`, float32)"
    return Provenance.capture(command, threads=threads, device=device)


def _command(out_path: Path, quick: bool, track: bool, threads: int | None = None) -> str:
    parts = ["xlstm-seq", "kernels", "bench", "--device", "cpu"]
    if quick:
        parts.append("--quick")
    if threads is not None:
        parts += ["--threads", str(threads)]
    if Path(out_path) != DEFAULT_OUT:
        parts += ["--out", str(out_path)]
    if not track:
        parts.append("--no-track")
    return " ".join(parts)


# ----------------------------------------------------------------------------------------------- report


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1e3:.4g}" if seconds < 0.1 else f"{seconds * 1e3:.0f}"


def _mib(nbytes: int | None) -> str:
    return "" if nbytes is None else f"{nbytes / _MIB:.1f}" if nbytes < 10 * _MIB else f"{nbytes / _MIB:.0f}"


def _cell(point: Point | None, value: Callable[[Point], Any], fmt: Callable[[Any], str], prev: Point | None) -> str:
    if point is None:
        return ""
    if not point.measured:
        return point.note
    text = fmt(value(point))
    if prev is not None and prev.measured and value(prev):
        text += f" (x{value(point) / value(prev):.2f})"
    return text


def _sweep_table(
    title: str,
    labels: list[str],
    lengths: tuple[int, ...],
    grid: dict[tuple[str, int], Point],
    value: Callable[[Point], Any],
    fmt: Callable[[Any], str],
) -> list[str]:
    lines = [title, "", "| T | " + " | ".join(labels) + " |", "|---:|" + "---:|" * len(labels)]
    for index, T in enumerate(lengths):
        previous_T = lengths[index - 1] if index else None
        cells = [
            _cell(grid.get((label, T)), value, fmt, grid.get((label, previous_T)) if previous_T else None)
            for label in labels
        ]
        lines.append(f"| {T:,} | " + " | ".join(cells) + " |")
    return lines + [""]


def _markdown(
    provenance: Provenance,
    settings: BenchSettings,
    labels: list[str],
    grid: dict[tuple[str, int], Point],
    compare: Point | None,
    stack_rows: list[dict[str, Any]],
    quick: bool,
    elapsed_s: float,
    custom_settings: bool = False,
) -> str:
    s = settings
    lines = ["# Core CPU benchmark: mLSTM reference forms and xLSTMStack step latency", ""]
    if quick:
        lines += ["**Quick smoke run (`--quick`): tiny sizes, not for reporting.**", ""]
    notes = [
        f"run from the repository root; {elapsed_s:.0f} s in all",
        "the machine may be shared, and other processes on the same cores slow every figure down",
    ]
    if custom_settings:
        notes.append("called from Python with custom `BenchSettings`; the command alone does not reproduce it")
    lines += [
        *provenance.markdown(notes=notes),
        "",
        "## mLSTM reference forms against T",
        "",
        f"`mlstm_parallel` and `mlstm_chunkwise` from `xlstm_seq.kernels.mlstm.naive`: B={s.batch}, H={s.heads}, "
        f"DK=DV={s.head_dim}, exponential input gate, random normal inputs, loss `h.sum()`, gradients of all five "
        f"inputs. Chunk size 64 is the default (`chunk_size=None`). Times are medians over >= 3 repeats (until "
        f"{s.min_total_s:g} s in all, at most 20) after a warm-up; in brackets the ratio to the previous T, so a "
        "doubling of T gives about x2 for linear growth and x4 for quadratic. Points whose time or memory, "
        f"extrapolated from the previous T, is over the budget ({s.memory_budget_gib:g} GiB, "
        f"{s.time_budget_s:g} s per forward+backward) are skipped, not attempted.",
        "",
    ]
    lengths = s.lengths
    lines += _sweep_table("### Forward+backward time (ms, median)", labels, lengths, grid, lambda p: p.fwd_bwd_s, _ms)
    lines += _sweep_table(
        "### Forward+backward time (ms, fastest repeat: the figure least inflated by other load on the machine)",
        labels,
        lengths,
        grid,
        lambda p: p.fwd_bwd_min_s,
        _ms,
    )
    lines += _sweep_table(
        "### Peak memory of forward+backward (MiB above the inputs)",
        labels,
        lengths,
        grid,
        lambda p: p.peak_bytes,
        _mib,
    )
    lines += _sweep_table(
        "### Forward time, `torch.inference_mode` (ms)", labels, lengths, grid, lambda p: p.fwd_s, _ms
    )

    lines += [
        f"### Growth exponent (least-squares slope of log value against log T, T >= {s.slope_from:,})",
        "",
        "1 is linear, 2 quadratic.",
        "",
        "| form | forward+backward time (median) | forward+backward time (fastest) | peak memory | forward time "
        "| measured T |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for label in labels:
        points = [grid[(label, T)] for T in lengths if (label, T) in grid]
        slopes = [
            _fit_slope(points, v, s.slope_from)
            for v in (
                lambda p: p.fwd_bwd_s,
                lambda p: p.fwd_bwd_min_s,
                lambda p: p.peak_bytes,
                lambda p: p.fwd_s,
            )
        ]
        measured = [p.T for p in points if p.measured]
        span = f"{measured[0]:,} to {measured[-1]:,}" if measured else "none"
        lines.append(f"| {label} | " + " | ".join("n/a" if x is None else f"{x:.2f}" for x in slopes) + f" | {span} |")
    lines.append("")
    if compare is not None:
        B, H, T, D = s.compare_point
        lines += [
            f"Chunkwise (L=64) at B={B}, H={H}, T={T}, DK=DV={D} (the shape ENVIRONMENT.md measured mlstm-kernels "
            f"at): forward {_ms(compare.fwd_s)} ms, forward+backward {_ms(compare.fwd_bwd_s)} ms, "
            f"peak memory {_mib(compare.peak_bytes)} MiB"
            + (f" ({compare.note})" if not compare.measured else "")
            + ".",
            "",
        ]
    method = next((p.note for p in grid.values() if p.measured), "n/a")
    lines += [
        "Peak memory method: torch keeps no allocator statistics on a CPU, so every point runs in a fresh Python "
        "subprocess. After the inputs are built and a tiny warm-up (T <= 64) has initialised autograd and the "
        "thread pool, the first full-size forward+backward is measured as: " + method + ". The figure is the "
        "resident memory the call added at its peak (activations saved for backward, outputs and the five input "
        "gradients; the inputs themselves are in the baseline). Times come from the same process, after that call.",
        "",
        "## xLSTMStack against nn.LSTM",
        "",
        f"E={s.embedding_dim}, {s.num_blocks} blocks ({s.stack_heads} heads, default config otherwise) against "
        f"`nn.LSTM({s.embedding_dim}, {s.embedding_dim}, num_layers={s.num_blocks})`. Step: one token at B=1 "
        f"(`stack.step(x_t, state)`; the LSTM called on a (1, 1, {s.embedding_dim}) input with its (h, c)), under "
        f"`torch.inference_mode`, {s.step_warmup} warm-up steps, then {s.step_calls} steps each timed on its own. "
        f"Forward+backward: B={s.train_batch}, T={s.train_length}, loss `y.sum()`, median over >= 3 repeats.",
        "",
        "| model | parameters | step median (ms) | step p10 (ms) | step p90 (ms) | "
        f"forward+backward B={s.train_batch}, T={s.train_length} (ms) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in stack_rows:
        lines.append(
            f"| {row['name']} | {row['params']:,} | {row['step_median_s'] * 1e3:.3f} | {row['step_p10_s'] * 1e3:.3f} "
            f"| {row['step_p90_s'] * 1e3:.3f} | {_ms(row['fwd_bwd_s'])} |"
        )
    lines += [
        "",
        "Reference figures measured in ENVIRONMENT.md (the official libraries on the same kind of machine, 2 threads; "
        "not measured by this command):",
        "",
    ]
    lines += [f"- {what}: {numbers}" for what, numbers in reference_figures()]
    lines.append("")
    return "\n".join(lines)


def _figure(labels: list[str], grid: dict[tuple[str, int], Point], lengths: tuple[int, ...]):
    import matplotlib

    if "MPLBACKEND" not in os.environ:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = [
        (axes[0], lambda p: p.fwd_bwd_s * 1e3, "forward+backward time (ms)"),
        (axes[1], lambda p: p.peak_bytes / _MIB, "peak memory (MiB)"),
    ]
    for ax, value, ylabel in panels:
        for label in labels:
            points = [grid[(label, T)] for T in lengths if (label, T) in grid and grid[(label, T)].measured]
            points = [p for p in points if value(p) > 0]
            if points:
                ax.plot([p.T for p in points], [value(p) for p in points], marker="o", label=label)
        ys = [line.get_ydata() for line in ax.get_lines()]
        if ys:
            t0, y0 = lengths[0], min(float(y[0]) for y in ys)
            ts = [t0, lengths[-1]]
            ax.plot(ts, [y0 * (t / t0) for t in ts], "k:", lw=0.8, label="slope 1 (linear)")
            ax.plot(ts, [y0 * (t / t0) ** 2 for t in ts], "k--", lw=0.8, label="slope 2 (quadratic)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("mLSTM reference forms on CPU")
    fig.tight_layout()
    return fig


def _metrics(
    labels: list[str],
    grid: dict[tuple[str, int], Point],
    compare: Point | None,
    stack_rows: list[dict[str, Any]],
) -> list[tuple[dict[str, float], int | None]]:
    out: list[tuple[dict[str, float], int | None]] = []
    for (label, T), p in grid.items():
        if p.measured:
            key = "mlstm/" + label.replace(" ", "_").replace("=", "")
            out.append(
                (
                    {
                        f"{key}/fwd_bwd_ms": p.fwd_bwd_s * 1e3,
                        f"{key}/fwd_bwd_min_ms": p.fwd_bwd_min_s * 1e3,
                        f"{key}/fwd_ms": p.fwd_s * 1e3,
                        f"{key}/peak_mib": p.peak_bytes / _MIB,
                    },
                    T,
                )
            )
    if compare is not None and compare.measured:
        out.append(
            (
                {
                    "mlstm/compare_point/fwd_ms": compare.fwd_s * 1e3,
                    "mlstm/compare_point/fwd_bwd_ms": compare.fwd_bwd_s * 1e3,
                    "mlstm/compare_point/peak_mib": compare.peak_bytes / _MIB,
                },
                None,
            )
        )
    for row in stack_rows:
        key = "lstm" if row["kind"] == "lstm" else "stack_" + row["name"].split("blocks, ", 1)[-1].replace(" ", "_")
        key = key.replace("=", "").replace("[", "").replace("]", "").replace(",", "_").replace("'", "")
        out.append(
            (
                {
                    f"step/{key}/median_ms": row["step_median_s"] * 1e3,
                    f"step/{key}/p90_ms": row["step_p90_s"] * 1e3,
                    f"fwd_bwd/{key}/ms": row["fwd_bwd_s"] * 1e3,
                },
                None,
            )
        )
    return out


# ----------------------------------------------------------------------------------------------- entry point


def run_core_cpu_benchmark(
    out_path: Path = DEFAULT_OUT,
    *,
    quick: bool = False,
    track: bool = True,
    settings: BenchSettings | None = None,
    threads: int | None = None,
) -> str:
    """Runs the CPU benchmark of the core, writes the markdown table to ``out_path`` and returns it.

    Args:
        out_path: Markdown file to write (folders are created). Default ``benchmarks/kernels/core_cpu.md``.
        quick: Tiny sizes (a smoke run in seconds, not for reporting). Default False.
        track: Log one MLflow run (experiment ``xlstm-seq-benchmarks``, run ``core_cpu``): every measurement
            as a metric, the table as text, the plot as a figure. Default True.
        settings: Overrides the sizes and budgets (``BenchSettings()`` or ``BenchSettings.quick()`` by default).
        threads: torch threads (overrides the settings'); None: the settings' (the visible cores by default). On a
            machine that other jobs share, 1 thread keeps their load from stalling every parallel op.

    Returns:
        The markdown written.
    """
    import time

    import torch

    out_path = Path(out_path)
    custom_settings = settings is not None
    settings = settings or (BenchSettings.quick() if quick else BenchSettings())
    command = _command(out_path, quick, track, threads)
    threads = threads or settings.threads or visible_cores()
    settings = replace(settings, threads=threads)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    started = time.perf_counter()
    provenance = _provenance(command, threads)

    forms: list[tuple[str, int | None, int]] = [("parallel", None, 2)]
    forms += [("chunkwise", cs, 1) for cs in settings.chunk_sizes]
    labels = [_form_label(form, cs) for form, cs, _ in forms]
    total = (
        len(forms) * len(settings.lengths)
        + (settings.compare_point is not None)
        + 2 * (len(settings.slstm_variants) + 1)
        + 2 * settings.slstm_reference_rows * sum(1 for v in settings.slstm_variants if v)
        + 2 * len(settings.slstm_variants) * settings.compiled
    )
    grid: dict[tuple[str, int], Point] = {}
    compare: Point | None = None
    try:
        with tqdm(total=total, desc="core cpu benchmark", unit="measurement") as progress:
            for form, chunk_size, exponent in forms:
                label = _form_label(form, chunk_size)
                last_measured: Point | None = None
                failed = False
                for T in settings.lengths:
                    progress.set_postfix_str(f"{label}, T={T}")
                    reason = (
                        "skipped: a shorter T failed" if failed else _skip_reason(exponent, T, last_measured, settings)
                    )
                    point = (
                        Point(label, T, note=reason) if reason else _run_point(form, T, chunk_size, settings, threads)
                    )
                    grid[(label, T)] = point
                    if point.measured:
                        last_measured = point
                    elif point.note.startswith("failed"):
                        failed = True
                    progress.update(1)
            if settings.compare_point is not None:
                B, H, T, D = settings.compare_point
                progress.set_postfix_str(f"chunkwise L=64 at B={B}, H={H}, T={T}, D={D}")
                compare = _run_point("chunkwise", T, 64, settings, threads, shape=(B, H, D))
                progress.update(1)
            progress.set_postfix_str("stacks and nn.LSTM")
            stack_rows = _stack_benchmarks(settings, threads, progress)
            compiled_rows = measure_compiled(settings, threads, progress) if settings.compiled else []
    finally:
        torch.set_num_threads(previous_threads)
    provenance = provenance.finish()
    elapsed = time.perf_counter() - started

    markdown = _markdown(provenance, settings, labels, grid, compare, stack_rows, quick, elapsed, custom_settings)
    if compiled_rows:
        markdown += "\n" + "\n".join(compiled_section(settings, stack_rows, compiled_rows))
    else:
        markdown += "\nCompiled stacks: not measured in this run (`compiled=False`; a quick run skips them).\n"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(markdown, encoding="utf-8")

    if track:
        _log_run(settings, provenance, markdown, labels, grid, compare, stack_rows, quick, compiled_rows)
    return markdown


def _log_run(
    settings: BenchSettings,
    provenance: Provenance,
    markdown: str,
    labels: list[str],
    grid: dict[tuple[str, int], Point],
    compare: Point | None,
    stack_rows: list[dict[str, Any]],
    quick: bool,
    compiled_rows: list[dict[str, Any]],
) -> None:
    import matplotlib.pyplot as plt

    from xlstm_seq.tracking import create_tracker

    params = {k: v for k, v in asdict(settings).items() if k != "extra"}
    params.update({f"extra.{k}": v for k, v in settings.extra.items()})
    tags = {
        "benchmark": "core_cpu",
        "benchmark.command": provenance.command,
        "cpu_model": cpu_model(),
        "quick": str(quick).lower(),
        **provenance.tags(),
    }
    with create_tracker("xlstm-seq-benchmarks", run_name="core_cpu", tags=tags) as tracker:
        tracker.log_params(params)
        for metrics, step in _metrics(labels, grid, compare, stack_rows) + compiled_metrics(compiled_rows):
            tracker.log_metrics(metrics, step=step)
        tracker.log_text(markdown, "core_cpu.md")
        fig = _figure(labels, grid, settings.lengths)
        try:
            tracker.log_figure(fig, "core_cpu.png")
        finally:
            plt.close(fig)
