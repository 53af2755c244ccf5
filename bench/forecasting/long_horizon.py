"""`xlstm-seq forecast benchmark`: the long-horizon benchmark (ETTh1/2, ETTm1, Weather, ILI).

For each data set and horizon it fits the xLSTM forecaster, our DLinear and (when the suite's ``forecast`` extra is
installed and asked for) neuralforecast's PatchTST and DLinear on the same windows, scores every test
window of the standard split with MSE and MAE on the standardised scale, adds a seasonal-naive baseline,
and prints the numbers next to the published ones. Every model fit is one MLflow run; the table goes to
``benchmarks/forecasting/long_horizon.md``.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from xlstm_seq.devices import resolve_device
from xlstm_seq.forecasting.datasets import LongHorizonData, load_long_horizon
from xlstm_seq.forecasting.metrics import mae, mse, seasonal_naive
from xlstm_seq.tracking import create_tracker
from xlstm_seq_bench.forecasting.long_horizon_config import SCORED_PART, LongHorizonConfig, ModelSettings
from xlstm_seq_bench.forecasting.long_horizon_report import (
    Cell,
    benchmark_markdown,
    capture_provenance,
    model_label,
    summary_figure,
)
from xlstm_seq_bench.forecasting.scoring import score_windows


class FitResult(NamedTuple):
    """One fitted model's scores on the benchmark windows."""

    mse: float
    mae: float
    seconds: float
    steps: int
    mse_published_windows: float | None = None


def _published_windows(config: LongHorizonConfig, name: str, n_windows: int) -> int | None:
    """How many of the first test windows the published runs scored (their loader drops the last incomplete
    batch), or None when that does not apply (validation split, sampled windows, unknown batch, or fewer windows
    than one batch, where such a loader scores none)."""
    batch = config.published_test_batch.get(name)
    if config.eval_split != "test" or config.max_test_windows is not None or not batch:
        return None
    return (n_windows - n_windows % batch) or None


def _test_windows(data: LongHorizonData, h: int, limit: int | None, split: str = "test") -> tuple[int, int, int]:
    """(end row of the last scored window, number of windows, step between them) on ``split``
    ("test", "val" or "val_backtest", which scores the validation windows).

    The first window's targets start at the first row of the split; with ``limit`` the windows are spread evenly.
    """
    start, end = data.borders[SCORED_PART[split]]
    n = end - start - h + 1
    if limit is None or n <= limit:
        return end, n, 1
    step = -(-(n - 1) // (limit - 1)) if limit > 1 else n
    n_windows = (n - 1) // step + 1
    return start + (n_windows - 1) * step + h, n_windows, step


def _fit_ours(data, h, L, settings: ModelSettings, seed, config, track):
    from xlstm_seq.forecasting.forecaster import XLSTMForecaster

    end, n_windows, step = _test_windows(data, h, config.max_test_windows, config.eval_split)
    df = data.to_long(end, integer_ds=True)
    val_size = data.borders["val"][1] - data.borders["val"][0]
    # Train on rows before the test part; validate on the validation part (early stopping). The backtest moves
    # both back by one validation length: its early stopping takes the last val_size rows of the training part.
    cut = data.borders["val" if config.eval_split == "val_backtest" else "test"][0]
    train = df[df["ds"] < cut]
    members = []
    for j, kwargs in enumerate(settings.members(L)):
        fc = XLSTMForecaster(
            h=h,
            random_seed=seed * settings.ensemble + j,
            device=config.device,
            progress=False,
            track=track,
            experiment=config.experiment,
            guardrail=False,  # the grid scores DLinear and seasonal naive itself, on the test windows
            **kwargs,
        )
        members.append(fc.fit(train, val_size=val_size))
    scores = score_windows(members[0], df, n_windows=n_windows, step_size=step, ensemble_with=members[1:])
    kept = _published_windows(config, data.name, n_windows)
    published = None
    if kept is not None:
        # The first `kept` windows (step 1): the same frame cut where the last kept window's targets end.
        cut = data.to_long(end - (n_windows - kept), integer_ds=True)
        published = score_windows(members[0], cut, n_windows=kept, ensemble_with=members[1:])["mse"]
    return FitResult(scores["mse"], scores["mae"], sum(m.fit_seconds_ for m in members),
                     sum(m.steps_trained_ for m in members), published)  # fmt: skip


def _seasonal_naive(data: LongHorizonData, h: int, L: int, limit: int | None, split: str = "test"):
    """(MSE, MAE) of repeating the last season, on the same windows as the trained models."""
    _, n_windows, step = _test_windows(data, h, limit, split)
    origins = data.borders[SCORED_PART[split]][0] + step * np.arange(n_windows)  # first forecast row of each window
    idx = origins[:, None] + np.arange(-L, 0)  # (n, L)
    history = data.values[idx].transpose(0, 2, 1)  # (n, N, L)
    forecast = seasonal_naive(history, h, min(data.season, L))  # (n, N, h)
    actual = data.values[origins[:, None] + np.arange(h)].transpose(0, 2, 1)  # (n, N, h)
    return mse(actual, forecast), mae(actual, forecast)


def _fit_neuralforecast(data, h, L, name, seed, config, xlstm: ModelSettings):
    """neuralforecast's PatchTST or DLinear on the same split, with as many univariate windows per step as
    ``xlstm`` trains on; raises ImportError without the extra."""
    from neuralforecast import NeuralForecast
    from neuralforecast.models import DLinear as NFDLinear
    from neuralforecast.models import PatchTST

    if config.eval_split != "test":
        raise ValueError(
            f"the neuralforecast baselines are scored on the test split only, eval_split={config.eval_split!r}"
        )
    end, n_windows, step = _test_windows(data, h, config.max_test_windows)
    df = data.to_long(end, integer_ds=True)
    val_size = data.borders["val"][1] - data.borders["val"][0]
    # Same univariate windows per step as our model: neuralforecast's batch_size counts series, windows_batch_size
    # the windows drawn from them; ours draws batch_size windows of every channel when it mixes variates.
    common = dict(h=h, input_size=L, max_steps=config.neuralforecast_max_steps, random_seed=seed,
                  batch_size=len(data.columns), windows_batch_size=_univariate_windows(xlstm, data),
                  inference_windows_batch_size=256, val_check_steps=config.xlstm.val_check_steps,
                  early_stop_patience_steps=config.xlstm.early_stop_patience_steps, scaler_type="identity",
                  enable_progress_bar=False, enable_model_summary=False, logger=False,
                  **lightning_device(resolve_device(config.device)))  # fmt: skip
    model_class = PatchTST if name == "nf_patchtst" else NFDLinear
    settings = config.neuralforecast_kwargs(data.name, name)
    # The models pass unknown names on to Lightning's Trainer, which would reject them only once fitting starts.
    import pytorch_lightning as pl

    known = set(inspect.signature(model_class).parameters) | set(inspect.signature(pl.Trainer).parameters)
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"neuralforecast settings of {name} on {data.name}: unknown argument(s) {unknown}")
    kwargs = {**common, **settings}
    model = model_class(**kwargs)
    nf = NeuralForecast(models=[model], freq=1)
    started = time.perf_counter()
    cv = nf.cross_validation(df, n_windows=n_windows, step_size=step, val_size=val_size, refit=False)
    seconds = time.perf_counter() - started
    column = [c for c in cv.columns if c not in ("unique_id", "ds", "cutoff", "y")][0]
    kept = _published_windows(config, data.name, n_windows)
    published = None
    if kept is not None:
        # The first `kept` forecast origins, as for our models: the windows the published runs scored.
        first = np.sort(cv["cutoff"].unique())[:kept]
        cut = cv[cv["cutoff"].isin(first)]
        published = mse(cut["y"], cut[column])
    return FitResult(mse(cv["y"], cv[column]), mae(cv["y"], cv[column]), seconds, _steps_trained(nf.models[0], kwargs),
                     published)  # fmt: skip


def _steps_trained(model, kwargs: dict[str, Any]) -> int:
    """Training steps a fitted neuralforecast model took (early stopping can end before max_steps): its training
    step logs (global step before the update, loss) once per step."""
    trajectory = getattr(model, "train_trajectories", None)
    return int(trajectory[-1][0]) + 1 if trajectory else int(kwargs["max_steps"])


def _univariate_windows(settings: ModelSettings, data: LongHorizonData) -> int:
    """Univariate windows in one training batch of ours: a batch of every channel when mixing variates."""
    return settings.batch_size * (len(data.columns) if settings.mixing == "variates" else 1)


def fit_time_comparison(config: LongHorizonConfig, *, track: bool = True) -> list[tuple[int, str, float]]:
    """(horizon, model, seconds) for ``config.fit_time_steps`` training steps of our xLSTM and of neuralforecast's
    PatchTST at each of ``config.fit_time_cells()``.

    Both see the training rows of the first data set, the look-back of the grid and the same number of univariate
    windows per step (our batch of multivariate windows times the channels); ours trains with that cell's settings,
    once per ``config.fit_time_compile`` entry; PatchTST only when ``config.fit_time_peer``.
    """
    from xlstm_seq.forecasting.forecaster import XLSTMForecaster

    if config.fit_time_peer:
        from neuralforecast import NeuralForecast
        from neuralforecast.models import PatchTST

    cells = config.fit_time_cells()
    name = cells[0][0]  # every fit-time cell is on the first data set: load it once
    data = load_long_horizon(name)
    train = data.to_long(data.borders["train"][1], integer_ds=True)
    steps = config.fit_time_steps
    rows = []
    for _, h in cells:
        L, xlstm, _ = config.settings_for(name, h)
        windows = _univariate_windows(xlstm, data)
        seen: set[Any] = set()
        for compile_setting in config.fit_time_compile:
            started = time.perf_counter()
            for j, settings in enumerate(xlstm.members(L)):  # an ensemble's fit time is that of all its members
                settings.update(max_steps=steps, early_stop_patience_steps=-1)
                fc = XLSTMForecaster(h=h, random_seed=j, device=config.device, progress=False, track=track,
                                     experiment=config.experiment, compile=compile_setting, **settings)  # fmt: skip
                fc.fit(train)
            path = {True: ", compiled", False: ", eager", "auto": ""}[compile_setting]
            path += ", again in the same process" if compile_setting in seen else ""
            seen.add(compile_setting)
            rows.append((h, f"xLSTM ({model_label('xlstm', xlstm)}{path})", time.perf_counter() - started))
        if not config.fit_time_peer:
            continue
        model = PatchTST(h=h, input_size=L, max_steps=steps, batch_size=len(data.columns), windows_batch_size=windows,
                         scaler_type="identity", random_seed=0, enable_progress_bar=False, enable_model_summary=False,
                         logger=False, **lightning_device(resolve_device(config.device)))  # fmt: skip
        started = time.perf_counter()
        NeuralForecast(models=[model], freq=1).fit(train, val_size=0)
        seconds = time.perf_counter() - started
        rows.append((h, "neuralforecast PatchTST (defaults: patch 16, d_model 128, 3 layers)", seconds))
        with create_tracker(config.experiment, run_name=f"fit-time-{name}-h{h}-nf_patchtst", enabled=track,
                            tags={"benchmark": "long_horizon_fit_time"}) as tracker:  # fmt: skip
            tracker.log_params({"model": "nf_patchtst", "dataset": name, "h": h, "input_size": L, "steps": steps,
                                "windows_batch_size": windows})  # fmt: skip
            tracker.log_metrics({"fit/seconds": seconds})
    return rows


def run_benchmark(
    config: LongHorizonConfig, *, track: bool = True, out=print, command: str | None = None
) -> list[Cell]:
    """Runs the grid of ``config``; writes ``config.out`` (naming ``command``, the command line that ran it, when
    given) and returns the cells."""
    # The revision that runs, even if the checkout changes during a long grid.
    provenance, started = capture_provenance(config, command), time.perf_counter()
    torch.set_num_threads(config.num_threads)
    cells: list[Cell] = []
    timings = []
    if config.fit_time_steps > 0:
        try:
            timings = fit_time_comparison(config, track=track)
        except ImportError as err:
            out(f"fit-time comparison skipped: neuralforecast is not installed ({err})")
        for h, label, seconds in timings:
            out(f"fit time, {config.fit_time_steps} steps, h={h}: {label} {seconds:.1f} s")
    for name in config.datasets:
        data = load_long_horizon(name)
        horizons = config.ili_horizons if name == "ili" else config.horizons
        for h in horizons:
            L, xlstm, dlinear = config.settings_for(name, h)
            n_windows = _test_windows(data, h, config.max_test_windows, config.eval_split)[1]
            counts = {"windows": n_windows, "published_windows": _published_windows(config, name, n_windows) or 0}
            models = [("xlstm", xlstm)] + ([("dlinear", dlinear)] if "dlinear" in config.baselines else [])
            for label, settings in models:
                cell = Cell(name, h, model_label(label, settings), [], [], [], [], label, L, **counts)
                tags = {"benchmark": "long_horizon", "split": config.eval_split}
                for seed in config.seeds:
                    with create_tracker(config.experiment, run_name=f"{name}-h{h}-{label}-s{seed}", enabled=track,
                                        tags=tags) as tracker:  # fmt: skip
                        result = _fit_ours(data, h, L, settings, seed, config, track)
                        _record(cell, tracker, result, settings.to_dict(), name, h, L, seed, config.eval_split)
                    out(f"{name} h={h} {cell.model} seed {seed}: {config.eval_split} MSE {result[0]:.4f} "
                        f"MAE {result[1]:.4f} fit {result[2]:.1f} s ({result[3]} steps)")  # fmt: skip
                cells.append(cell)
            nf_labels = [b for b in config.baselines if b.startswith("nf_")] if config.eval_split == "test" else []
            for label in nf_labels:
                cell = Cell(name, h, f"neuralforecast {label[3:]}", [], [], [], [], label, L, **counts)
                for seed in config.seeds:
                    try:
                        result = _fit_neuralforecast(data, h, L, label, seed, config, xlstm)
                    except ImportError as err:
                        out(
                            f"{label}: skipped, neuralforecast is not installed ({err}); install the suite's "
                            "forecast extra: pip install -e './bench[forecast]'"
                        )
                        break
                    with create_tracker(config.experiment, run_name=f"{name}-h{h}-{label}-s{seed}", enabled=track,
                                        tags={"benchmark": "long_horizon"}) as tracker:  # fmt: skip
                        params = {"model": label, **config.neuralforecast_kwargs(name, label)}
                        _record(cell, tracker, result, params, name, h, L, seed, config.eval_split)
                    out(f"{name} h={h} {cell.model} seed {seed}: test MSE {result[0]:.4f} MAE {result[1]:.4f} "
                        f"fit {result[2]:.1f} s")  # fmt: skip
                if cell.mse:
                    cells.append(cell)
            if "seasonal_naive" in config.baselines:
                m, a = _seasonal_naive(data, h, L, config.max_test_windows, config.eval_split)
                cell = Cell(name, h, f"seasonal naive ({data.season})", [], [], [], [], "seasonal_naive", L)
                with create_tracker(config.experiment, run_name=f"{name}-h{h}-seasonal_naive", enabled=track,
                                    tags={"benchmark": "long_horizon"}) as tracker:  # fmt: skip
                    params = {"model": "seasonal_naive", "season": data.season}
                    _record(cell, tracker, (m, a, 0.0, 0, None), params, name, h, L, 0, config.eval_split)
                cells.append(cell)
            # Written after every horizon so that an interrupted run keeps what it measured.
            Path(config.out).parent.mkdir(parents=True, exist_ok=True)
            minutes = (time.perf_counter() - started) / 60
            Path(config.out).write_text(benchmark_markdown(config, cells, timings, provenance.finish(), minutes))
            summary_figure(config, cells).savefig(Path(config.out).with_suffix(".png"), dpi=110, bbox_inches="tight")
    provenance = provenance.finish()
    markdown = benchmark_markdown(config, cells, timings, provenance, (time.perf_counter() - started) / 60)
    Path(config.out).write_text(markdown)
    if cells:
        figure = summary_figure(config, cells)
        with create_tracker(config.experiment, run_name="summary", enabled=track, tags=provenance.tags()) as tracker:
            tracker.log_text(markdown, "forecasting.md")
            tracker.log_figure(figure, "summary")
    out(markdown)
    return cells


def _record(
    cell: Cell, tracker, result: FitResult, params: dict, name: str, h: int, L: int, seed: int, split: str
) -> None:
    m, a, seconds, steps, published = result
    cell.mse.append(m)
    cell.mae.append(a)
    cell.fit_seconds.append(seconds)
    cell.steps.append(steps)
    metrics = {f"{split}/mse": m, f"{split}/mae": a, "fit/seconds": seconds, "fit/steps": steps}
    if published is not None:
        cell.mse_published_windows.append(published)
        metrics[f"{split}/mse_published_windows"] = published
    tracker.log_params({**params, "dataset": name, "h": h, "input_size": L, "seed": seed, "eval_split": split})
    tracker.log_metrics(metrics)


def lightning_device(device: torch.device) -> dict[str, Any]:
    """Lightning Trainer arguments (which neuralforecast's models pass on) that put training on ``device``."""
    if device.type == "cuda":
        return {"accelerator": "gpu", "devices": [device.index or 0]}
    return {"accelerator": "cpu"}
