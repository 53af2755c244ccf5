"""Training losses by name (``mae``, ``mse``, ``quantile``) and the quantiles behind prediction intervals."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

LOSSES = ("mae", "mse", "quantile")


def lower_quantile(level: float) -> float:
    """The lower quantile of a central ``level`` % interval (80 -> 0.1), rounded as the trained quantiles are: the
    one key by which a level's heads are found."""
    return round(0.5 - float(level) / 200, 6)


def quantiles_for_levels(levels: Sequence[float]) -> list[float]:
    """Sorted quantiles for central intervals: level 80 -> 0.1 and 0.9; the median 0.5 is always included."""
    qs = {0.5}
    for level in levels:
        if not 0 < float(level) < 100:
            raise ValueError(f"each level must be a percentage in (0, 100), got {level!r}")
        qs.add(lower_quantile(level))
        qs.add(round(0.5 + float(level) / 200, 6))
    return sorted(qs)


def output_size(loss: str, levels: Sequence[float]) -> int:
    """Outputs per forecast step: 1 for a point loss, one per quantile for ``quantile``."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    return len(quantiles_for_levels(levels)) if loss == "quantile" else 1


def forecast_loss(
    loss: str,
    prediction: Tensor,
    target: Tensor,
    quantiles: Sequence[float],
    frequency_weight: float = 0.0,
    step_decay: float = 0.0,
) -> Tensor:
    """Mean loss of prediction (B, h, C, Q) against target (B, h, C).

    ``quantile`` is the pinball loss averaged over the quantiles: for an error e = y - yhat at quantile q it is
    max(q * e, (q - 1) * e). With ``frequency_weight`` alpha > 0 (point losses only) the result is
    (1 - alpha) * loss + alpha * frequency_loss (FreDF). With ``step_decay`` p > 0 the error at forecast step t
    weighs in proportion to t^-p (see horizon_step_weights).
    """
    if frequency_weight > 0:
        if loss == "quantile":
            raise ValueError("the frequency-domain term needs a point loss ('mae' or 'mse'), got 'quantile'")
        temporal = forecast_loss(loss, prediction, target, quantiles, 0.0, step_decay) if frequency_weight < 1 else 0
        return (1 - frequency_weight) * temporal + frequency_weight * frequency_loss(prediction[..., 0], target)
    if loss == "mae":
        per_step = (prediction[..., 0] - target).abs()  # (B, h, C)
    elif loss == "mse":
        per_step = (prediction[..., 0] - target) ** 2  # (B, h, C)
    elif loss == "quantile":
        q = torch.tensor(quantiles, dtype=prediction.dtype, device=prediction.device)  # (Q,)
        error = target.unsqueeze(-1) - prediction  # (B, h, C, Q)
        per_step = torch.maximum(q * error, (q - 1) * error).mean(dim=-1)  # (B, h, C)
    else:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if step_decay > 0:
        weights = horizon_step_weights(target.shape[1], step_decay, prediction)  # (h,)
        per_step = per_step * weights[:, None]
    return per_step.mean()


def window_loss(
    loss: str,
    prediction: Tensor,
    target: Tensor,
    inputs: Tensor,
    quantiles: Sequence[float],
    *,
    point_index: int,
    scale_loss: bool,
    frequency_weight: float = 0.0,
    step_decay: float = 0.0,
) -> Tensor:
    """:func:`forecast_loss` of a forecaster's windows: prediction (B, h, C, Q) against target (B, h, C).

    A point loss of a quantile model scores its median (``point_index`` among the sorted heads, as predict serves
    it). With ``scale_loss`` both are divided by the std of the look-back inputs (B, L, C) of their window (1 where
    that std is 0), so that series on different scales weigh alike.
    """
    if loss != "quantile" and prediction.shape[-1] > 1:
        # The median as predict() serves it: from the sorted quantile heads.
        prediction = prediction.sort(dim=-1).values[..., point_index, None]  # (B, h, C, 1)
    if scale_loss:
        std = inputs.std(dim=1, unbiased=False)  # (B, C)
        std = torch.where(std > 0, std, torch.ones_like(std))[:, None, :]  # (B, 1, C)
        prediction, target = prediction / std.unsqueeze(-1), target / std
    return forecast_loss(loss, prediction, target, quantiles, frequency_weight, step_decay)


def horizon_step_weights(h: int, decay: float, like: Tensor) -> Tensor:
    """Weights (h,) of forecast steps 1..h proportional to t^-decay, with mean 1 (so the loss keeps its scale).

    Far steps are noisier, so weighing them less lowers the variance of the gradient (the signal-decay loss of
    CARD, Wang et al., ICLR 2024, uses decay 0.5). 0 weighs every step alike.
    """
    steps = torch.arange(1, h + 1, dtype=like.dtype, device=like.device)
    weights = steps.pow(-decay)
    return weights / weights.mean()


def frequency_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean modulus of the orthonormal real FFT over the horizon of the error: prediction and target (B, h, C).

    The FFT's components of a stationary error are nearly uncorrelated where the steps' errors are not, so a loss
    on them does not weigh the autocorrelated part of the error many times over (FreDF, Wang et al., ICLR 2025).
    With norm="ortho" it is on the same scale as the MAE.
    """
    spectrum = torch.fft.rfft(prediction - target, dim=1, norm="ortho")  # (B, h // 2 + 1, C), complex
    return spectrum.abs().mean()
