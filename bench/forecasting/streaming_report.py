"""The page of `xlstm-seq forecast streaming` (benchmarks/forecasting/streaming.md) and its figure: test scores of the
streamed stateful forecaster beside the windowed one and the naive forecasts, the validation choice, and the update
cost at two history lengths."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xlstm_seq.tracking.provenance import Provenance, cpu_model, visible_cores

if TYPE_CHECKING:
    from xlstm_seq_bench.forecasting.streaming import CellResult, StreamingConfig

STATEFUL, WINDOWED = "stateful (streamed)", "windowed (XLSTMForecaster defaults)"


def capture_provenance(config: StreamingConfig, command: str | None = None) -> Provenance:
    """The run's provenance, taken as it starts: this CPU with the torch threads and the pandas version."""
    device = f"{cpu_model()} (CPU, {visible_cores()} cores visible), {config.num_threads} torch thread(s)"
    return Provenance.capture(command, packages=("pandas",), threads=config.num_threads, device=device)


def _score_rows(cells: list[CellResult]) -> list[str]:
    rows = ["| data | h | origins x series | method | test MSE | test MAE | fit s |", "|---|---|---|---|---|---|---|"]
    for c in cells:
        for method, s in c.scores.items():
            name = f"{method} ({c.season})" if method == "seasonal naive" else method
            rows.append(f"| {c.data} | {c.h} | {c.origins} x {c.n_series} | {name} | {s['mse']:.4f} | "
                        f"{s['mae']:.4f} | {s['fit_seconds']:.1f} |")  # fmt: skip
    return rows


def _choice_rows(cells: list[CellResult]) -> list[str]:
    rows = ["| data | h | candidate | validation MSE | validation MAE | validation MSE of the baselines | "
            "guardrail fired | fit s | steps | kept |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in cells:
        for i, cand in enumerate(c.candidates):
            baselines = ", ".join(f"{name} {mse:.4f}" for name, mse in cand.baselines.items()) or "-"
            rows.append(f"| {c.data} | {c.h} | {cand.settings} | {cand.val_mse:.4f} | {cand.val_mae:.4f} | "
                        f"{baselines} | {'yes' if cand.fired else 'no'} | {cand.fit_seconds:.1f} | {cand.steps} | "
                        f"{'yes' if i == c.chosen else ''} |")  # fmt: skip
    return rows


def _cost_rows(cells: list[CellResult]) -> list[str]:
    rows = ["| data | series | history (rows per series) | update() per call, µs (median) | per observation, µs | "
            "network step of every series, µs | from-scratch read of the history, ms |",
            "|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in cells:
        for k in c.cost:
            rows.append(f"| {c.data} | {c.n_series} | {k['rows']:.0f} | {k['update_us']:.0f} | "
                        f"{k['per_observation_us']:.0f} | {k['network_us']:.0f} | {k['scratch_ms']:.1f} |")  # fmt: skip
    return rows


def _verdicts(cells: list[CellResult]) -> list[str]:
    lines = []
    for c in cells:
        stateful, windowed = c.scores[STATEFUL]["mse"], c.scores[WINDOWED]["mse"]
        naive = min((s["mse"], m) for m, s in c.scores.items() if m not in (STATEFUL, WINDOWED))
        ratio = 100 * (stateful / windowed - 1)
        word = "worse" if ratio > 0 else "better"
        lines.append(
            f"- {c.data}-{c.h}: the stateful forecaster's test MSE is {abs(ratio):.1f}% {word} than the windowed "
            f"XLSTMForecaster's ({stateful:.4f} vs {windowed:.4f}), and "
            f"{'below' if stateful < naive[0] else 'not below'} the best naive forecast ({naive[1]}, {naive[0]:.4f}). "
            f"One seed each: the spread over seeds was not measured, so a difference of a few percent may be a tie. "
            f"The test split's values have mean {c.test_level[0]:.2f} and maximum {c.test_level[1]:.2f} in units of "
            f"the training rows' std about their mean: the stateful forecaster scales every series once with the "
            f"training statistics, the windowed one re-normalises each window (RevIN)."
        )
        small, large = c.cost[0], c.cost[-1]
        lines.append(
            f"- {c.data}: an update costs {small['per_observation_us']:.0f} µs per observation after "
            f"{small['rows']:.0f} rows and {large['per_observation_us']:.0f} µs after {large['rows']:.0f} rows "
            f"({large['rows'] / small['rows']:.0f}x the history); a from-scratch read grows from "
            f"{small['scratch_ms']:.1f} to {large['scratch_ms']:.1f} ms. Streaming check: update + predict and one "
            f"pass from scratch differ by at most {c.stream_vs_one_pass:.2g} over the test origins; the "
            f"{c.origins - 1} single-row updates of the test split took {c.update_seconds:.1f} s in all."
        )
    return lines


def figure(cells: list[CellResult], path: Path) -> None:
    """Test MSE per cell and method, and the update cost per observation against the history length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    methods = list(cells[0].scores)
    x = np.arange(len(cells))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        axes[0].bar(x + (i - (len(methods) - 1) / 2) * width, [c.scores[method]["mse"] for c in cells], width,
                    label=method)  # fmt: skip
    axes[0].set_xticks(x, [f"{c.data}-{c.h}" for c in cells])
    axes[0].set_ylabel("test MSE (standardised)")
    axes[0].legend(fontsize=7)
    for c in cells:
        rows = [k["rows"] for k in c.cost]
        axes[1].plot(rows, [k["per_observation_us"] for k in c.cost], "o-", label=f"{c.data}: update per observation")
        axes[1].plot(rows, [1e3 * k["scratch_ms"] / c.n_series for k in c.cost], "s--",
                     label=f"{c.data}: from-scratch read per series")  # fmt: skip
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("history (rows per series)")
    axes[1].set_ylabel("µs")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(config: StreamingConfig, cells: list[CellResult], wall: float, provenance: Provenance) -> Path:
    """Writes the markdown page and its PNG; returns the page's path."""
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    figure(cells, png)
    timing = "no other job was busy by the load average, but the machine is shared"
    if provenance.under_load:
        timing = "timings were taken under load: another benchmark ran on this machine's other core"
    lines = [
        "# Streaming forecasts with a stored state",
        "",
        *provenance.markdown([f"seed {config.seed}; whole run {wall / 60:.1f} min; {timing}"]),
        "",
        "StatefulXLSTMForecaster reads each series from its first row and keeps its state; `update(new_rows)` "
        "advances the state by the new rows only and `predict()` forecasts from there. Here it streams over the "
        "test split one row at a time (`predict`, then `update` with the next row of every series, nothing "
        "refitted), beside XLSTMForecaster with the library defaults forecasting each test window from its own "
        "look-back (fitted once, no refit) and the naive forecasts. Every method is scored on the same forecast "
        "origins: every window whose targets lie in the test split of the standard split (ETT 12/4/4 months, "
        "others 70/10/20 %), MSE and MAE on the standardised scale.",
        "",
        f"- stateful: the candidates below, each fitted on the training split with the validation split held out "
        f"(early stopping, best weights kept); the candidate with the lowest validation MSE was kept (no choice saw "
        f"the test split). Common settings: {config.stateful or 'the library defaults'}.",
        f"- windowed: XLSTMForecaster's defaults{' with ' + str(config.windowed) if config.windowed else ''}, "
        f"h and look-back from the cell (the long-horizon grid's look-back), fitted on the same rows with the same "
        f"validation split.",
        "",
        "## Test scores",
        "",
        *_score_rows(cells),
        "",
        *_verdicts(cells),
        "",
        "## Settings chosen on the validation split",
        "",
        "Each fit's guardrail scores the naive (last value) and seasonal naive forecasts on the same validation "
        "origins as the model and warns when the model is not better by MSE (the model is served either way).",
        "",
        *_choice_rows(cells),
        "",
        "## Update cost",
        "",
        f"`replay` sets the history (the first rows of every series), then {config.cost_updates} updates of one "
        f"row per series are timed (median per call; per observation = per call / series). The update reads no "
        f"older row, so its cost does not grow with the history; the from-scratch read (`predict(df=history)`) "
        f"does. Wall-clock times on {config.num_threads} torch thread(s); {timing}. An update call holds the frame "
        f"checks (pandas) and the network's step; the network column times the stack's step of every series from "
        f"the stored state alone.",
        "",
        *_cost_rows(cells),
        "",
        f"![streaming]({png.name})",
        "",
    ]
    out.write_text("\n".join(lines))
    return out
