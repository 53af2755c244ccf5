"""`xlstm-seq demo`: a short tour of the core on a real series, tracked in MLflow.

It builds a small mixed stack, trains it for a few hundred steps to forecast ETTh1's oil temperature (OT) a
day ahead from windows of the training months, then runs the whole test period three ways (one full
pass, chunks with the state carried, one ``step`` at a time) and shows they agree.

It needs no network and no data root: without ``ett/ETTh1.csv`` in ``$XLSTM_SEQ_DATA`` it reads the first six
months of ETTh1 that ship with the package (``xlstm_seq/data/``), and its first line says which copy it read.
The numbers then differ from a run on the whole file, since the split follows the series' length.
"""

from __future__ import annotations

import csv
import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from xlstm_seq.config import ConfigMixin, xLSTMConfig
from xlstm_seq.data import fetch, is_bundled
from xlstm_seq.stack import xLSTMStack
from xlstm_seq.tracking import create_tracker

log = logging.getLogger(__name__)


def _default_model() -> xLSTMConfig:
    return xLSTMConfig(embedding_dim=64, num_blocks=2, num_heads=4, block_ratio="1:1")


@dataclass
class DemoConfig(ConfigMixin):
    """Settings of the core demo."""

    model: xLSTMConfig = field(default_factory=_default_model)
    """The stack to train."""
    series: str = "etth1"
    """Data file name known to xlstm_seq.data (read from the data root, else the copy bundled with the package)."""
    column: str = "OT"
    """Column of the CSV to forecast."""
    train_fraction: float = 0.7
    """Leading share of the series used for training; the rest is the test period."""
    horizon: int = 24
    """How many steps ahead to forecast (24 hours: persistence is a weak guess, the daily cycle helps)."""
    context_length: int = 96
    """Length of the training windows."""
    batch_size: int = 32
    """Windows per training step."""
    steps: int = 300
    """Optimiser steps."""
    learning_rate: float = 3e-3
    """AdamW learning rate (cosine-decayed to a tenth)."""
    test_length: int = 1000
    """Steps of the test period run full-pass, chunked and step by step."""
    chunk_length: int = 333
    """Chunk length of the chunked run (deliberately not a divisor of test_length)."""
    seed: int = 0
    """Seed of the parameters and the window sampling."""
    experiment: str = "xlstm-seq-demo"
    """MLflow experiment name."""

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = xLSTMConfig.from_dict(self.model)
        if not 0.1 <= self.train_fraction <= 0.95:
            raise ValueError(f"train_fraction must be in [0.1, 0.95], got {self.train_fraction}")
        for name in ("horizon", "context_length", "batch_size", "steps", "test_length", "chunk_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")


class NextValueModel(nn.Module):
    """Scalar series in, forecast out: hourly changes -> Linear -> xLSTMStack -> Linear, added to the last value.

    The stack sees changes, not levels, and predicts the change ahead, so a drift in the level between the
    training months and the test months (ETTh1's oil temperature has one) does not push it off its inputs,
    and persistence (later = now) is the starting point it has to improve on. Its state is the stack's
    state plus the last value seen, which the next change is taken against.
    """

    def __init__(self, config: xLSTMConfig):
        super().__init__()
        self.encode = nn.Linear(1, config.embedding_dim)
        self.stack = xLSTMStack(config)
        self.decode = nn.Linear(config.embedding_dim, 1)
        # Start exactly at persistence: the stack only has to learn the change.
        nn.init.zeros_(self.decode.weight)
        nn.init.zeros_(self.decode.bias)

    def forward(self, x: Tensor, state=None):
        """x (B, T) -> forecast of x[t + horizon] at every t (B, T), state (stack state, last value (B,))."""
        stack_state, previous = state if state is not None else (None, x[:, 0])
        changes = x - torch.cat([previous.unsqueeze(1), x[:, :-1]], dim=1)  # (B, T)
        y, stack_state = self.stack(self.encode(changes.unsqueeze(-1)), stack_state)
        return x + self.decode(y).squeeze(-1), (stack_state, x[:, -1])

    def step(self, x_t: Tensor, state=None):
        """x_t (B,) -> forecast (B,), state."""
        stack_state, previous = state if state is not None else (None, x_t)
        y_t, stack_state = self.stack.step(self.encode((x_t - previous).unsqueeze(-1)), stack_state)
        return x_t + self.decode(y_t).squeeze(-1), (stack_state, x_t)


def load_series(name: str, column: str) -> tuple[np.ndarray, Path]:
    """One numeric column of a data file, as float32, and the path it was read from.

    The file is the data root's copy, else the one bundled with the package (``xlstm_seq.data.fetch``).
    """
    path = fetch(name)
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if column not in (reader.fieldnames or []):
            raise ValueError(f"{path} has no column {column!r}; columns: {reader.fieldnames}")
        return np.array([float(row[column]) for row in reader], dtype=np.float32), path


def _plot(losses: list[float], actual: np.ndarray, predicted: np.ndarray):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_fc) = plt.subplots(1, 2, figsize=(12, 4))
    ax_loss.plot(losses)
    ax_loss.set(xlabel="step", ylabel="training MSE (normalised)", yscale="log", title="training loss")
    shown = slice(-300, None)
    ax_fc.plot(actual[shown], label="actual")
    ax_fc.plot(predicted[shown], label="forecast")
    ax_fc.set(xlabel="test hour (last 300)", ylabel="OT (normalised)", title="forecast vs actual")
    ax_fc.legend()
    fig.tight_layout()
    return fig


def run_demo(config: DemoConfig | None = None, *, track: bool = True, out=print) -> dict[str, float]:
    """Runs the demo; returns its headline numbers (also logged to MLflow)."""
    config = config or DemoConfig()
    torch.manual_seed(config.seed)
    generator = np.random.default_rng(config.seed)

    series, path = load_series(config.series, config.column)
    copy = "the copy bundled with xlstm-seq" if is_bundled(path) else "the data root"
    out(f"data: {path} ({copy})")
    split = int(len(series) * config.train_fraction)
    mean, std = series[:split].mean(), series[:split].std() + 1e-8
    normed = torch.from_numpy((series - mean) / std)  # (N,)
    h = config.horizon
    train, test = normed[:split], normed[split : split + config.test_length + h]
    out(f"series {config.series}:{config.column}: {len(series)} points, train {split}, test {len(test) - h}")

    model = NextValueModel(config.model)
    n_params = sum(p.numel() for p in model.parameters())
    out(f"stack: {config.model.num_blocks} blocks {''.join(model.stack.block_types)}, {n_params:,} parameters")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps, eta_min=config.learning_rate / 10)

    with create_tracker(config.experiment, run_name="demo", enabled=track) as tracker:
        tracker.log_params(config.to_dict())
        tracker.log_text(config.to_yaml(), "config.yaml")
        losses: list[float] = []
        started = time.perf_counter()
        progress = tqdm(range(config.steps), desc="training", unit="step")
        for step in progress:
            starts = generator.integers(0, len(train) - config.context_length - h, config.batch_size)
            windows = torch.stack([train[s : s + config.context_length + h] for s in starts])  # (B, L+h)
            prediction, _ = model(windows[:, :-h])
            loss = nn.functional.mse_loss(prediction, windows[:, h:])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            tracker.log_metrics({"train/loss": losses[-1]}, step=step)
            progress.set_postfix(loss=f"{losses[-1]:.4f}")
        train_seconds = time.perf_counter() - started

        model.eval()
        inputs, targets = test[:-h].unsqueeze(0), test[h:]  # (1, T), (T,)
        with torch.inference_mode():
            full, _ = model(inputs)  # one pass over the whole test period
            chunked, state = [], None
            for chunk in inputs.split(config.chunk_length, dim=1):
                part, state = model(chunk, state)
                chunked.append(part)
            chunked = torch.cat(chunked, dim=1)
            stepped, state = [], None
            for t in tqdm(range(inputs.shape[1]), desc="step by step", unit="step", leave=False):
                value, state = model.step(inputs[:, t], state)
                stepped.append(value)
            stepped = torch.stack(stepped, dim=1)
            # Accuracy in the regime the model was trained in: every test hour forecast from the
            # context_length hours before it (one window per test hour, batched).
            history = normed[split - config.context_length + 1 : split + inputs.shape[1]]  # (L-1+T,)
            windows = history.unfold(0, config.context_length, 1)  # (T, L)
            windowed, _ = model(windows)
            windowed = windowed[:, -1]  # (T,)
        full = full[0]
        results = {
            "train/seconds": train_seconds,
            "train/final_loss": float(np.mean(losses[-20:])),
            "test/mse": float(((windowed - targets) ** 2).mean()),
            "test/mse_one_pass": float(((full - targets) ** 2).mean()),
            "test/mse_persistence": float(((inputs[0] - targets) ** 2).mean()),
            "consistency/max_abs_full_vs_chunked": float((full - chunked[0]).abs().max()),
            "consistency/max_abs_full_vs_step": float((full - stepped[0]).abs().max()),
        }
        tracker.log_metrics(results)
        tracker.log_figure(_plot(losses, targets.numpy(), full.numpy()), "demo_forecast.png")
        with tempfile.TemporaryDirectory() as tmp:
            weights = Path(tmp) / "model_state_dict.pt"
            torch.save(model.state_dict(), weights)
            tracker.log_artifact(weights)
        run_id, store = tracker.run_id, getattr(tracker, "tracking_uri", None)

    out(f"trained {config.steps} steps in {train_seconds:.1f} s; final training MSE {results['train/final_loss']:.4f}")
    out(
        f"test MSE {h} steps ahead {results['test/mse']:.4f} vs persistence {results['test/mse_persistence']:.4f} "
        f"(normalised scale, {inputs.shape[1]} test hours, each from the {config.context_length} hours before it; "
        f"one pass over all of them: {results['test/mse_one_pass']:.4f})"
    )
    out(
        f"full pass vs {math.ceil(inputs.shape[1] / config.chunk_length)} chunks with state: max |diff| "
        f"{results['consistency/max_abs_full_vs_chunked']:.2e}; vs {inputs.shape[1]} calls of step: "
        f"{results['consistency/max_abs_full_vs_step']:.2e}"
    )
    if run_id:
        out(f"MLflow run {run_id} (experiment {config.experiment!r}) in {store}")
        out(f"browse it with: mlflow ui --backend-store-uri {store}")
    return results
