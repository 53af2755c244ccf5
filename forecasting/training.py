"""The training loop behind ``XLSTMForecaster.fit``: AdamW on a cosine schedule, gradient clipping, an optional
moving average of the weights, and validation checks with early stopping that keep the best weights seen.

The forecaster supplies the data as callables (a training batch, a validation score), so the loop knows nothing of
frames, panels or windows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from xlstm_seq.compiled import CompileSetting, configure_stacks


@dataclass
class TrainingSettings:
    """The optimisation settings of one fit (the forecaster's parameters of the same names)."""

    max_steps: int
    learning_rate: float
    weight_decay: float
    val_check_steps: int
    early_stop_patience_steps: int
    """Validation checks without improvement before stopping; <= 0: never stop early."""
    ema_decay: float | None = None
    """Check, keep and serve a moving average of the weights (decay per step); None: the raw weights."""
    compile: CompileSetting = "auto"
    """The compile switch of the network's xLSTM stacks (xlstm_seq.compiled): "auto" compiles their training pass
    on a CPU when ``max_steps`` is long enough to repay the first compile; True always; False never."""


@dataclass
class TrainingHistory:
    """What one run of :func:`train_network` did."""

    train: list[float] = field(default_factory=list)
    """Training loss at every step."""
    val: list[tuple[int, float]] = field(default_factory=list)
    """(step, validation score) at every check."""
    best_val: float = float("inf")
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        return len(self.train)


def train_network(
    net: nn.Module,
    settings: TrainingSettings,
    training_loss: Callable[[nn.Module], torch.Tensor],
    validation_score: Callable[[nn.Module], float] | None,
    *,
    progress: bool = False,
    description: str = "fit",
) -> TrainingHistory:
    """Trains ``net`` in place and leaves it in eval mode holding the weights to serve.

    Args:
        training_loss: draws a training batch and returns the loss of the network it is given on it (in train mode).
        validation_score: the validation score of the network it is given (lower is better); None: no validation,
            the last weights (or their moving average) are kept.
    """
    configure_stacks(net, settings.compile, forward_calls=settings.max_steps)
    # The weights that are checked and kept: the raw ones or their moving average.
    averaged = None
    if settings.ema_decay is not None:
        averaged = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(settings.ema_decay), use_buffers=True)
    scored = net if averaged is None else averaged.module
    optimizer = torch.optim.AdamW(net.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.max_steps, settings.learning_rate / 10)
    history, best_state, bad_checks = TrainingHistory(), None, 0
    started = time.perf_counter()
    bar = tqdm(range(settings.max_steps), desc=description, unit="step", disable=not progress)
    for step in bar:
        net.train()
        loss = training_loss(net)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if averaged is not None:
            averaged.update_parameters(net)
        history.train.append(loss.item())
        if validation_score is not None and (
            (step + 1) % settings.val_check_steps == 0 or step + 1 == settings.max_steps
        ):
            val = validation_score(scored)
            history.val.append((step, val))
            bar.set_postfix(loss=f"{history.train[-1]:.4f}", val=f"{val:.4f}")
            if val < history.best_val:
                history.best_val, bad_checks = val, 0
                best_state = {k: v.detach().clone() for k, v in scored.state_dict().items()}
            else:
                bad_checks += 1
                if 0 < settings.early_stop_patience_steps <= bad_checks:
                    break
    if best_state is None and averaged is not None:
        best_state = averaged.module.state_dict()
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    history.seconds = time.perf_counter() - started
    return history
