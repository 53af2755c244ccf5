"""The report shared by the GPU kernel benchmarks (``kernels bench --op mlstm|slstm``): rows, markdown, MLflow.

A row is one (shape, provider, pass) measurement. The benchmarks rewrite the markdown after every provider, so a run
stopped part-way (the machine is taken back, a provider hangs or aborts) leaves the rows it finished, marked
incomplete. The header is the run's :class:`~xlstm_seq.tracking.provenance.Provenance` (taken when the report is
made), with how time and memory were measured and the benchmark's own notes as further lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from xlstm_seq.tracking.provenance import Provenance, cpu_model
from xlstm_seq_bench.kernels.device_timing import Measurement

__all__ = ["KernelReport", "Row", "device_description"]


@dataclass(frozen=True)
class Row:
    """One measurement: ``shape`` and ``provider`` are labels, ``passes`` is "fwd" or "fwd+bwd"."""

    shape: str
    provider: str
    passes: str
    result: Measurement


def device_description(device: torch.device) -> str:
    """The accelerator's name (or the CPU model) as the report prints it."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        memory = f"{props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs"
        return f"{props.name} ({memory}; CUDA {torch.version.cuda})"
    return f"{cpu_model()} (CPU, {torch.get_num_threads()} threads)"


@dataclass
class KernelReport:
    """Collects rows and writes the markdown file: title, how it was run, one table per shape group."""

    title: str
    command: str
    device: torch.device
    out: Path
    notes: list[str] = field(default_factory=list)
    baselines: tuple[str, ...] = ()
    rows: list[Row] = field(default_factory=list)
    provenance: Provenance | None = None
    """Command, revision, device, versions, date and load; taken now when not given."""

    def __post_init__(self) -> None:
        if self.provenance is None:
            self.provenance = Provenance.capture(
                self.command,
                packages=("triton", *self.baselines),
                threads=torch.get_num_threads() if self.device.type == "cpu" else None,
                device=device_description(self.device),
            )

    def add_passes(self, shape: str, provider: str, fwd: Measurement, fwd_bwd: Measurement) -> None:
        """The forward and forward+backward rows of one provider at one shape."""
        self.rows += [Row(shape, provider, "fwd", fwd), Row(shape, provider, "fwd+bwd", fwd_bwd)]

    def header(self) -> list[str]:
        method = (
            "time: median of `triton.testing.do_bench` (CUDA events, warm-up first, L2 flushed between calls);"
            " memory: peak allocated by torch during one call above what was allocated before it (inputs excluded)"
            if self.device.type == "cuda"
            else "time: median wall-clock time (a harness smoke run on the CPU, not a reported number)"
        )
        return [f"# {self.title}", "", *self.provenance.markdown(notes=[method, *self.notes])]

    def table(self, shapes: list[str]) -> list[str]:
        lines = ["| shape | provider | fwd ms | fwd MiB | fwd+bwd ms | fwd+bwd MiB |", "|---|---|---|---|---|---|"]
        for shape in shapes:
            providers = list(dict.fromkeys(r.provider for r in self.rows if r.shape == shape))
            for provider in providers:
                cells = []
                for passes in ("fwd", "fwd+bwd"):
                    hit = [r for r in self.rows if (r.shape, r.provider, r.passes) == (shape, provider, passes)]
                    cells += [hit[0].result.time_text(), hit[0].result.memory_text()] if hit else ["-", "-"]
                lines.append(f"| {shape} | {provider} | " + " | ".join(cells) + " |")
        return lines

    def markdown(self, *, complete: bool, extra: list[str] | None = None) -> str:
        shapes = list(dict.fromkeys(r.shape for r in self.rows))
        status = [] if complete else ["", "**Incomplete: the run stopped before every shape was measured.**"]
        return "\n".join([*self.header(), *status, "", *self.table(shapes), *(extra or []), ""])

    def write(self, *, complete: bool, extra: list[str] | None = None) -> str:
        if complete:
            self.provenance = self.provenance.finish()  # the load average at the end
        text = self.markdown(complete=complete, extra=extra)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(text, encoding="utf-8")
        return text

    def speedups(self, ours: str, other: str, passes: str = "fwd+bwd") -> dict[str, float]:
        """``other``'s time over ``ours`` per shape where both were measured (above 1: ours is faster)."""
        out = {}
        for shape in dict.fromkeys(r.shape for r in self.rows):
            a = [r.result.median_ms for r in self.rows if (r.shape, r.provider, r.passes) == (shape, ours, passes)]
            b = [r.result.median_ms for r in self.rows if (r.shape, r.provider, r.passes) == (shape, other, passes)]
            if a and b and a[0] and b[0]:
                out[shape] = b[0] / a[0]
        return out

    def log_to_mlflow(self, run_name: str, params: dict) -> None:
        """One MLflow run: params, each time as a metric, the markdown as an artifact (warns, never raises)."""
        from xlstm_seq.tracking import create_tracker

        tags = {"device": device_description(self.device), **self.provenance.tags()}
        with create_tracker("xlstm-seq-benchmarks", run_name=run_name, tags=tags) as tracker:
            tracker.log_params(params)
            metrics = {}
            for r in self.rows:
                key = re.sub(r"[^A-Za-z0-9_./-]+", "_", f"{r.shape}/{r.provider}/{r.passes}")
                if r.result.median_ms is not None:
                    metrics[f"{key}/ms"] = r.result.median_ms
            tracker.log_metrics(metrics, step=0)
            tracker.log_text(self.out.read_text(encoding="utf-8"), self.out.name)
