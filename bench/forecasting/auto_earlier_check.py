"""`xlstm-seq forecast auto-earlier`: the earlier-period check (``AutoXLSTMForecaster(confirm_earlier=True)``) on
the choices that auto-mode searches already made.

Each cell names a search of `xlstm-seq forecast auto` whose tie check kept a best trial over the first (the grid-wide
settings), with both trials' settings as the search ran them. Both are fitted on the rows of the training split
before its validation split (the seed the search gave them) and scored on the last ``val_size`` rows before the
validation split: the library's check, run alone. A best trial that does not score lower than the first there would
have been overruled, and the cell would have served the grid-wide settings. The test split is not read: the
verdict uses training data only, and the report links each cell's page for its test MSEs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xlstm_seq.config import ConfigMixin
from xlstm_seq.forecasting import XLSTMForecaster
from xlstm_seq.forecasting.auto_confirm import earlier_period_rows
from xlstm_seq.forecasting.datasets import load_long_horizon
from xlstm_seq.tracking import create_tracker
from xlstm_seq.tracking.provenance import Provenance, cpu_model, visible_cores

CANDIDATE_KEYS = ("model", "backbone", "mixing", "revin_subtract_last", "patch_len", "embedding_dim", "num_blocks",
                  "dropout", "loss", "freq_loss_weight", "ema_decay", "max_steps", "learning_rate")  # fmt: skip
"""The searched settings a cell's row shows where the two candidates differ."""


@dataclass
class EarlierCheckConfig(ConfigMixin):
    """Settings of `xlstm-seq forecast auto-earlier` (configs/forecasting/auto_earlier_check.yaml)."""

    cells: list[dict[str, Any]] = field(default_factory=list)
    """One mapping per cell: dataset, h, page (its auto report), search_run (the MLflow run of the search),
    chosen_trial, first and chosen (XLSTMForecaster settings of the two trials)."""
    num_threads: int = 1
    out: str = "benchmarks/forecasting/auto_earlier_check.md"
    experiment: str = "xlstm-seq-forecast-auto-earlier"

    def __post_init__(self) -> None:
        need = {"dataset", "h", "page", "first", "chosen"}
        for n, cell in enumerate(self.cells):
            missing = sorted(need - set(cell))
            if missing:
                raise ValueError(f"cells[{n}] lacks {missing}; each cell needs {sorted(need)}")


def check_cell(cell: dict[str, Any]) -> dict[str, Any]:
    """The earlier-period scores of the cell's two candidates and the verdict."""
    data = load_long_horizon(cell["dataset"])
    train = data.to_long(data.borders["test"][0], integer_ds=True)
    val_size = data.borders["val"][1] - data.borders["val"][0]
    records = []
    for label in ("first", "chosen"):
        settings = {**cell[label], "progress": False, "track": False, "guardrail": False, "fallback": "none"}
        number = 0 if label == "first" else cell.get("chosen_trial")
        records.append({"model": XLSTMForecaster(**settings), "number": number})
    started = time.perf_counter()
    rows = earlier_period_rows(records[0], records[1], train, None, val_size)
    if not rows:
        raise ValueError(f"{cell['dataset']}-{cell['h']}: the training split is too short for an earlier period")
    first_score, chosen_score = (row["score"] for row in rows)
    return {"first": first_score, "chosen": chosen_score, "kept": chosen_score < first_score,
            "seconds": time.perf_counter() - started, "val_size": val_size}  # fmt: skip


def _difference(cell: dict[str, Any]) -> str:
    first, chosen = cell["first"], cell["chosen"]
    return ", ".join(f"{k} {first.get(k)} -> {chosen.get(k)}" for k in CANDIDATE_KEYS if first.get(k) != chosen.get(k))


def write_report(config: EarlierCheckConfig, results: list[dict[str, Any]], provenance: Provenance) -> Path:
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = ["| data | h | the chosen trial changes (first -> chosen) | earlier period MSE: first | chosen | verdict "
            "| fit s | cell's page |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for cell, r in zip(config.cells, results, strict=True):
        verdict = "kept (it wins there too)" if r["kept"] else "overruled: the grid-wide settings would be served"
        page = Path(cell["page"])
        rows.append(f"| {cell['dataset']} | {cell['h']} | {_difference(cell)} | {r['first']:.4f} | {r['chosen']:.4f} "
                    f"| {verdict} | {r['seconds']:.0f} | [{page.name}]({page.name}) |")  # fmt: skip
    overruled = [f"{c['dataset']}-{c['h']}" for c, r in zip(config.cells, results, strict=True) if not r["kept"]]
    lines = [
        "# Auto mode: the earlier-period check on the searches' choices",
        "",
        *provenance.markdown(),
        "",
        "Each cell is a search of `xlstm-seq forecast auto` whose tie check (3 seeds on the validation split) kept a "
        "best trial over the first trial, the grid-wide settings. Here both trials' settings (as the search ran them, "
        "seed 0) are fitted on the training "
        "split's rows before its validation split and scored (MSE, standardised, every window) on the last "
        "`val_size` rows before the validation split: `AutoXLSTMForecaster(confirm_earlier=True)`'s check. A chosen "
        "trial that does not score lower there is overruled. Only training data is read; the test MSEs are on each "
        "cell's page.",
        "",
        *rows,
        "",
        f"Overruled: {', '.join(overruled) or 'none'} ({len(overruled)} of {len(results)} cells).",
        "",
    ]
    out.write_text("\n".join(lines))
    return out


def run_earlier_check(config: EarlierCheckConfig, *, track: bool = True, command: str | None = None) -> Path:
    """Checks the cells one by one, rewriting the page after each (one MLflow run, a metric per cell and
    candidate); returns the page's path."""
    torch.set_num_threads(config.num_threads)
    device = f"{cpu_model()} (CPU, {visible_cores()} cores visible), {config.num_threads} torch thread(s)"
    provenance = Provenance.capture(command, packages=("pandas",), threads=config.num_threads, device=device)
    results: list[dict[str, Any]] = []
    page = write_report(config.replace(cells=[]), results, provenance.finish())
    with create_tracker(config.experiment, run_name="auto-earlier-check", enabled=track,
                        tags=provenance.tags()) as tracker:  # fmt: skip
        tracker.log_params({"cells": [f"{c['dataset']}-{c['h']}" for c in config.cells]})
        for cell in config.cells:
            results.append(check_cell(cell))
            r, name = results[-1], f"{cell['dataset']}-{cell['h']}"
            tracker.log_metrics({f"{name}/earlier_mse_first": r["first"], f"{name}/earlier_mse_chosen": r["chosen"],
                                 f"{name}/kept": float(r["kept"])})  # fmt: skip
            print(f"{name}: earlier period first {r['first']:.4f}, chosen {r['chosen']:.4f} "
                  f"({'kept' if r['kept'] else 'overruled'}, {r['seconds']:.0f} s)", flush=True)  # fmt: skip
            page = write_report(config.replace(cells=config.cells[: len(results)]), results, provenance.finish())
        tracker.log_artifact(page)
    return page
