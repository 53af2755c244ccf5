"""`xlstm-seq rl compare`: one page comparing several runs of `xlstm-seq rl benchmark` (their results JSON), e.g.
candidate memories on the development seeds: per task the normalised return of each labelled set of runs, then
the POPGym aggregate of each, ranked."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from xlstm_seq.tracking.provenance import Provenance
from xlstm_seq_bench.rl.report import RunResult, summarise
from xlstm_seq_bench.rl.suite import aggregate, normalised, return_range, task_name

__all__ = ["compare_markdown", "load_labelled", "run_compare"]


def load_labelled(sources: list[str]) -> dict[str, dict[str, Any]]:
    """``label=path.json`` pairs -> label -> {results, random_returns, commands}; a label named twice merges its
    files (e.g. one per seed)."""
    merged: dict[str, dict[str, Any]] = {}
    for source in sources:
        label, sep, path = source.partition("=")
        if not sep or not label or not path:
            raise ValueError(f"compare sources look like label=results.json, got {source!r}")
        if not Path(path).is_file():
            raise FileNotFoundError(f"results file {path} does not exist (written beside the benchmark's markdown)")
        data = json.loads(Path(path).read_text())
        entry = merged.setdefault(label, dict(results=[], random_returns={}, commands=[], pages=[]))
        entry["results"] += [RunResult(**r) for r in data["results"]]
        entry["random_returns"].update(data["random_returns"])
        entry["commands"].append(data["provenance"][0] if data.get("provenance") else path)
        entry["pages"].append(Path(path).with_suffix(".md"))
    return merged


def compare_markdown(
    labelled: dict[str, dict[str, Any]], provenance: Provenance, title: str, page_dir: Path | None = None
) -> str:
    """The page: provenance, one row per task with each label's normalised return (mean over its seeds), the
    aggregate of each label (± std over seeds) over its own tasks and over the tasks every label ran (the ranking),
    its mean throughput, and the source commands with a link to each source report that exists (relative to
    ``page_dir``, the folder the page is written to)."""
    labels = list(labelled)
    rows = {label: summarise(entry["results"]) for label, entry in labelled.items()}
    env_ids = list(dict.fromkeys(r["env_id"] for label in labels for r in rows[label]))
    env_ids = [e for e in env_ids if return_range(e) is not None]
    random_returns = {k: v for entry in labelled.values() for k, v in entry["random_returns"].items()}
    lines = [f"# {title}", "", *provenance.markdown(), ""]
    lines += [
        "Normalised final return (each task's known return range mapped onto [-1, 1]), mean over the seeds each "
        "label ran; per-seed values in the source reports.",
        "",
        "| task | " + " | ".join(labels) + " | random policy |",
        "|" + "---|" * (len(labels) + 2),
    ]
    for env_id in env_ids:
        low, high = return_range(env_id)
        cells = []
        for label in labels:
            found = [r for r in rows[label] if r["env_id"] == env_id]
            values = [normalised(v, low, high) for row in found for v in row["per_seed"]]
            cells.append(f"{np.mean(values):.3f}" if values else "not run")
        random = random_returns.get(env_id)
        cells.append(f"{normalised(random, low, high):.3f}" if random is not None else "not run")
        lines.append(f"| {task_name(env_id)} | " + " | ".join(cells) + " |")
    # The aggregate over every task each label ran, and over the tasks all labels ran (comparable across labels).
    common = [e for e in env_ids if all(any(r["env_id"] == e for r in rows[label]) for label in labels)]
    totals = {}
    for label in labels:
        algorithms = list(dict.fromkeys(r["algorithm"] for r in rows[label]))
        if len(algorithms) != 1:
            raise ValueError(f"compare: label {label!r} holds runs of several algorithms {algorithms}; give one each")
        shared_rows = [r for r in rows[label] if r["env_id"] in common]
        speeds = [r.steps_per_second for r in labelled[label]["results"]]
        totals[label] = (aggregate(rows[label], algorithms[0]), aggregate(shared_rows, algorithms[0]), np.mean(speeds))
    lines += [
        "",
        f"| label | aggregate over its tasks (± std over seeds) | tasks | seeds | aggregate over the {len(common)} "
        "tasks every label ran | env-steps/s (mean over runs) |",
        "|---|---|---|---|---|---|",
    ]
    ranked = sorted(labels, key=lambda k: -(totals[k][1]["mean"] if totals[k][1] else -np.inf))
    for label in ranked:
        own, shared, speed = totals[label]
        seeds = ", ".join(map(str, own["seeds"]))
        shared_text = _with_spread(shared) if shared else "-"
        own_text = _with_spread(own)
        lines.append(f"| {label} | {own_text} | {own['tasks']} | {seeds} | {shared_text} | {speed:.0f} |")
    lines += ["", "Sources:", ""]
    for label in labels:
        entry = labelled[label]
        for command, page in zip(entry["commands"], entry.get("pages", [None] * len(entry["commands"])), strict=True):
            link = ""
            if page_dir is not None and page is not None and Path(page).is_file():
                link = f" ([{Path(page).name}]({os.path.relpath(page, page_dir)}))"
            lines.append(f"- {label}{link}: {command}")
    return "\n".join(lines) + "\n"


def _with_spread(total: dict[str, Any]) -> str:
    # One seed has no spread to show.
    spread = f" ± {total['std']:.3f}" if len(total["seeds"]) > 1 else " (one seed)"
    return f"{total['mean']:.3f}{spread}"


def run_compare(sources: list[str], out: str, title: str, command: str) -> str:
    """Reads ``sources`` (``label=results.json``), writes the comparison page to ``out``; returns it."""
    labelled = load_labelled(sources)
    markdown = compare_markdown(labelled, Provenance.capture(command), title, page_dir=Path(out).parent)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(markdown)
    return markdown
