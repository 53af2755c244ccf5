"""The synthetic benchmark's report: one result per run, the markdown table (under the run's
:class:`~xlstm_seq.tracking.provenance.Provenance`) and the accuracy-vs-length plot."""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xlstm_seq.tracking.provenance import Provenance, cpu_model, visible_cores
from xlstm_seq_bench.synthetic.training import majority_baseline

if TYPE_CHECKING:
    from xlstm_seq_bench.synthetic.benchmark import SyntheticBenchmarkConfig

__all__ = ["RunResult", "capture_provenance", "mean_std", "plot_accuracy", "provenance_from_tags", "render_markdown"]

SOLVED = 0.95
"""Accuracy at which a task counts as solved at a length (the target's bar)."""


@dataclass(frozen=True)
class RunResult:
    """What one (task, model, seed) run measured."""

    task: str
    model: str
    seed: int
    parameters: int
    steps: int
    learning_rate: float
    train_seconds: float
    accuracy: dict[int, float]
    """Test accuracy at the scored positions, per test length."""

    @classmethod
    def from_job(cls, job: dict[str, Any]) -> RunResult:
        return cls(
            task=job["task"],
            model=job["model"],
            seed=job["seed"],
            parameters=job["parameters"],
            steps=job["steps"],
            learning_rate=job["learning_rate"],
            train_seconds=job["train_seconds"],
            accuracy={int(k): float(v) for k, v in job["accuracy"].items()},
        )


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _grouped(results: list[RunResult]) -> dict[tuple[str, str], list[RunResult]]:
    groups: dict[tuple[str, str], list[RunResult]] = defaultdict(list)
    for result in results:
        groups[(result.task, result.model)].append(result)
    return groups


def _other_settings(spec) -> str:
    """The ModelSpec fields beyond width/blocks/heads/lr that differ from the core's defaults ("-" if none)."""
    names = (
        "slstm_heads",
        "slstm_forget_bias",
        "slstm_input_bias",
        "slstm_recurrent_lr_factor",
        "slstm_conv_kernel",
        "mlstm_conv_kernel",
        "mlstm_qkv_blocksize",
    )
    parts = [f"{name}={getattr(spec, name)}" for name in names if getattr(spec, name, None) is not None]
    return ", ".join(parts) or "-"


def render_markdown(
    config: SyntheticBenchmarkConfig,
    results: list[RunResult],
    *,
    wall_seconds: float | None,
    provenance: Provenance,
    note: str | None = None,
) -> str:
    """The report: the provenance header (the benchmark's, also when re-rendered from its runs) with the setup as
    notes, parameters per model, accuracy mean +- std per task, model and length, and which (task, model) pairs
    reach ``SOLVED`` at 4x the training length. ``note`` is the first note under the header (e.g. how it was
    re-rendered)."""
    groups = _grouped(results)
    notes = [
        *([note] if note else []),
        f"CPU only; {config.workers} worker process(es) x {config.threads} torch thread(s) each. The machine may have "
        "been shared with other work, so the times are upper bounds.",
        f"Seeds: {config.seeds} (parameters and training batches); test sets: seed {config.train.eval_seed}, "
        f"{config.train.eval_sequences} sequences per length, the same for every model.",
        f"Training: AdamW, batch {config.train.batch_size}, peak lr {config.train.learning_rate} (unless the "
        f"model sets its own), {config.train.warmup_steps} warmup steps then cosine to a tenth, clip "
        f"{config.train.grad_clip}, weight decay {config.train.weight_decay}; a fresh batch every step, its length "
        "drawn uniformly from the task's training range.",
        "Wall time of the whole benchmark: "
        + (f"{wall_seconds / 60:.1f} min." if wall_seconds is not None else "not recorded."),
    ]
    lines = [
        "# Synthetic tasks: state tracking, associative recall, nearest-neighbour search",
        "",
        *provenance.markdown(notes=notes),
        "",
        "## Tasks",
        "",
        "| task | parameters | training lengths | steps | test lengths | scored positions |",
        "|---|---|---|---|---|---|",
    ]
    scored_text = {
        "parity": "last (parity of the whole string)",
        "modarith": "last (the answer at `=`)",
        "modarith_brackets": "last (the answer at `=`)",
        "mqar": "every query (its value)",
        "nearest_neighbour": "every query (the nearest item's label)",
        "nearest_neighbour_query_first": "last (the nearest item's label; the query is the first step)",
    }
    for setup in config.tasks:
        low = setup.min_train_length if setup.min_train_length is not None else setup.train_length
        params = ", ".join(f"{k}={v}" for k, v in setup.params.items()) or "defaults"
        curriculum = (
            f" (curriculum: longest grows over {setup.curriculum_steps} steps)" if setup.curriculum_steps else ""
        )
        lines.append(
            f"| {setup.label} | {params} | {low}..{setup.train_length}{curriculum} | "
            f"{setup.steps or config.train.steps} | "
            f"{', '.join(map(str, config.test_lengths(setup)))} | {scored_text.get(setup.name, 'see the task')} |"
        )
    lines += [
        "",
        "## Models",
        "",
        "Parameters per task (input and output layers differ by task); the Transformer's count leaves out the "
        "position embeddings beyond the training length, which never receive a gradient.",
        "",
        "| model | width | blocks | heads | lr | other settings | " + " | ".join(t.label for t in config.tasks) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(config.tasks),
    ]
    for spec in config.models:
        counts = []
        for setup in config.tasks:
            runs = groups.get((setup.label, spec.kind), [])
            counts.append(f"{runs[0].parameters:,}" if runs else "-")
        lr = spec.learning_rate or config.train.learning_rate
        lines.append(
            f"| {spec.kind} | {spec.embedding_dim} | {spec.num_blocks} | {spec.num_heads} | {lr:g} | "
            + f"{_other_settings(spec)} | "
            + " | ".join(counts)
            + " |"
        )
    if any(config.task_overrides.values()):
        lines += [
            "",
            "Per-task model settings (`task_overrides`, on top of the table above; parameters as listed):",
            "",
        ]
        for setup in config.tasks:
            for spec in config.models:
                changes = config.task_overrides.get(setup.label, {}).get(spec.kind)
                if changes:
                    text = ", ".join(f"{k}={v}" for k, v in changes.items())
                    lines.append(f"- {setup.label}, {spec.kind}: {text}")
    lines += [
        "",
        "## Accuracy (mean +- std over seeds)",
        "",
        "The last row of each table is the floor: always answering the test set's most frequent class.",
        "",
    ]
    for setup in config.tasks:
        lengths = config.test_lengths(setup)
        header = [f"T={length} ({m}x)" for length, m in zip(lengths, config.test_multipliers, strict=True)]
        lines += [f"### {setup.label}", "", "| model | " + " | ".join(header) + " | train s/run |"]
        lines.append("|---|" + "---|" * (len(lengths) + 1))
        for spec in config.models:
            runs = groups.get((setup.label, spec.kind), [])
            if not runs:
                continue
            cells = []
            for length in lengths:
                mean, std = mean_std([r.accuracy[length] for r in runs])
                cells.append(f"{mean:.3f} +- {std:.3f}")
            seconds = statistics.fmean(r.train_seconds for r in runs)
            lines.append(f"| {spec.kind} | " + " | ".join(cells) + f" | {seconds:.0f} |")
        floor = [majority_baseline(setup.make(), length, config.train) for length in lengths]
        lines += ["| majority class | " + " | ".join(f"{f:.3f}" for f in floor) + " | - |", ""]
    if config.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in config.notes] + [""]
    lines += _solved_section(config, groups)
    lines += _targets_section(config, groups)
    lines += _kernel_bound_section(config)
    plot = os.path.relpath(Path(config.plot).resolve(), Path(config.out).resolve().parent)
    lines += ["", f"![accuracy against test length]({plot})", ""]
    return "\n".join(lines)


def _solved_section(config: SyntheticBenchmarkConfig, groups: dict[tuple[str, str], list[RunResult]]) -> list[str]:
    if 4 not in config.test_multipliers:
        return []
    lines = [
        f"## Solved at 4x the training length (every seed >= {SOLVED})",
        "",
        "| task | " + " | ".join(spec.kind for spec in config.models) + " |",
        "|---|" + "---|" * len(config.models),
    ]
    for setup in config.tasks:
        length = 4 * setup.train_length
        cells = []
        for spec in config.models:
            runs = groups.get((setup.label, spec.kind), [])
            if not runs:
                cells.append("-")
                continue
            worst = min(r.accuracy[length] for r in runs)
            cells.append(("yes" if worst >= SOLVED else "no") + f" (min {worst:.2f})")
        lines.append(f"| {setup.label} | " + " | ".join(cells) + " |")
    return lines


def _mean_at(groups, task: str, model: str, length: int) -> float | None:
    runs = groups.get((task, model), [])
    return mean_std([r.accuracy[length] for r in runs])[0] if runs and length in runs[0].accuracy else None


def _targets_section(config: SyntheticBenchmarkConfig, groups: dict[tuple[str, str], list[RunResult]]) -> list[str]:
    """The targets, each checked against this run's numbers (mean over seeds unless said otherwise)."""
    kinds = [spec.kind for spec in config.models]
    tasks = {setup.name: setup for setup in config.tasks}
    lines = ["", "## Targets, checked on these numbers", ""]
    slstm_models = [k for k in kinds if k in ("xlstm[0:1]", "xlstm[1:1]")]
    for name in ("parity", "modarith"):
        setup = tasks.get(name)
        if setup is None or 4 not in config.test_multipliers or "gpt2" not in kinds or not slstm_models:
            continue
        length = 4 * setup.train_length
        worst = {k: min((r.accuracy[length] for r in groups.get((setup.label, k), [])), default=None) for k in kinds}
        parts = [f"{k} min over seeds {worst[k]:.3f}" for k in [*slstm_models, "gpt2"] if worst[k] is not None]
        met = all(worst[k] is not None and worst[k] >= SOLVED for k in slstm_models)
        met = met and worst["gpt2"] is not None and worst["gpt2"] < SOLVED
        lines.append(
            f"- {name} at 4x (T={length}): sLSTM-containing models >= {SOLVED} on every seed and the Transformer "
            f"not: **{'met' if met else 'not met'}** ({'; '.join(parts)})."
        )
    setup = tasks.get("mqar")
    if setup is not None and "xlstm[1:0]" in kinds and "lstm" in kinds:
        pairs = []
        for length in config.test_lengths(setup):
            m, lstm = _mean_at(groups, setup.label, "xlstm[1:0]", length), _mean_at(groups, setup.label, "lstm", length)
            if m is not None and lstm is not None:
                pairs.append((length, m, lstm))
        met = bool(pairs) and all(m > lstm for _, m, lstm in pairs)
        detail = "; ".join(f"T={length}: {m:.3f} vs {lstm:.3f}" for length, m, lstm in pairs)
        lines.append(
            f"- mqar: mLSTM (xlstm[1:0]) above the LSTM at every length: **{'met' if met else 'not met'}** ({detail})."
        )
    xlstm_kinds = [k for k in kinds if k.startswith("xlstm")]
    layouts = (
        ("nearest_neighbour", "query after the set: the target as worded"),
        ("nearest_neighbour_query_first", "query first: the thesis's layout, not the target's wording"),
    )
    for name, layout in layouts:
        setup = tasks.get(name)
        if setup is None or not xlstm_kinds or "gpt2" not in kinds:
            continue
        rows = []
        for length in config.test_lengths(setup):
            best = max(xlstm_kinds, key=lambda k: _mean_at(groups, setup.label, k, length) or -1.0)
            x, g = _mean_at(groups, setup.label, best, length), _mean_at(groups, setup.label, "gpt2", length)
            if x is not None and g is not None:
                rows.append((length, best, x, g))
        if not rows:
            continue
        met = [x >= g for _, _, x, g in rows]
        verdict = "met at every length" if all(met) else ("met at no length" if not any(met) else "met at some lengths")
        detail = "; ".join(f"T={length}: {best} {x:.3f} vs gpt2 {g:.3f}" for length, best, x, g in rows)
        lines.append(f"- {name} ({layout}): the best xLSTM at least matches the Transformer: **{verdict}** ({detail}).")
    return lines


def _kernel_bound_section(config: SyntheticBenchmarkConfig) -> list[str]:
    """Ideal kernel readouts on the query-last nearest-neighbour test sets (see kernel_bound.py)."""
    from xlstm_seq.config import mLSTMLayerConfig
    from xlstm_seq_bench.synthetic.kernel_bound import kernel_bound_lines

    setup = next((s for s in config.tasks if s.name == "nearest_neighbour"), None)
    if setup is None:
        return []
    widths = {}
    for model in config.models:
        if model.kind in ("xlstm[1:0]", "xlstm[1:1]"):
            spec = config.spec_for(setup, model)
            widths[spec.kind] = int(round(mLSTMLayerConfig().proj_factor * spec.embedding_dim)) // spec.num_heads
    return kernel_bound_lines(setup.make(), config.test_lengths(setup), config.train, setup.label, widths)


def capture_provenance(config: SyntheticBenchmarkConfig, command: str) -> Provenance:
    """The benchmark's provenance, taken as it starts: this CPU, with every worker's threads counted as busy."""
    busy = config.workers * config.threads
    device = f"{cpu_model()} (CPU, {visible_cores()} cores visible, {busy} busy thread{'s' if busy > 1 else ''})"
    return Provenance.capture(command, threads=busy, device=device)


def provenance_from_tags(tags: dict[str, str], command: str) -> Provenance:
    """The benchmark's provenance as its summary run was tagged (``Provenance.tags``), for a report re-rendered from
    the runs. A run tagged before those tags existed gives this machine's provenance with the run's ``command``
    and git commit (its ``git.*`` tags).

    The threads are left out: whether the cores were shared would otherwise be judged by this machine's load now.
    """
    if "provenance.command" in tags:
        prefix = "provenance.version."
        versions = {k.removeprefix(prefix): v for k, v in tags.items() if k.startswith(prefix)}
        first = ("python", "torch", "numpy", "xlstm-seq")  # the order Provenance.capture writes them in
        order = sorted(versions, key=lambda name: (first.index(name) if name in first else len(first), name))
        return Provenance(
            command=tags["provenance.command"],
            revision=tags.get("provenance.revision", "unknown"),
            started=tags.get("provenance.started", "unknown"),
            device=tags.get("provenance.device", "unknown"),
            host=tags.get("provenance.host", "unknown"),
            versions={name: versions[name] for name in order},
            load_start=tags.get("provenance.load_start", "n/a"),
            load_end=tags.get("provenance.load_end"),
        )
    provenance = Provenance.capture(command)
    sha = tags.get("git.sha")
    if sha is None:
        return provenance
    dirty = " (uncommitted changes)" if tags.get("git.dirty") == "true" else ""
    return replace(provenance, revision=sha[:7] + dirty if sha != "unknown" else sha + dirty)


def plot_accuracy(config: SyntheticBenchmarkConfig, results: list[RunResult]):
    """Accuracy (mean, with the seeds' spread as a band) against test length, one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _grouped(results)
    n = len(config.tasks)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.4), squeeze=False)
    for ax, setup in zip(axes[0], config.tasks, strict=True):
        lengths = config.test_lengths(setup)
        for index, spec in enumerate(config.models):
            runs = groups.get((setup.label, spec.kind), [])
            if not runs:
                continue
            stats = [mean_std([r.accuracy[length] for r in runs]) for length in lengths]
            means = [m for m, _ in stats]
            # Different markers and dashes keep models visible where their curves coincide (e.g. all at 1.0).
            style = dict(marker="osD^v"[index % 5], linestyle=["-", "--", "-.", ":"][index % 4], markersize=7 - index)
            ax.plot(lengths, means, label=spec.kind, **style)
            ax.fill_between(lengths, [m - s for m, s in stats], [m + s for m, s in stats], alpha=0.15)
        floor = [majority_baseline(setup.make(), length, config.train) for length in lengths]
        ax.plot(lengths, floor, color="grey", linestyle="--", linewidth=1, label="majority class")
        ax.axvline(setup.train_length, color="grey", linestyle=":", linewidth=1)
        ax.set(xscale="log", xlabel="test length T", title=setup.label, ylim=(0, 1.02))
        ax.set_xticks(lengths, [str(length) for length in lengths])
        ax.minorticks_off()
    axes[0][0].set_ylabel("accuracy (scored positions)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8)
    fig.suptitle(f"accuracy vs test length (vertical line: longest training length; {len(config.seeds)} seeds)")
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    return fig
