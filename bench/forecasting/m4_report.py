"""The report of `xlstm-seq forecast m4`: the markdown (benchmarks/forecasting/m4.md) and the figure beside it."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from xlstm_seq.tracking.provenance import Provenance, cpu_model, visible_cores
from xlstm_seq_bench.forecasting.m4_peers import LABELS, PEERS

if TYPE_CHECKING:
    from xlstm_seq_bench.forecasting.m4 import M4Config

PUBLISHED = Path(__file__).with_name("published_m4.yaml")
"""M4's published scores (the source is cited in the file)."""


@functools.lru_cache(maxsize=1)
def published_naive2() -> dict[str, tuple[float, float]]:
    """Naive2 (sMAPE, MASE) on the M4 test set of each group as the competition published them (``PUBLISHED``); the
    report checks that bench/forecasting/m4.py's Naive2 and the library's metrics reproduce them."""
    with PUBLISHED.open() as fh:
        table = yaml.safe_load(fh)["naive2"]
    return {group: (scores["smape"], scores["mase"]) for group, scores in table.items()}


def capture_provenance(config: M4Config, command: str | None = None) -> Provenance:
    """The run's provenance, taken as it starts (``command``: the line that reruns it; None: this process's): this
    CPU with the torch threads and statsforecast jobs, and the versions of pandas and the peers."""
    n = config.num_threads
    device = f"{cpu_model()} (CPU, {visible_cores()} cores visible), {n} torch thread(s) and {n} statsforecast job(s)"
    return Provenance.capture(command, packages=("pandas", "statsforecast", "neuralforecast"), threads=n,
                              device=device)  # fmt: skip


def markdown(config: M4Config, results: dict[str, dict], wall: float, provenance: Provenance) -> str:
    """The report under the header of ``provenance`` (:func:`capture_provenance`, finished); ``wall``: the seconds
    the whole run took."""
    levels = config.level
    lines = [
        "# M4 Hourly and Weekly: a global xLSTM forecaster beside statsforecast, NHITS and M4's naive benchmarks",
        "",
        *provenance.markdown([f"seed {config.random_seed}; whole run {wall / 60:.1f} min"]),
        "- scores: sMAPE (%) and MASE (seasonal period as in M4: 24 hourly, 1 weekly) per series, averaged over "
        "series; OWA = (sMAPE / sMAPE(Naive2) + MASE / MASE(Naive2)) / 2 (lower is better, Naive2 = 1)",
        "- ours: one global model per group, trained on every train series with the last h steps of each held out "
        "for early stopping and conformal calibration; every method forecasts the test horizon from the end of each "
        "train series",
        "- peers: statsforecast's AutoETS, AutoTheta and AutoARIMA fitted per series (season as in M4), with their "
        "own prediction intervals; neuralforecast's NHITS as one global model with its defaults but for a per-window "
        "robust scaler, with our look-back and our step budget (no validation split, no intervals: its default loss "
        "is MAE)",
        "- fit s: wall-clock seconds; ours: the training loop; statsforecast: fitting and forecasting every series "
        "(one call, with the compiling of its numba code when the model first runs in the process); NHITS: the fit "
        "call",
        f"- intervals: share of the test values inside the {'/'.join(map(str, levels))} % intervals, and M4's MSIS "
        "of the 95 % intervals (width plus 40 times each miss, scaled like MASE, averaged over series; lower is "
        "better). Ours, one model, the same median three ways: split-conformal (symmetric about the median, "
        "calibrated on the held-out windows), CQR (the quantile heads conformalized on the same windows) and the raw "
        "quantile heads (trained with the pinball loss)",
    ]
    if config.max_series is not None:
        lines.append(f"- only the first {config.max_series} series of each group (max_series): NOT the full M4 sets")
    lines += ["", f"![OWA and interval scores per group]({Path(config.out).with_suffix('.png').name})"]
    for group, result in results.items():
        facts = result["facts"]
        s = facts["settings"]
        lines += [
            "",
            f"## {group.title()} ({facts['series']} series, h = {facts['h']})",
            "",
            f"Ours: {config.model} / {config.backbone}: look-back {s['input_size']}, patch {s['patch_len']}, "
            f"{s['embedding_dim']}-dim, {s['num_blocks']} block(s), batch {s['batch_size']}, lr {s['learning_rate']}, "
            f"{facts['steps']} of at most {s['max_steps']} steps (early stopping patience "
            f"{s['early_stop_patience_steps']} checks of {s['val_check_steps']} steps).",
            "",
            _peers_sentence(s["peers"]),
            "",
            _naive2_check(group, result["rows"], config.max_series),
            "",
            "| method | package | sMAPE | MASE | OWA | fit s |",
            "|---|---|---|---|---|---|",
        ]
        for row in result["rows"]:
            secs = f"{row['fit_seconds']:.1f}" if row["fit_seconds"] is not None else "-"
            if row["failure"] is not None:
                lines.append(f"| {row['method']} | {row['package']} | {row['failure']} | - | - | - |")
                continue
            lines.append(f"| {row['method']} | {row['package']} | {row['smape']:.3f} | {row['mase']:.3f} | "
                         f"{row['owa']:.3f} | {secs} |")  # fmt: skip
        interval_rows = [(row, kind, v) for row in result["rows"] for kind, v in row["intervals"].items()]
        if interval_rows:
            lines += [
                "",
                "| method | intervals | " + " | ".join(f"{lv} % cover" for lv in levels)
                + (" | MSIS 95" if 95 in levels else "") + " |",
                "|---|---|" + "---|" * (len(levels) + (95 in levels)),
            ]  # fmt: skip
            for row, kind, v in interval_rows:
                cells = [f"{v[str(lv)]:.3f}" for lv in levels] + ([f"{v['msis']:.3f}"] if 95 in levels else [])
                lines.append(f"| {row['method']} | {_KIND_WORDS.get(kind, kind)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Notes:",
        "- The settings in configs/forecasting/m4.yaml were picked after two shorter probes on the same data "
        "(a 1-block 32-dim model for 100 steps, then a 2-block 64-dim model for 1500 steps on Hourly); the test "
        "horizon was scored in those probes too, so the choice is not blind. The peers run with their defaults (NHITS "
        "with the scaler above); "
        "the naive baselines have nothing to tune.",
        "- Our conformal scores come from the same held-out windows that picked the early-stopping checkpoint, "
        "which makes them slightly optimistic.",
        "",
    ]
    return "\n".join(lines)


_KIND_WORDS = {"conformal": "split-conformal", "cqr": "CQR", "quantile": "quantile heads", "model": "the model's own"}


def _peers_sentence(peers: list[str]) -> str:
    ran = ", ".join(f"{LABELS[p][0]} ({LABELS[p][1]})" for p in peers) or "none"
    left_out = [LABELS[p][0] for p in PEERS if p not in peers]
    why = f"; left out here: {', '.join(left_out)} (see the group's `peers` in the config)" if left_out else ""
    return f"Peers run: {ran}{why}."


def _naive2_check(group: str, rows: list[dict], max_series: int | None) -> str:
    """A sentence comparing this run's Naive2 with the published one (only for full groups)."""
    if max_series is not None:
        return "Naive2 check: not made, since only a subset of the series was scored (max_series)."
    row = next(r for r in rows if r["method"] == "Naive2")
    smape_pub, mase_pub = published_naive2()[group]
    same = abs(row["smape"] - smape_pub) < 5e-4 and abs(row["mase"] - mase_pub) < 5e-4
    return (
        f"Naive2 check: published sMAPE {smape_pub:.3f}, MASE {mase_pub:.3f}; this run "
        f"{row['smape']:.3f}, {row['mase']:.3f} ({'reproduced' if same else 'NOT reproduced'})."
    )


def figure(results: dict[str, dict]):
    """One column per group: OWA of every method that ran (top; Naive2 = 1) and the 95 % MSIS of every interval
    (bottom); lower is better in both, ours in blue."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(6.5 * len(results), 7.5), squeeze=False)
    for col, (group, result) in enumerate(results.items()):
        rows = [r for r in result["rows"] if r["failure"] is None]
        ours = [r["package"] == "xlstm-seq" for r in rows]
        ax = axes[0][col]
        ax.barh([r["method"] for r in rows], [r["owa"] for r in rows],
                color=["tab:blue" if o else "0.6" for o in ours])  # fmt: skip
        ax.axvline(1.0, color="k", lw=0.8, ls="--")
        ax.invert_yaxis()
        ax.set(title=f"M4 {group}: OWA (Naive2 = 1), lower is better", xlabel="OWA")
        spans = [(f"{r['method']}, {_KIND_WORDS.get(k, k)}", v["msis"], r["package"] == "xlstm-seq")
                 for r in rows for k, v in r["intervals"].items() if "msis" in v]  # fmt: skip
        ax = axes[1][col]
        if spans:
            ax.barh([s[0] for s in spans], [s[1] for s in spans], color=["tab:blue" if s[2] else "0.6" for s in spans])
            ax.invert_yaxis()
        ax.set(title=f"M4 {group}: MSIS of the 95 % intervals, lower is better", xlabel="MSIS")
    fig.tight_layout()
    plt.close(fig)
    return fig
