"""Training and evaluation of one model on one synthetic task: the unit of work of the benchmark.

``train_and_evaluate`` trains with AdamW (linear warmup, cosine decay to a tenth, gradient clipping) on fresh
batches every step, each of a length drawn uniformly from ``[min_train_length, train_length]``, then measures
accuracy on held-out batches at each test length. Training batches depend only on (seed, step), test batches
only on (eval_seed, length), so every model sees the same data.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from xlstm_seq.config import ConfigMixin
from xlstm_seq_bench.synthetic.models import (
    ModelSpec,
    SyntheticModel,
    build_model,
    count_parameters,
    slstm_recurrent_weights,
)
from xlstm_seq_bench.synthetic.tasks import IGNORE_INDEX, SyntheticBatch, SyntheticTask, make_task

__all__ = ["TaskSetup", "TrainSettings", "accuracy", "majority_baseline", "test_batches", "train_and_evaluate"]


@dataclass
class TaskSetup(ConfigMixin):
    """One task of the benchmark and its lengths."""

    name: str = "parity"
    """A key of ``xlstm_seq_bench.synthetic.TASKS``."""
    params: dict[str, Any] = field(default_factory=dict)
    """Constructor arguments of the task (e.g. ``num_pairs`` for mqar)."""
    train_length: int = 40
    """Longest training sequence; the test lengths are multiples of it."""
    min_train_length: int | None = None
    """Shortest training sequence (lengths are drawn uniformly per step); None: train_length only."""
    steps: int | None = None
    """Optimiser steps for this task; None uses the benchmark's ``train.steps``."""
    curriculum_steps: int | None = None
    """Length curriculum: the longest training length grows linearly from min_train_length to train_length over
    this many steps (then stays there); None: every step draws from the whole range."""

    def __post_init__(self) -> None:
        task = self.make()  # raises on an unknown name or bad parameters
        low = self.min_train_length if self.min_train_length is not None else self.train_length
        if not task.min_length <= low <= self.train_length:
            raise ValueError(
                f"task {self.name}: need {task.min_length} <= min_train_length ({low}) <= train_length "
                f"({self.train_length})"
            )
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"task {self.name}: steps must be >= 1 or None, got {self.steps}")
        if self.curriculum_steps is not None and self.curriculum_steps < 1:
            raise ValueError(f"task {self.name}: curriculum_steps must be >= 1 or None, got {self.curriculum_steps}")

    def longest_length(self, step: int) -> int:
        """The longest training length allowed at ``step`` (train_length unless a curriculum is still growing)."""
        low = self.min_train_length if self.min_train_length is not None else self.train_length
        if self.curriculum_steps is None:
            return self.train_length
        grown = (self.train_length - low) * min(1.0, (step + 1) / self.curriculum_steps)
        return low + int(round(grown))

    def make(self) -> SyntheticTask:
        return make_task(self.name, **self.params)

    @property
    def label(self) -> str:
        """The task name, with its parameters when it has any (for tables and plots)."""
        return self.name


@dataclass
class TrainSettings(ConfigMixin):
    """The optimisation recipe shared by every run."""

    steps: int = 1000
    """Optimiser steps (a task may override it)."""
    batch_size: int = 32
    """Sequences per step."""
    learning_rate: float = 2e-3
    """Peak AdamW learning rate (a model may override it)."""
    warmup_steps: int = 50
    """Linear warmup steps before the cosine decay."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient-norm clipping threshold."""
    eval_sequences: int = 256
    """Test sequences per length."""
    eval_batch_size: int = 128
    """Sequences per forward pass at test time."""
    eval_seed: int = 1_000_003
    """Seed of the test sets (the same for every model and run seed)."""
    log_every: int = 10
    """Training loss and accuracy are averaged and recorded every this many steps."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_sequences", "eval_batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"train.learning_rate must be > 0, got {self.learning_rate}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip <= 0:
            raise ValueError(
                "train.warmup_steps and train.weight_decay must be >= 0 and train.grad_clip > 0, got "
                f"{self.warmup_steps}, {self.weight_decay}, {self.grad_clip}"
            )


def accuracy(logits: torch.Tensor, batch: SyntheticBatch) -> tuple[int, int]:
    """(correct, counted) over the scored positions; logits (B, T, C)."""
    predictions = logits.argmax(-1)  # (B, T)
    correct = (predictions == batch.targets) & batch.scored
    return int(correct.sum()), int(batch.scored.sum())


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def evaluate(model: SyntheticModel, task: SyntheticTask, length: int, settings: TrainSettings) -> float:
    """Accuracy at the scored positions of ``settings.eval_sequences`` test sequences of ``length`` steps."""
    model.eval()
    correct = counted = 0
    for batch in test_batches(task, length, settings):
        c, n = accuracy(model(batch.inputs), batch)
        correct, counted = correct + c, counted + n
    model.train()
    return correct / counted


def test_batches(task: SyntheticTask, length: int, settings: TrainSettings) -> list[SyntheticBatch]:
    """The test set at ``length``: the same batches for every model and run seed."""
    batches = []
    for index, start in enumerate(range(0, settings.eval_sequences, settings.eval_batch_size)):
        size = min(settings.eval_batch_size, settings.eval_sequences - start)
        batches.append(task.sample(size, length, seed=(settings.eval_seed, length, index)))
    return batches


def majority_baseline(task: SyntheticTask, length: int, settings: TrainSettings) -> float:
    """Accuracy of always answering the most frequent class of the test set at ``length`` (the floor to beat)."""
    labels = torch.cat([b.targets[b.scored] for b in test_batches(task, length, settings)])  # (N,)
    return float(torch.bincount(labels).max()) / labels.numel()


def _parameter_groups(model: SyntheticModel, spec: ModelSpec, lr: float, weight_decay: float) -> list[dict]:
    """AdamW groups: no weight decay on 1-d parameters (biases, norms); the sLSTM recurrent weights at
    ``spec.slstm_recurrent_lr_factor`` times ``lr`` when that is set."""
    recurrent = slstm_recurrent_weights(model) if spec.slstm_recurrent_lr_factor is not None else []
    special = {id(p) for p in recurrent}
    rest = [p for p in model.parameters() if id(p) not in special]
    groups = [
        {"params": [p for p in rest if p.dim() >= 2], "weight_decay": weight_decay, "lr": lr},
        {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0, "lr": lr},
    ]
    if recurrent:
        groups.append({"params": recurrent, "weight_decay": weight_decay, "lr": lr * spec.slstm_recurrent_lr_factor})
    return groups


def train_and_evaluate(
    setup: TaskSetup, spec: ModelSpec, seed: int, settings: TrainSettings, test_lengths: list[int]
) -> dict[str, Any]:
    """Trains ``spec`` on ``setup`` from ``seed`` and tests it at each of ``test_lengths``.

    Returns:
        A plain dict (picklable, for worker processes): task, model, seed, parameters, train_seconds,
        eval_seconds, ``history`` (step, mean loss, mean scored accuracy over each ``log_every`` steps) and
        ``accuracy`` ({length: accuracy}).
    """
    task = setup.make()
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    model = build_model(spec, task, context_length=max(test_lengths))
    lr = spec.learning_rate or settings.learning_rate
    optimizer = torch.optim.AdamW(_parameter_groups(model, spec, lr, settings.weight_decay), lr=lr)
    steps = setup.steps or settings.steps
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, settings.warmup_steps, steps))
    low = setup.min_train_length if setup.min_train_length is not None else setup.train_length
    length_rng = np.random.default_rng((seed, 7))

    history: list[tuple[int, float, float]] = []
    window_loss = window_correct = window_counted = 0.0
    window_steps = 0
    started = time.perf_counter()
    for step in range(steps):
        length = int(length_rng.integers(low, setup.longest_length(step) + 1))
        batch = task.sample(settings.batch_size, length, seed=(seed, step))
        logits = model(batch.inputs)  # (B, T, C)
        loss = F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), ignore_index=IGNORE_INDEX)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        schedule.step()
        c, n = accuracy(logits.detach(), batch)
        window_loss, window_correct, window_counted = window_loss + loss.item(), window_correct + c, window_counted + n
        window_steps += 1
        if window_steps == settings.log_every or step == steps - 1:
            history.append((step, window_loss / window_steps, window_correct / max(1, window_counted)))
            window_loss = window_correct = window_counted = 0.0
            window_steps = 0
    train_seconds = time.perf_counter() - started

    started = time.perf_counter()
    results = {length: evaluate(model, task, length, settings) for length in test_lengths}
    return {
        "task": setup.label,
        "model": spec.kind,
        "seed": seed,
        "parameters": count_parameters(model, trained_length=setup.train_length),
        "steps": steps,
        "learning_rate": lr,
        "train_seconds": train_seconds,
        "eval_seconds": time.perf_counter() - started,
        "history": history,
        "accuracy": results,
    }
