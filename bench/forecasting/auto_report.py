"""The page of `xlstm-seq forecast auto` (benchmarks/forecasting/auto.md) and its figure: auto mode beside the
grid-wide defaults and the hand-chosen grid per cell, the targets checked, and the guardrail study."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xlstm_seq.tracking.provenance import Provenance, cpu_model, visible_cores

if TYPE_CHECKING:
    from xlstm_seq_bench.forecasting.auto_study import AutoStudyConfig, CellResult
    from xlstm_seq_bench.forecasting.guardrail_study import GuardrailFit

LABELS = ("defaults", "hand-chosen", "auto")
BUDGET_TARGET_S = 15 * 60


def capture_provenance(config: AutoStudyConfig, command: str | None = None) -> Provenance:
    """The run's provenance, taken as it starts: this CPU with the torch threads, pandas and optuna versions."""
    device = f"{cpu_model()} (CPU, {visible_cores()} cores visible), {config.num_threads} torch thread(s)"
    return Provenance.capture(command, packages=("pandas", "optuna"), threads=config.num_threads, device=device)


def _cell_rows(cells: list[CellResult]) -> list[str]:
    rows = ["| data | h | L | defaults MSE | hand-chosen MSE | auto MSE | auto vs defaults | auto vs hand-chosen | "
            "auto fit s (search + seeds) | trials (complete / pruned) | auto's choice |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in cells:
        s = c.scores
        auto = s["auto"]["mse"]
        hand = s.get("hand-chosen", {}).get("mse")
        choice = str({k: c.best_config[k] for k in ("model", "backbone", "mixing", "loss", "freq_loss_weight",
                      "dropout", "revin_subtract_last", "max_steps") if k in c.best_config})  # fmt: skip
        if _kept_defaults(c):
            choice = "the grid-wide settings (its first trial)"
        if c.chosen_trial is None:
            choice = f"fixed (a recorded choice, no search): {choice}"
        if len(c.confirmation):
            table = c.confirmation
            stats = (table[table["period"] == "validation"].groupby("candidate", sort=False)["score"]
                     .agg(["mean", "std", "size"]))  # fmt: skip
            choice += "; tie check, validation score over {} seeds: {}".format(
                int(stats["size"].iloc[0]),
                ", ".join(f"{name} {row['mean']:.4f} ± {row['std']:.4f}" for name, row in stats.iterrows()),
            )
            earlier = table[table["period"] == "earlier"]
            if len(earlier):
                choice += "; earlier period: " + ", ".join(
                    f"{row.candidate} {row.score:.4f}" for row in earlier.itertuples()
                )
        vs_defaults = 100 * (auto / s["defaults"]["mse"] - 1)
        rows.append(
            f"| {c.dataset} | {c.h} | {c.input_size} | {s['defaults']['mse']:.4f} | "
            f"{'-' if hand is None else f'{hand:.4f}'} | {auto:.4f} | {vs_defaults:+.1f}% | "
            f"{'-' if hand is None else f'{100 * (auto / hand - 1):+.1f}%'} | {s['auto']['seconds']:.0f} | "
            f"{_trial_counts(c)} | {choice} |"
        )
    return rows


def _trial_counts(cell: CellResult) -> str:
    """'complete / pruned' trials of the cell's search; '-' for a fixed choice (no search)."""
    if cell.chosen_trial is None:
        return "-"
    states = cell.trials["state"].value_counts()
    return f"{states.get('COMPLETE', 0)} / {states.get('PRUNED', 0)}"


def _kept_defaults(cell: CellResult) -> bool:
    """Whether auto kept its first trial, the grid-wide settings (``points_to_evaluate="default"``): the best trial,
    or the winner of the tie check."""
    return cell.chosen_trial == 0


def _targets(config: AutoStudyConfig, cells: list[CellResult]) -> list[str]:
    if not cells:
        return ["- no long-horizon cell was run: the auto targets are not checked"]
    searched = [c for c in cells if c.chosen_trial is not None]
    slowest = max((c.scores["auto"]["seconds"] for c in searched), default=0.0)
    worse = [f"{c.dataset}-{c.h}" for c in cells if c.scores["auto"]["mse"] > c.scores["defaults"]["mse"]]
    with_hand = [c for c in cells if "hand-chosen" in c.scores]
    kept = [f"{c.dataset}-{c.h}" for c in cells if f"{c.dataset}-{c.h}" in worse and _kept_defaults(c)]
    budget = (f"- auto budget per cell <= 15 min on this machine: {'met' if slowest <= BUDGET_TARGET_S else 'missed'} "
              f"(slowest cell {slowest / 60:.1f} min, budget {config.time_budget_s / 60:.0f} min for the search, the "
              f"tie check and the seeds' refits)")  # fmt: skip
    if not searched:
        budget = "- auto budget per cell: not checked (fixed choices only, no search)"
    lines = [
        budget,
        f"- auto no worse than the defaults on every cell's test MSE: "
        f"{'met' if not worse else 'missed on ' + ', '.join(worse)} (on the {len(cells)} cells run here only)",
    ]
    if kept:
        lines.append(f"  - {', '.join(kept)}: auto kept the grid-wide settings (its first trial: best on validation, "
                     f"or tied with the best within the seeds' spread), so the gap is that of the seeds (5 separate "
                     f"fits against the defaults' one 5-member ensemble), not of a choice: a tie")  # fmt: skip
    if with_hand:
        ratio = float(np.mean([c.scores["auto"]["mse"] / c.scores["hand-chosen"]["mse"] for c in with_hand]))
        verdict = "met" if ratio <= 1.03 else "missed"
        lines.append(f"- auto within 3% of the hand-chosen grid on average: {verdict} (mean ratio of test MSE "
                     f"{ratio:.3f} over {len(with_hand)} cells run here only)")  # fmt: skip
    lines.append("- the long-horizon cells not in the table above were not run here: the targets are not checked "
                 "there")  # fmt: skip
    return lines


def _guardrail_rows(fits: list[GuardrailFit]) -> list[str]:
    rows = ["| data | fired | served | val: model / best baseline | test MSE: model | test MSE: served | "
            "test MSE: naive | fit s |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for f in fits:
        rows.append(f"| {f.data} | {'yes' if f.fired else 'no'} | {f.served} | {f.val_model:.4g} / "
                    f"{f.val_best_baseline:.4g} ({f.best_baseline}) | {f.test_model:.4g} | {f.test_served:.4g} | "
                    f"{f.test_naive:.4g} | {f.seconds:.1f} |")  # fmt: skip
    return rows


def _guardrail_summary(name: str, fits: list[GuardrailFit]) -> str:
    if not fits:
        return f"- {name}: not run"
    fired = [f for f in fits if f.fired]
    saved = [f.test_model - f.test_served for f in fired]
    helped = sum(s > 0 for s in saved)
    text = f"- {name}: the guardrail fired in {len(fired)} of {len(fits)} fits"
    if fired:
        text += (f"; serving the baseline changed the test MSE by {-np.mean(saved):+.4g} on average over those fits "
                 f"(lower in {helped} of {len(fired)})")  # fmt: skip
    return text


def figure(cells: list[CellResult], fits: list[GuardrailFit], path: Path) -> None:
    """Test MSE per cell (defaults, hand-chosen, auto) and, per guardrail fit, the model's and the served test MSE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    x = np.arange(len(cells))
    for i, label in enumerate(LABELS):
        values = [c.scores.get(label, {}).get("mse", np.nan) for c in cells]
        axes[0].bar(x + (i - 1) * 0.27, values, 0.27, label=label)
    axes[0].set_xticks(x, [f"{c.dataset}-{c.h}" for c in cells])
    axes[0].set_ylabel("test MSE (standardised)")
    axes[0].set_title("long-horizon cells")
    axes[0].legend(fontsize=8)
    if fits:
        model = np.array([f.test_model for f in fits])
        served = np.array([f.test_served for f in fits])
        colours = ["tab:red" if f.fired else "tab:grey" for f in fits]
        axes[1].scatter(model, served, c=colours)
        lim = [min(model.min(), served.min()), max(model.max(), served.max())]
        axes[1].plot(lim, lim, color="0.6", lw=0.8)
        axes[1].set_xscale("log")
        axes[1].set_yscale("log")
        axes[1].set_xlabel("test MSE of the model")
        axes[1].set_ylabel("test MSE of what predict serves")
        axes[1].set_title("guardrail fits (red: fired, baseline served)")
    else:
        axes[1].axis("off")  # no guardrail study in this run
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(config: AutoStudyConfig, cells: list[CellResult], walk_fits: list[GuardrailFit], m4: tuple,
                 wall: float, provenance: Provenance) -> Path:  # fmt: skip
    """Writes the markdown page and its PNG; returns the page's path."""
    m4_fits, m4_used, m4_left = m4
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    figure(cells, walk_fits + m4_fits, png)
    lines = [
        "# Auto mode and the baseline guardrail",
        "",
        *provenance.markdown([f"seed {config.seed}; whole run {wall / 60:.1f} min"]),
        "",
        "## Auto mode beside the grid-wide defaults and the hand-chosen grid",
        "",
        f"Cells run: {', '.join(f'{c.dataset}-{c.h}' for c in cells) or 'none'} (of "
        f"{', '.join(f'{d}-{h}' for d, h in config.cells) or 'none'} planned): {_why_cells(config)}. The other cells "
        "were not run: each costs 10 to 30 minutes per column on this machine.",
        "",
        f"- auto: AutoXLSTMForecaster, a budget of {config.time_budget_s:.0f} s per cell for the search, the tie check "
        f"and the other seeds' refits (the search stops in time for them) and at most {config.num_samples} "
        f"trials per cell, ranked by validation MSE on the standard validation split, trained on the training split "
        f"(refit=False, the grid's protocol); the chosen settings then as the mean of as many seeds as the grid's "
        f"ensemble (5). Space: the "
        f"default space{' with ' + str(config.auto_config) if config.auto_config else ''}.",
        f"- defaults: the grid-wide xLSTM settings of `{config.grid}`; hand-chosen: that file's per-data-set settings "
        "(both the mean of 5 seeds). MSE on the standardised test split, every test window.",
        "- auto fit s: the search (every trial, the guardrail's DLinear), the tie check and the refits of the other "
        "seeds.",
        "- each column is one run (the mean forecast of 5 seeds); the spread over other seed sets was not measured "
        "here, so a difference of a few percent between columns may lie within it (a tie).",
        *_fixed_lines(config),
        "",
        *_cell_rows(cells),
        "",
        "Targets:",
        "",
        *_targets(config, cells),
        "",
        *_guardrail_section(config, walk_fits, m4_fits, m4_used, m4_left),
        f"![auto and guardrail]({png.name})",
        "",
    ]
    out.write_text("\n".join(lines))
    return out


def _fixed_lines(config: AutoStudyConfig) -> list[str]:
    """What a fixed choice is, and the seed set, when the page has any."""
    if not config.fixed_choices:
        return []
    return [f"- fixed: {', '.join(sorted(config.fixed_choices))} ran no search: the auto column fits the settings a "
            f"search already chose (`fixed_choices` in the config) with this page's seed set; seed {config.seed}: "
            f"every column's members take the random seeds seed x 5 + 0..4 (the grid's ensemble of 5)."]  # fmt: skip


def _guardrail_section(config: AutoStudyConfig, walk_fits: list[GuardrailFit], m4_fits: list[GuardrailFit],
                       m4_used: int, m4_left: int) -> list[str]:  # fmt: skip
    """The guardrail study's section: what was fitted, how often the guardrail fired, one row per fit."""
    if not walk_fits and not m4_fits:
        return ["## Guardrail study", "", "Not run for this page (no random-walk sets, no M4 Weekly groups).", ""]
    return [
        "## Guardrail study",
        "",
        'Fits with `fallback="baseline"` on series where the last value is hard to beat. Each fit holds out its last '
        "2h training steps for early stopping and the guardrail (naive, seasonal naive where a season is known, "
        "DLinear); the test windows come after the training rows and no choice saw them.",
        "",
        f"- random walks: {config.random_walks.get('n_sets', 0)} seeded sets of {config.random_walks.get('n_series')} "
        f"Gaussian random walks, {config.random_walks.get('length')} steps each, the last "
        f"{config.random_walks.get('test_windows')} horizons for test; settings "
        f"{config.random_walk_settings} (the library defaults otherwise). Test MSE on the data scale.",
        f"- M4 Weekly: {config.m4_weekly_groups} global fits, each on every {config.m4_weekly_groups}-th series "
        f"({m4_used} series used, {m4_left} shorter than input_size + 3h left out); settings "
        f"{config.m4_weekly_settings}; the M4 test horizon (13 weeks), errors divided by each window's look-back std.",
        _guardrail_summary("random walks", walk_fits),
        _guardrail_summary("M4 Weekly", m4_fits),
        "- the guardrail was never silent where the model lost to the best baseline on validation: every fit whose "
        "validation score was not below the best baseline's fired (checked in each row below: fired = yes exactly "
        f"where model >= best baseline): {_never_silent(walk_fits + m4_fits)}",
        "",
        *_guardrail_rows(walk_fits + m4_fits),
        "",
    ]


def _why_cells(config: AutoStudyConfig) -> str:
    """Why these cells: the default plan's reason, or that the command named them."""
    from xlstm_seq_bench.forecasting.auto_study import AutoStudyConfig

    if [[str(d), int(h)] for d, h in config.cells] == AutoStudyConfig().cells:
        return ("the cheapest horizon of three data sets whose hand-chosen settings differ most (ILI: xlstm_mixer with "
                "sLSTM; ETTh2: channel-independent patches, RevIN on the last value, frequency loss; ETTh1: "
                "xlstm_time_linear with EMA)")  # fmt: skip
    return "the cells named on the command line"


def _never_silent(fits: list[GuardrailFit]) -> str:
    ok = all(f.fired == (f.val_model >= f.val_best_baseline) for f in fits)
    return "holds" if ok else "DOES NOT HOLD"
