"""The report of `xlstm-seq forecast benchmark`: the cells it scored, the markdown table beside the published numbers
(benchmarks/forecasting/long_horizon.md) and the summary figure."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from xlstm_seq.devices import resolve_device
from xlstm_seq.forecasting.models import patch_len_for, uses_moving_average, uses_patches
from xlstm_seq.tracking.provenance import Provenance, cpu_model, visible_cores
from xlstm_seq_bench.forecasting.long_horizon_config import LongHorizonConfig, ModelSettings


@dataclass
class Cell:
    """One model on one data set and horizon, over the seeds."""

    dataset: str
    horizon: int
    model: str
    mse: list[float]
    mae: list[float]
    fit_seconds: list[float]
    steps: list[int]
    role: str = "xlstm"
    """"xlstm", "dlinear", "nf_patchtst", "nf_dlinear" or "seasonal_naive"."""
    input_size: int = 0
    """Look-back used."""
    mse_published_windows: list[float] = field(default_factory=list)
    """MSE on the windows the published runs scored (see ``published_test_batch``); empty where not computed."""
    windows: int = 0
    """Windows scored (``mse``); 0 where not recorded."""
    published_windows: int = 0
    """How many of them the published runs scored (``mse_published_windows``); 0 where that does not apply."""


def left_out_windows(cell: Cell, published_mse: float) -> tuple[float, float] | None:
    """What the every-window test asks where the published runs left the last windows out.

    Returns (our MSE on the left-out windows, the MSE on the published windows a model with that left-out error
    would need for an every-window MSE of ``published_mse``), both from the cell's two mean MSEs and window
    counts; None when the cell lacks them or no window was left out.
    """
    n, k = cell.windows, cell.published_windows
    if not (cell.mse and cell.mse_published_windows and 0 < k < n):
        return None
    every, kept = float(np.mean(cell.mse)), float(np.mean(cell.mse_published_windows))
    left_out = (every * n - kept * k) / (n - k)
    return left_out, (published_mse * n - left_out * (n - k)) / k


ROLE_LABELS = {
    "xlstm": "xLSTM (ours)",
    "dlinear": "DLinear (ours)",
    "nf_patchtst": "neuralforecast PatchTST",
    "nf_dlinear": "neuralforecast DLinear",
    "seasonal_naive": "seasonal naive",
}
"""Legend name of each kind of cell; the full model label of each cell stays in the markdown table."""


def summary_bars(config: LongHorizonConfig, cells: list[Cell]) -> dict[str, dict[str, dict[int, float]]]:
    """MSE (mean over seeds) as data set -> bar name -> horizon -> MSE; on the test split with the published
    PatchTST/64 MSE beside it (those are test numbers, so a validation run leaves them out)."""
    bars: dict[str, dict[str, dict[int, float]]] = {}
    for c in cells:
        per_role = bars.setdefault(c.dataset, {})
        per_role.setdefault(ROLE_LABELS.get(c.role, c.role), {})[c.horizon] = float(np.mean(c.mse))
        published = _published(config, "PatchTST/64", c.dataset, c.horizon)
        if published and config.eval_split == "test":
            per_role.setdefault("PatchTST/64 (published)", {})[c.horizon] = published[0]
    return bars


def summary_figure(config: LongHorizonConfig, cells: list[Cell]):
    """One panel per data set (each on its own scale): a bar per model kind at every horizon, lower is better."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = summary_bars(config, cells)
    names = [*ROLE_LABELS.values(), "PatchTST/64 (published)"]
    colours = dict(zip(names, ["tab:blue", "tab:orange", "tab:green", "tab:olive", "tab:gray", "tab:red"], strict=True))
    fig, axes = plt.subplots(1, len(bars), figsize=(3.2 * len(bars), 3.6), squeeze=False)
    for ax, (dataset, per_name) in zip(axes[0], bars.items(), strict=True):
        horizons = sorted({h for values in per_name.values() for h in values})
        shown = [n for n in names if n in per_name]
        width = 0.8 / len(shown)
        for j, name in enumerate(shown):
            x = np.arange(len(horizons)) + j * width - 0.4 + width / 2
            heights = [per_name[name].get(h, np.nan) for h in horizons]
            ax.bar(x, heights, width, label=name, color=colours.get(name))
        ax.set_xticks(np.arange(len(horizons)), [str(h) for h in horizons])
        ax.set(title=dataset, xlabel="horizon")
    axes[0][0].set_ylabel(f"{config.eval_split} MSE (standardised)")
    handles = {label: h for ax in axes[0] for h, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(f"Long-horizon benchmark: {config.eval_split} MSE, lower is better")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    plt.close(fig)
    return fig


def model_label(label: str, s: ModelSettings) -> str:
    if s.model == "dlinear":
        return "DLinear (ours)"
    patch_len = patch_len_for(s.model, s.patch_len)
    stride = f"/{s.patch_stride}" if s.patch_stride not in (None, patch_len) else ""
    patch = f" P{patch_len}{stride}" if uses_patches(s.model, s.mixing) else ""
    ensemble = f", mean of {s.ensemble} seeds" if s.ensemble > 1 else ""
    if s.ensemble > 1 and s.ensemble_variants:
        changes = " / ".join(", ".join(f"{k} {v}" for k, v in d.items()) or "as is" for d in s.ensemble_variants)
        ensemble = f", mean of {s.ensemble} seeds taking in turn: {changes}"
    last = " RevIN-last" if s.revin_subtract_last else ""
    valid = f" early-stopped on {s.valid_loss}" if s.valid_loss not in (None, s.loss) else ""
    trend = f" MA{s.moving_avg}" if s.moving_avg != ModelSettings.moving_avg and uses_moving_average(s.model) else ""
    ema = f" EMA{s.ema_decay}" if s.ema_decay is not None else ""
    fredf = f" FreDF{s.freq_loss_weight}" if s.freq_loss_weight > 0 else ""
    fraug = f" FreqMask{s.augment_freq_mask}" if s.augment_freq_mask > 0 else ""
    decay = f" step-decay{s.horizon_loss_decay}" if s.horizon_loss_decay > 0 else ""
    return (f"{s.model} {s.backbone} {s.mixing}{patch} E{s.embedding_dim}x{s.num_blocks}{trend}{last}{ema}{fredf}"
            f"{decay}{fraug}{valid}{ensemble}")  # fmt: skip


def mean_std(values: list[float], digits: int = 3) -> str:
    """One value as it is; several as "mean ± std" (over seeds)."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def device_words(config: LongHorizonConfig, cpu: str | None = None, cores: int | None = None) -> str:
    """Where every model of the grid trains: the CUDA device, or this CPU (``cpu`` and its visible ``cores``, default
    this machine's) with the grid's torch threads."""
    device = resolve_device(config.device)
    cpu = f"{cpu or cpu_model()} ({cores or visible_cores()} cores visible), {config.num_threads} torch thread(s)"
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device}), every model trained there; CPU {cpu}"
    return f"{cpu}, CPU only"


def capture_provenance(config: LongHorizonConfig, command: str | None = None) -> Provenance:
    """The grid's provenance, taken as it starts (``command``: the line that reruns it; None: this process's): its
    device and torch threads, and the versions of pandas and, where the grid runs it, neuralforecast."""
    timed_peer = config.fit_time_steps > 0 and config.fit_time_peer
    runs_peer = timed_peer or any(b.startswith("nf_") for b in config.baselines)
    packages = ("pandas", "neuralforecast") if runs_peer else ("pandas",)
    return Provenance.capture(command, packages=packages, threads=config.num_threads, device=device_words(config))


def _published(config: LongHorizonConfig, source: str, dataset: str, h: int) -> list[float] | None:
    """[MSE, MAE] that ``source`` ("PatchTST/64", "DLinear") published for ``dataset`` at horizon ``h``, or None."""
    return config.published.get(source, {}).get(dataset, {}).get(h)


def _met(config: LongHorizonConfig, cell: Cell, mse: list[float]) -> str:
    """ "yes"/"no": the xLSTM's mean test MSE (``mse``: every window, or the published windows) at or below the
    published PatchTST/64 MSE; "-" for other rows and where that MSE was not measured."""
    published = _published(config, "PatchTST/64", cell.dataset, cell.horizon)
    if cell.role != "xlstm" or config.eval_split != "test" or not published or not mse:
        return "-"
    return "yes" if round(float(np.mean(mse)), 3) <= published[0] else "no"


def _left_out_section(config: LongHorizonConfig, cells: list[Cell], met: list[str]) -> list[str]:
    """For every xLSTM cell that misses on every window: what the windows the published runs left out cost."""
    rows = []
    for cell, m in zip(cells, met, strict=True):
        published = _published(config, "PatchTST/64", cell.dataset, cell.horizon)
        worked = left_out_windows(cell, published[0]) if m == "no" and published else None
        if worked:
            left_out, needed = worked
            rows.append(
                f"| {cell.dataset} | {cell.horizon} | {cell.windows} | {cell.windows - cell.published_windows} | "
                f"{mean_std(cell.mse_published_windows)} | {left_out:.3f} | {published[0]:.3f} | {needed:.3f} "
                f"({100 * (needed / published[0] - 1):+.0f}%) |"
            )
    if not rows:
        return []
    return [
        "## What met? asks of the windows the published runs left out",
        "",
        "Where ours misses on every window: our MSE on the last windows, which the published runs did not score",
        "(from the two MSE columns and the window counts), and the MSE on the windows they did score that a model",
        "with that error on the last ones would need to reach PatchTST/64's number on every window.",
        "",
        "| data | h | windows | left out | ours, published windows | ours, left-out windows | PatchTST/64 "
        "| needed on the published windows |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def benchmark_markdown(
    config: LongHorizonConfig,
    cells: list[Cell],
    timings: list | None = None,
    provenance: Provenance | None = None,
    minutes: float | None = None,
) -> str:
    """The results table with the published numbers beside ours and whether the xLSTM meets PatchTST/64, under the
    header of ``provenance`` (:func:`capture_provenance` at the start of the run; taken now when None); ``minutes``:
    how long the run had taken when the file was written."""
    provenance = provenance or capture_provenance(config).finish()
    split = config.eval_split
    met = [_met(config, c, c.mse) for c in cells]
    met_published = [_met(config, c, c.mse_published_windows) for c in cells]
    judged = [m for m in met if m != "-"]
    judged_published = [m for m in met_published if m != "-"]
    notes = [f"written {minutes:.1f} min after the run started"] if minutes is not None else []
    lines = [
        "# Long-horizon forecasting benchmark" + ("" if split == "test" else " (validation split: model selection)"),
        "",
        *provenance.markdown(notes),
        "",
        f"MSE/MAE on the standardised scale (training-split statistics), every {split} window of the standard split",
        "unless `max_test_windows` says otherwise.",
        "",
        f"- scored on the {split} split; look-back {config.input_size} (ILI {config.ili_input_size}) unless the "
        f"column L says otherwise; seeds {config.seeds}; "
        f"windows: {'all' if config.max_test_windows is None else f'at most {config.max_test_windows}'}",
        f"- data sets {config.datasets}; horizons {config.horizons} (ILI {config.ili_horizons}); baselines "
        f"{config.baselines}; fit-time steps {config.fit_time_steps}",
        f"- xLSTM settings (grid-wide): {config.xlstm.to_dict()}",
        f"- DLinear (ours) settings (grid-wide): {config.dlinear.to_dict()}",
    ]
    nf_labels = [b for b in config.baselines if b.startswith("nf_")]
    if nf_labels:
        lines.append(f"- neuralforecast: {config.neuralforecast_max_steps} steps, the xLSTM's windows per step and "
                     f"validation split; settings (grid-wide) {config.neuralforecast or 'its defaults'}")  # fmt: skip
    for name, changes in config.per_dataset.items():
        if name in config.datasets:
            lines.append(f"- per-data-set changes, {name}: {changes}")
    if judged:
        lines.append(
            f"- met? = xLSTM test MSE (3 decimals) at or below the published PatchTST/64 MSE: "
            f"{judged.count('yes')} of {len(judged)} cells in this table"
        )
    if judged_published:
        lines.append(
            f"- met, published windows = the same on the windows the published runs scored (like for like): "
            f"{judged_published.count('yes')} of {len(judged_published)} cells"
        )
    if not cells:
        lines += ["", "No grid cell was run (no horizon): this page holds the fit-time comparison only.", ""]
    else:
        lines += [
            "",
            "fit s: our models' fit (training with its validation checks; an ensemble's members summed); "
            "neuralforecast's whole cross_validation call (its fit, then forecasting the scored windows); seasonal "
            "naive has nothing to fit.",
            "",
            "| data | h | L | model | MSE | MAE | fit s | steps | published PatchTST/64 MSE / MAE "
            "| published DLinear MSE / MAE | met? | MSE, published windows | met, published windows |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c, m, mp in zip(cells, met, met_published, strict=True):
            pt = _published(config, "PatchTST/64", c.dataset, c.horizon)
            dl = _published(config, "DLinear", c.dataset, c.horizon)
            pub = [f"{p[0]:.3f} / {p[1]:.3f}" if p else "-" for p in (pt, dl)]
            steps = "/".join(str(s) for s in c.steps)
            lines.append(
                f"| {c.dataset} | {c.horizon} | {c.input_size or '-'} | {c.model} | {mean_std(c.mse)} | "
                f"{mean_std(c.mae)} | {mean_std(c.fit_seconds, 1)} | {steps} | {pub[0]} | {pub[1]} | {m} | "
                f"{mean_std(c.mse_published_windows) if c.mse_published_windows else '-'} | {mp} |"
            )
        lines += [
            "",
            "Published numbers: PatchTST/64 from Nie et al. (ICLR 2023, arXiv 2211.14730) Table 3, look-back 512;",
            "DLinear from Zeng et al. (AAAI 2023) as repeated in PatchTST's Table 3, look-back 336 (cross-checked",
            "against two secondary transcriptions of that table, not the PDF: see published_long_horizon.yaml).",
            "They were trained for many epochs on GPUs; the runs above are CPU runs with the step budgets shown.",
            "The per-data-set changes (`per_dataset`) were chosen by runs of this command with `eval_split=val`",
            "(validation windows), not on the test split. met? compares with PatchTST/64 only.",
            "",
            "MSE, published windows: our MSE on the test windows the published runs scored. PatchTST's (and DLinear's)",
            "test loader drops the last incomplete batch (`drop_last=True`; batch "
            + ", ".join(f"{k} {v}" for k, v in config.published_test_batch.items() if k in config.datasets)
            + "), so their",
            "numbers leave out the last `windows % batch` windows of the split, and so are compared like for like by",
            "met, published windows; met? is the stricter test on every window.",
            "",
        ]
    lines += _left_out_section(config, cells, met)
    if timings:
        name = config.datasets[0]
        lines += [
            f"## Fit time: {config.fit_time_steps} steps, {name}, same look-back, horizon and windows per step",
            "",
            "Wall time of one `fit` call each (ours: every member of the cell's ensemble), no validation split; ours",
            "includes the data checks and the MLflow logging of the run (losses, forecast PNG, saved model) when",
            "tracking is on. A compiled row (torch.compile) includes the process's first compile of each shape,",
            "read from inductor's on-disk cache when an earlier process filled it.",
            "",
            "| h | model | fit wall time (s) | ours / theirs |",
            "|---|---|---|---|",
        ]
        theirs = {h: seconds for h, label, seconds in timings if not label.startswith("xLSTM")}
        for h, label, seconds in timings:
            ratio = f"{seconds / theirs[h]:.2f}" if label.startswith("xLSTM") and h in theirs else ""
            lines.append(f"| {h} | {label} | {seconds:.1f} | {ratio} |")
        lines.append("")
    return "\n".join(lines)
