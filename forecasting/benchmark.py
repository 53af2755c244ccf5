"""`xlstm-seq forecast benchmark`: the long-horizon benchmark (ETTh1/2, ETTm1, Weather, ILI).

For each data set and horizon it fits the xLSTM forecaster, our DLinear and (when the ``benchmark`` extra is
installed and asked for) neuralforecast's PatchTST and DLinear on the same windows, scores every test
window of the standard split with MSE and MAE on the standardised scale, adds a seasonal-naive baseline,
and prints the numbers next to the published ones. Every model fit is one MLflow run; the table goes to
``benchmarks/forecasting.md``.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from xlstm_seq.forecasting.datasets import LONG_HORIZON, LongHorizonData, load_long_horizon
from xlstm_seq.forecasting.metrics import mae, mse, seasonal_naive

from xlstm_seq.config import ConfigMixin
from xlstm_seq.tracking import create_tracker

log = logging.getLogger(__name__)

BASELINES = ("seasonal_naive", "dlinear", "nf_patchtst", "nf_dlinear")


def _published() -> dict[str, dict[str, dict[int, list[float]]]]:
    # PatchTST/64 (look-back 512): Nie et al., ICLR 2023, arXiv 2211.14730, Table 3 (numbers as quoted in issue 5).
    # DLinear (look-back 336): Zeng et al., AAAI 2023, Table 2, as repeated in PatchTST's Table 3; transcribed
    # from memory of the paper by the helper who wrote this file: check them against the paper before citing.
    return {
        "PatchTST/64": {
            "etth1": {96: [0.370, 0.400], 192: [0.413, 0.429], 336: [0.422, 0.440], 720: [0.447, 0.468]},
            "etth2": {96: [0.274, 0.337], 192: [0.341, 0.382], 336: [0.329, 0.384], 720: [0.379, 0.422]},
            "ettm1": {96: [0.293, 0.346], 192: [0.333, 0.370], 336: [0.369, 0.392], 720: [0.416, 0.420]},
            "weather": {96: [0.149, 0.198], 192: [0.194, 0.241], 336: [0.245, 0.282], 720: [0.314, 0.334]},
            "ili": {24: [1.319, 0.754], 36: [1.579, 0.870], 48: [1.553, 0.815], 60: [1.470, 0.788]},
        },
        "DLinear": {
            "etth1": {96: [0.375, 0.399], 192: [0.405, 0.416], 336: [0.439, 0.443], 720: [0.472, 0.490]},
            "etth2": {96: [0.289, 0.353], 192: [0.383, 0.418], 336: [0.448, 0.465], 720: [0.605, 0.551]},
            "ettm1": {96: [0.299, 0.343], 192: [0.335, 0.365], 336: [0.369, 0.386], 720: [0.425, 0.421]},
            "weather": {96: [0.176, 0.237], 192: [0.220, 0.282], 336: [0.265, 0.319], 720: [0.323, 0.362]},
            "ili": {24: [2.215, 1.081], 36: [1.963, 0.963], 48: [2.130, 1.024], 60: [2.368, 1.096]},
        },
    }


@dataclass
class ModelSettings(ConfigMixin):
    """Keyword arguments of one ``XLSTMForecaster`` in the benchmark (h, input_size and seed come from the grid)."""

    model: str = "xlstm_time"
    """"xlstm_time", "xlstm_encoder" or "dlinear"."""
    backbone: str = "mlstm"
    """"mlstm", "slstm" or "mixed"."""
    mixing: str = "variates"
    """"independent" or "variates"."""
    embedding_dim: int = 64
    num_blocks: int = 1
    num_heads: int = 4
    patch_len: int | None = None
    moving_avg: int = 25
    dropout: float = 0.3
    loss: str = "mae"
    """xLSTMTime trains with L1."""
    max_steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    val_check_steps: int = 100
    early_stop_patience_steps: int = 3

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "val_check_steps", "embedding_dim", "num_blocks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def _dlinear_settings() -> ModelSettings:
    return ModelSettings(
        model="dlinear", mixing="independent", dropout=0.0, loss="mse", learning_rate=5e-3, weight_decay=0.0
    )


@dataclass
class LongHorizonConfig(ConfigMixin):
    """The long-horizon benchmark grid; the YAML in configs/forecasting holds the full grid."""

    datasets: list[str] = field(default_factory=lambda: ["etth1", "etth2", "ettm1", "weather", "ili"])
    """Data sets by name (forecasting.datasets.LONG_HORIZON)."""
    horizons: list[int] = field(default_factory=lambda: [96, 192, 336, 720])
    """Horizons for every set but ILI."""
    ili_horizons: list[int] = field(default_factory=lambda: [24, 36, 48, 60])
    """Horizons for ILI."""
    input_size: int = 512
    """Look-back (336 is the other common choice)."""
    ili_input_size: int = 104
    """ILI's look-back: 512 weeks do not fit its 676 training rows (PatchTST used 104 there)."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Seeds of every trained model; the table shows the mean and the spread."""
    xlstm: ModelSettings = field(default_factory=ModelSettings)
    """The xLSTM forecaster."""
    dlinear: ModelSettings = field(default_factory=_dlinear_settings)
    """Our DLinear baseline (same training loop and windows as the xLSTM)."""
    baselines: list[str] = field(default_factory=lambda: ["seasonal_naive", "dlinear"])
    """Any of seasonal_naive, dlinear, nf_patchtst, nf_dlinear (the nf_ ones need neuralforecast)."""
    neuralforecast_max_steps: int = 1000
    """Training steps of the neuralforecast models."""
    fit_time_steps: int = 0
    """When > 0 (and neuralforecast is installed): wall time of ``fit`` for this many steps, our xLSTM against
    neuralforecast's PatchTST, same look-back, horizon and windows per step, on the first data set and horizon."""
    max_test_windows: int | None = None
    """Evaluate on at most this many test windows, evenly spaced (None: all, the papers' protocol)."""
    num_threads: int = 2
    """torch threads."""
    out: str = "benchmarks/forecasting.md"
    """Markdown file written at the end."""
    experiment: str = "xlstm-seq-forecasting-benchmark"
    """MLflow experiment."""
    published: dict[str, Any] = field(default_factory=_published)
    """Published MSE/MAE per model, data set and horizon (see the sources in forecasting/benchmark.py)."""

    def __post_init__(self) -> None:
        if isinstance(self.xlstm, dict):
            self.xlstm = ModelSettings.from_dict(self.xlstm)
        if isinstance(self.dlinear, dict):
            self.dlinear = ModelSettings.from_dict(self.dlinear)
        unknown = [d for d in self.datasets if d not in LONG_HORIZON]
        if unknown:
            raise ValueError(f"unknown data set(s) {unknown}; known: {sorted(LONG_HORIZON)}")
        bad = [b for b in self.baselines if b not in BASELINES]
        if bad:
            raise ValueError(f"unknown baseline(s) {bad}; known: {list(BASELINES)}")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")
        if self.input_size < 1 or self.ili_input_size < 1 or self.num_threads < 1:
            raise ValueError("input_size, ili_input_size and num_threads must be >= 1")


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


def _test_windows(data: LongHorizonData, h: int, limit: int | None) -> tuple[int, int, int]:
    """(end row of the last test window, number of test windows, step between them).

    The first window's targets start at the first test row; with ``limit`` the windows are spread evenly.
    """
    start, end = data.borders["test"]
    n = end - start - h + 1
    if limit is None or n <= limit:
        return end, n, 1
    step = -(-(n - 1) // (limit - 1)) if limit > 1 else n
    n_windows = (n - 1) // step + 1
    return start + (n_windows - 1) * step + h, n_windows, step


def _fit_ours(data, h, L, settings: ModelSettings, seed, config, track):
    from xlstm_seq.forecasting.forecaster import XLSTMForecaster

    end, n_windows, step = _test_windows(data, h, config.max_test_windows)
    df = data.to_long(end, integer_ds=True)
    val_size = data.borders["val"][1] - data.borders["val"][0]
    fc = XLSTMForecaster(
        h=h,
        input_size=L,
        random_seed=seed,
        progress=False,
        track=track,
        experiment=config.experiment,
        **settings.to_dict(),
    )
    # Train on rows before the test part; validate on the validation part (early stopping).
    train = df[df["ds"] < data.borders["test"][0]]
    fc.fit(train, val_size=val_size)
    scores = fc.score_windows(df, n_windows=n_windows, step_size=step)
    return scores["mse"], scores["mae"], fc.fit_seconds_, fc.steps_trained_


def _seasonal_naive(data: LongHorizonData, h: int, L: int, limit: int | None) -> tuple[float, float]:
    _, n_windows, step = _test_windows(data, h, limit)
    origins = data.borders["test"][0] + step * np.arange(n_windows)  # first forecast row of each window
    idx = origins[:, None] + np.arange(-L, 0)  # (n, L)
    history = data.values[idx].transpose(0, 2, 1)  # (n, N, L)
    forecast = seasonal_naive(history, h, min(data.season, L))  # (n, N, h)
    actual = data.values[origins[:, None] + np.arange(h)].transpose(0, 2, 1)  # (n, N, h)
    return mse(actual, forecast), mae(actual, forecast)


def _fit_neuralforecast(data, h, L, name, seed, config):
    """neuralforecast's PatchTST or DLinear on the same split; raises ImportError without the extra."""
    from neuralforecast import NeuralForecast
    from neuralforecast.models import DLinear as NFDLinear
    from neuralforecast.models import PatchTST

    end, n_windows, step = _test_windows(data, h, config.max_test_windows)
    df = data.to_long(end, integer_ds=True)
    val_size = data.borders["val"][1] - data.borders["val"][0]
    # Same windows per step as our models: neuralforecast's batch_size counts series, windows_batch_size windows.
    common = dict(h=h, input_size=L, max_steps=config.neuralforecast_max_steps, random_seed=seed,
                  batch_size=len(data.columns), windows_batch_size=config.xlstm.batch_size,
                  inference_windows_batch_size=256, val_check_steps=config.xlstm.val_check_steps,
                  early_stop_patience_steps=config.xlstm.early_stop_patience_steps, scaler_type="identity",
                  enable_progress_bar=False, enable_model_summary=False, logger=False)  # fmt: skip
    model = PatchTST(**common) if name == "nf_patchtst" else NFDLinear(**common)
    nf = NeuralForecast(models=[model], freq=1)
    started = time.perf_counter()
    cv = nf.cross_validation(df, n_windows=n_windows, step_size=step, val_size=val_size, refit=False)
    seconds = time.perf_counter() - started
    column = [c for c in cv.columns if c not in ("unique_id", "ds", "cutoff", "y")][0]
    return mse(cv["y"], cv[column]), mae(cv["y"], cv[column]), seconds, config.neuralforecast_max_steps


def fit_time_comparison(config: LongHorizonConfig, *, track: bool = True) -> list[tuple[str, float]]:
    """(model, seconds) for ``config.fit_time_steps`` training steps of our xLSTM and of neuralforecast's PatchTST.

    Both see the training rows of the first data set, horizon ``horizons[0]`` (ILI: ``ili_horizons[0]``) and
    the same number of univariate windows per step (our batch of multivariate windows times the channels).
    """
    from xlstm_seq.forecasting.forecaster import XLSTMForecaster

    name = config.datasets[0]
    data = load_long_horizon(name)
    h = config.ili_horizons[0] if name == "ili" else config.horizons[0]
    L = config.ili_input_size if name == "ili" else config.input_size
    train = data.to_long(data.borders["train"][1], integer_ds=True)
    steps, settings = config.fit_time_steps, config.xlstm.to_dict()
    settings.update(max_steps=steps, early_stop_patience_steps=-1)
    windows = config.xlstm.batch_size * (len(data.columns) if config.xlstm.mixing == "variates" else 1)
    fc = XLSTMForecaster(h=h, input_size=L, progress=False, track=track, experiment=config.experiment, **settings)
    started = time.perf_counter()
    fc.fit(train)
    rows = [(f"xLSTM ({_model_label('xlstm', config.xlstm)})", time.perf_counter() - started)]
    from neuralforecast import NeuralForecast
    from neuralforecast.models import PatchTST

    model = PatchTST(h=h, input_size=L, max_steps=steps, batch_size=len(data.columns), windows_batch_size=windows,
                     scaler_type="identity", random_seed=0, enable_progress_bar=False, enable_model_summary=False,
                     logger=False)  # fmt: skip
    started = time.perf_counter()
    NeuralForecast(models=[model], freq=1).fit(train, val_size=0)
    rows.append(("neuralforecast PatchTST (defaults: patch 16, d_model 128, 3 layers)", time.perf_counter() - started))
    return rows


def run_benchmark(config: LongHorizonConfig, *, track: bool = True, out=print) -> list[Cell]:
    """Runs the grid of ``config``; writes ``config.out`` and returns the cells."""
    torch.set_num_threads(config.num_threads)
    cells: list[Cell] = []
    timings = []
    if config.fit_time_steps > 0:
        try:
            timings = fit_time_comparison(config, track=track)
        except ImportError as err:
            out(f"fit-time comparison skipped: neuralforecast is not installed ({err})")
        for label, seconds in timings:
            out(f"fit time, {config.fit_time_steps} steps: {label} {seconds:.1f} s")
    for name in config.datasets:
        data = load_long_horizon(name)
        is_ili = name == "ili"
        horizons = config.ili_horizons if is_ili else config.horizons
        L = config.ili_input_size if is_ili else config.input_size
        for h in horizons:
            models = [("xlstm", config.xlstm)] + (
                [("dlinear", config.dlinear)] if "dlinear" in config.baselines else []
            )
            for label, settings in models:
                cell = Cell(name, h, _model_label(label, settings), [], [], [], [])
                for seed in config.seeds:
                    with create_tracker(config.experiment, run_name=f"{name}-h{h}-{label}-s{seed}", enabled=track,
                                        tags={"benchmark": "long_horizon"}) as tracker:  # fmt: skip
                        result = _fit_ours(data, h, L, settings, seed, config, track)
                        _record(cell, tracker, result, settings.to_dict(), name, h, L, seed)
                    out(f"{name} h={h} {cell.model} seed {seed}: MSE {result[0]:.4f} MAE {result[1]:.4f} "
                        f"fit {result[2]:.1f} s ({result[3]} steps)")  # fmt: skip
                cells.append(cell)
            for label in [b for b in config.baselines if b.startswith("nf_")]:
                cell = Cell(name, h, f"neuralforecast {label[3:]}", [], [], [], [])
                for seed in config.seeds:
                    try:
                        result = _fit_neuralforecast(data, h, L, label, seed, config)
                    except ImportError as err:
                        out(f"{label}: skipped, neuralforecast is not installed ({err}); install the benchmark extra")
                        break
                    with create_tracker(config.experiment, run_name=f"{name}-h{h}-{label}-s{seed}", enabled=track,
                                        tags={"benchmark": "long_horizon"}) as tracker:  # fmt: skip
                        _record(cell, tracker, result, {"model": label}, name, h, L, seed)
                if cell.mse:
                    cells.append(cell)
            if "seasonal_naive" in config.baselines:
                m, a = _seasonal_naive(data, h, L, config.max_test_windows)
                cells.append(Cell(name, h, f"seasonal naive ({data.season})", [m], [a], [0.0], [0]))
            # Written after every horizon so that an interrupted run keeps what it measured.
            Path(config.out).parent.mkdir(parents=True, exist_ok=True)
            Path(config.out).write_text(benchmark_markdown(config, cells, timings))
            summary_figure(config, cells).savefig(Path(config.out).with_suffix(".png"), dpi=110, bbox_inches="tight")
    markdown = benchmark_markdown(config, cells, timings)
    Path(config.out).write_text(markdown)
    if cells:
        figure = summary_figure(config, cells)
        with create_tracker(config.experiment, run_name="summary", enabled=track) as tracker:
            tracker.log_text(markdown, "forecasting.md")
            tracker.log_figure(figure, "summary")
    out(markdown)
    return cells


def summary_figure(config: LongHorizonConfig, cells: list[Cell]):
    """Grouped bars: test MSE of every model per data set and horizon, with the published PatchTST/64 MSE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(dict.fromkeys((c.dataset, c.horizon) for c in cells))
    models = list(dict.fromkeys(c.model for c in cells))
    series = {m: [np.nan] * len(keys) for m in [*models, "PatchTST/64 (published)"]}
    for c in cells:
        series[c.model][keys.index((c.dataset, c.horizon))] = float(np.mean(c.mse))
    for i, (name, h) in enumerate(keys):
        published = config.published.get("PatchTST/64", {}).get(name, {}).get(h)
        series["PatchTST/64 (published)"][i] = published[0] if published else np.nan
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(keys)), 4))
    width = 0.8 / len(series)
    for j, (label, values) in enumerate(series.items()):
        ax.bar(np.arange(len(keys)) + j * width - 0.4 + width / 2, values, width, label=label)
    ax.set_xticks(np.arange(len(keys)), [f"{n}\nh={h}" for n, h in keys])
    ax.set(ylabel="test MSE (standardised)", title="Long-horizon benchmark (lower is better)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


def _model_label(label: str, s: ModelSettings) -> str:
    if s.model == "dlinear":
        return "DLinear (ours)"
    return f"{s.model} {s.backbone} {s.mixing} E{s.embedding_dim}x{s.num_blocks}"


def _record(cell: Cell, tracker, result, params: dict, name: str, h: int, L: int, seed: int) -> None:
    m, a, seconds, steps = result
    cell.mse.append(m)
    cell.mae.append(a)
    cell.fit_seconds.append(seconds)
    cell.steps.append(steps)
    tracker.log_params({**params, "dataset": name, "h": h, "input_size": L, "seed": seed})
    tracker.log_metrics({"test/mse": m, "test/mae": a, "fit/seconds": seconds, "fit/steps": steps})


def _fmt(values: list[float], digits: int = 3) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def _environment() -> dict[str, str]:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).parent,
        )
        sha = sha.stdout.strip() or "unknown"
    except OSError:
        sha = "unknown"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import pandas

    return {"git": sha, "cpu": cpu, "torch": torch.__version__, "pandas": pandas.__version__,
            "python": platform.python_version(), "cores": str(os.cpu_count())}  # fmt: skip


def benchmark_markdown(config: LongHorizonConfig, cells: list[Cell], timings: list | None = None) -> str:
    """The results table with the published numbers beside ours."""
    env = _environment()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Long-horizon forecasting benchmark",
        "",
        "Written by `xlstm-seq forecast benchmark --config configs/forecasting/long_horizon.yaml` (with the overrides",
        "named below). MSE/MAE on the standardised scale (training-split statistics), every test window of the",
        "standard split unless `max_test_windows` says otherwise.",
        "",
        f"- date: {date}; git {env['git']}; device: {env['cpu']} ({env['cores']} cores visible), "
        f"{config.num_threads} torch thread(s), CPU only",
        f"- torch {env['torch']}, pandas {env['pandas']}, python {env['python']}",
        f"- look-back {config.input_size} (ILI {config.ili_input_size}); seeds {config.seeds}; "
        f"test windows: {'all' if config.max_test_windows is None else f'at most {config.max_test_windows}'}",
        f"- data sets {config.datasets}; horizons {config.horizons} (ILI {config.ili_horizons}); baselines "
        f"{config.baselines}; fit-time steps {config.fit_time_steps}",
        f"- xLSTM settings: {config.xlstm.to_dict()}",
        f"- DLinear (ours) settings: {config.dlinear.to_dict()}",
        "",
        "| data | h | model | MSE | MAE | fit s | steps | published PatchTST/64 MSE / MAE "
        "| published DLinear MSE / MAE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        pt = config.published.get("PatchTST/64", {}).get(c.dataset, {}).get(c.horizon)
        dl = config.published.get("DLinear", {}).get(c.dataset, {}).get(c.horizon)
        pub = [f"{p[0]:.3f} / {p[1]:.3f}" if p else "-" for p in (pt, dl)]
        steps = "/".join(str(s) for s in c.steps)
        lines.append(
            f"| {c.dataset} | {c.horizon} | {c.model} | {_fmt(c.mse)} | {_fmt(c.mae)} | {_fmt(c.fit_seconds, 1)} | "
            f"{steps} | {pub[0]} | {pub[1]} |"
        )
    lines += [
        "",
        "Published numbers: PatchTST/64 from Nie et al. (ICLR 2023, arXiv 2211.14730) Table 3, look-back 512;",
        "DLinear from Zeng et al. (AAAI 2023) Table 2 as repeated in PatchTST's Table 3, look-back 336 (see",
        "forecasting/benchmark.py for how they were transcribed). They were trained for many epochs on GPUs;",
        "the runs above are CPU runs with the step budgets shown.",
        "",
    ]
    if timings:
        name = config.datasets[0]
        h = config.ili_horizons[0] if name == "ili" else config.horizons[0]
        lines += [
            f"## Fit time: {config.fit_time_steps} steps, {name}, h={h}, same look-back and windows per step",
            "",
            "Wall time of one `fit` call each, no validation split; ours includes the data checks and the MLflow",
            "logging of the run (losses, forecast PNG, saved model) when tracking is on.",
            "",
            "| model | fit wall time (s) |",
            "|---|---|",
        ]
        lines += [f"| {label} | {seconds:.1f} |" for label, seconds in timings]
        lines.append("")
    return "\n".join(lines)
