"""Where the CPU stack's training pass spends its time: ``xlstm-seq kernels bench --op core_profile --device cpu``
(writes ``benchmarks/kernels/core_cpu_profile.md``).

The stacks of the core benchmark (E=128, 4 blocks; all mLSTM and one sLSTM) and ``nn.LSTM(128, 128, 4)`` each run
one forward+backward at B=8, T=256 under ``torch.profiler``, eager and compiled (``compile=True``; inductor's
on-disk cache makes a second run's compile short). Each op's own (self) CPU time goes into one of four groups:
matrix products (``mm``, ``addmm``, ``bmm``, ...), inductor's fused kernels (the compiled graphs), oneDNN's RNN
kernels (nn.LSTM) and everything else (elementwise ops, copies, reductions). The table shows what compiling
removes and what it cannot: the matrix products run through the same BLAS calls either way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from xlstm_seq.tracking.provenance import Provenance, cpu_model, visible_cores
from xlstm_seq_bench.kernels.timing import median_time

__all__ = ["DEFAULT_OUT", "ProfileSettings", "op_group", "run_core_cpu_profile"]

DEFAULT_OUT = Path("benchmarks/kernels/core_cpu_profile.md")

GROUPS = ("matrix products", "inductor fused kernels", "oneDNN RNN kernels", "other ops")
_MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm", "aten::_addmm_activation"}


def op_group(name: str) -> str:
    """The group of a profiler event by its name (one of :data:`GROUPS`)."""
    if name in _MATMUL_OPS:
        return "matrix products"
    if name.startswith("## Call CompiledFxGraph"):
        return "inductor fused kernels"
    if "rnn" in name:
        return "oneDNN RNN kernels"
    return "other ops"


@dataclass(frozen=True)
class ProfileSettings:
    """Sizes of the profiled models (those of the core benchmark's stack part)."""

    embedding_dim: int = 128
    num_blocks: int = 4
    heads: int = 4
    slstm_variants: tuple[tuple[int, ...], ...] = ((), (1,))
    train_batch: int = 8
    train_length: int = 256
    profiled_passes: int = 3
    compiled: bool = True
    """Profile the compiled stacks too (False: eager only, without the compile wait)."""
    seed: int = 0

    @classmethod
    def quick(cls) -> ProfileSettings:
        """Tiny sizes: a smoke run for tests, not for reporting."""
        return cls(embedding_dim=16, num_blocks=2, heads=2, slstm_variants=((),), train_batch=2, train_length=16,
                   profiled_passes=1)  # fmt: skip


def _profile(model: Any, x: Any, passes: int) -> dict[str, float]:
    """Seconds per forward+backward: the median wall time and each group's self CPU time (profiled passes)."""
    from torch.profiler import ProfilerActivity, profile

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        model(x)[0].sum().backward()

    forward_backward()  # compiles (or warms up) outside the measurement
    wall = median_time(forward_backward, warmup=1, max_repeats=10, min_total_s=1.0).median_s
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(passes):
            forward_backward()
    shares = dict.fromkeys(GROUPS, 0.0)
    for event in prof.key_averages():
        shares[op_group(event.key)] += event.self_cpu_time_total / 1e6 / passes
    return {"wall_s": wall, **shares}


def _models(settings: ProfileSettings) -> list[tuple[str, str, Any]]:
    import torch
    from torch import nn

    from xlstm_seq import xLSTMConfig, xLSTMStack

    E, L = settings.embedding_dim, settings.num_blocks
    out = []
    for slstm_at in settings.slstm_variants:
        kind = "all mLSTM" if not slstm_at else f"slstm_at={list(slstm_at)}"
        config = xLSTMConfig(embedding_dim=E, num_blocks=L, num_heads=settings.heads, slstm_at=list(slstm_at))
        for compiled in (False, True) if settings.compiled else (False,):
            torch.manual_seed(settings.seed)
            mode = "compiled" if compiled else "eager"
            out.append((f"xLSTMStack, {L} blocks, {kind}", mode, xLSTMStack(config, compile=compiled)))
    torch.manual_seed(settings.seed)
    out.append((f"nn.LSTM({E}, {E}, num_layers={L})", "eager", nn.LSTM(E, E, num_layers=L, batch_first=True)))
    return out


def _share(row: dict[str, Any], group: str) -> float:
    """``group``'s fraction of the row's profiled self time."""
    total = sum(row[g] for g in GROUPS)
    return row[group] / total if total > 0 else 0.0


def _markdown(provenance: Provenance, settings: ProfileSettings, rows: list[dict[str, Any]], quick: bool) -> str:
    s = settings
    lstm = next(r for r in rows if r["name"].startswith("nn.LSTM"))
    lines = [
        "# Core CPU profile: where a forward+backward of the stack spends its time",
        "",
        *provenance.markdown(notes=["CPU only, float32"]),
        "",
        f"One forward+backward at B={s.train_batch}, T={s.train_length}, E={s.embedding_dim}, {s.num_blocks} blocks "
        f"({s.heads} heads, default config otherwise), loss `y.sum()`. *Wall* is the median of up to 10 timed "
        f"passes; the groups are the ops' own CPU time under `torch.profiler`, averaged over {s.profiled_passes} "
        "more passes (the profiler adds a little to each). Matrix products: `mm`, `addmm`, `bmm` and kin (the "
        "projections, and the mLSTM's chunkwise products); inductor fused kernels: the compiled graphs (everything "
        "elementwise that inductor fused); oneDNN RNN kernels: nn.LSTM's fused cell; other ops: the rest (eager "
        "elementwise ops, copies, reductions, the sLSTM's time loop).",
        "",
        "| model | mode | wall (ms) | matrix products | inductor fused kernels | oneDNN RNN kernels | other ops "
        "| wall / nn.LSTM |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = " | ".join(f"{_share(r, g):.0%} ({_share(r, g) * r['wall_s'] * 1e3:.1f} ms)" for g in GROUPS)
        lines.append(f"| {r['name']} | {r['mode']} | {r['wall_s'] * 1e3:.1f} | {cells} | "
                     f"{r['wall_s'] / lstm['wall_s']:.2f} |")  # fmt: skip
    lines += [
        "",
        "Each group's share of the profiled time, and in brackets that share of the wall time (the profiler's own "
        "overhead spread evenly).",
        "",
        "## What this says",
        "",
    ]
    for r in rows:
        if r["mode"] != "compiled":
            continue
        matmul_s = _share(r, "matrix products") * r["wall_s"]
        lines.append(
            f"- {r['name']}, compiled: its matrix products alone take about {matmul_s * 1e3:.0f} ms, "
            f"{matmul_s / lstm['wall_s']:.2f}x nn.LSTM's whole pass ({lstm['wall_s'] * 1e3:.1f} ms); the rest of its "
            f"pass adds {(r['wall_s'] - matmul_s) * 1e3:.0f} ms."
        )
    if quick:
        lines += ["", "Quick run (tiny sizes): a smoke test of the command, not a measurement to report."]
    return "\n".join(lines) + "\n"


def _command(out_path: Path, quick: bool, threads: int) -> str:
    parts = ["xlstm-seq", "kernels", "bench", "--op", "core_profile", "--device", "cpu", "--threads", str(threads)]
    if quick:
        parts.append("--quick")
    if Path(out_path) != DEFAULT_OUT:
        parts += ["--out", str(out_path)]
    return " ".join(parts)


def run_core_cpu_profile(
    out_path: Path = DEFAULT_OUT,
    *,
    quick: bool = False,
    threads: int = 1,
    track: bool = True,
    settings: ProfileSettings | None = None,
) -> str:
    """Profiles the stacks and nn.LSTM, writes the markdown to ``out_path`` and returns it.

    Args:
        out_path: Markdown file to write (folders are created). Default ``benchmarks/kernels/core_cpu_profile.md``.
        quick: Tiny sizes (a smoke run, not for reporting). Default False.
        threads: torch threads. Default 1 (the core benchmark's setting on a shared machine).
        track: Log one MLflow run (experiment ``xlstm-seq-benchmarks``, run ``core_cpu_profile``): each row's
            times as metrics and the table as text. Default True.
        settings: Overrides the sizes (``ProfileSettings()`` or ``ProfileSettings.quick()`` by default).

    Returns:
        The markdown written.
    """
    import torch

    out_path = Path(out_path)
    settings = settings or (ProfileSettings.quick() if quick else ProfileSettings())
    device = f"{cpu_model()} (CPU, {visible_cores()} cores visible, `torch.set_num_threads({threads})`, float32)"
    provenance = Provenance.capture(_command(out_path, quick, threads), threads=threads, device=device)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    started = time.perf_counter()
    rows = []
    try:
        x = torch.randn(settings.train_batch, settings.train_length, settings.embedding_dim)
        models = _models(settings)
        for name, mode, model in tqdm(models, desc="core cpu profile", unit="model"):
            rows.append({"name": name, "mode": mode, **_profile(model.train(), x, settings.profiled_passes)})
    finally:
        torch.set_num_threads(previous_threads)
    provenance = provenance.finish()
    markdown = _markdown(provenance, settings, rows, quick)
    markdown += f"\n{time.perf_counter() - started:.0f} s in all (compiles included).\n"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(markdown, encoding="utf-8")
    if track:
        _log_run(provenance, settings, rows, markdown)
    return markdown


def _log_run(provenance: Provenance, settings: ProfileSettings, rows: list[dict[str, Any]], markdown: str) -> None:
    from dataclasses import asdict

    from xlstm_seq.tracking import create_tracker

    tags = {"benchmark": "core_cpu_profile", "benchmark.command": provenance.command, **provenance.tags()}
    with create_tracker("xlstm-seq-benchmarks", run_name="core_cpu_profile", tags=tags) as tracker:
        tracker.log_params({k: str(v) for k, v in asdict(settings).items()})
        for r in rows:
            key = f"{r['name']}/{r['mode']}".replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
            key = "".join(c for c in key if c.isalnum() or c in "_-./")
            tracker.log_metrics({f"{key}/{g.replace(' ', '_')}_s": r[g] for g in ("wall_s", *GROUPS)})
        tracker.log_text(markdown, "core_cpu_profile.md")
