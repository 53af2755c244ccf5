"""Training losses by name (``mae``, ``mse``, ``quantile``) and the quantiles behind prediction intervals."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

LOSSES = ("mae", "mse", "quantile")


def quantiles_for_levels(levels: Sequence[float]) -> list[float]:
    """Sorted quantiles for central intervals: level 80 -> 0.1 and 0.9; the median 0.5 is always included."""
    qs = {0.5}
    for level in levels:
        if not 0 < float(level) < 100:
            raise ValueError(f"each level must be a percentage in (0, 100), got {level!r}")
        qs.add(round(0.5 - float(level) / 200, 6))
        qs.add(round(0.5 + float(level) / 200, 6))
    return sorted(qs)


def output_size(loss: str, levels: Sequence[float]) -> int:
    """Outputs per forecast step: 1 for a point loss, one per quantile for ``quantile``."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    return len(quantiles_for_levels(levels)) if loss == "quantile" else 1


def forecast_loss(
    loss: str, prediction: Tensor, target: Tensor, quantiles: Sequence[float], frequency_weight: float = 0.0
) -> Tensor:
    """Mean loss of prediction (B, h, C, Q) against target (B, h, C).

    ``quantile`` is the pinball loss averaged over the quantiles: for an error e = y - yhat at quantile q it is
    max(q * e, (q - 1) * e). With ``frequency_weight`` alpha > 0 (point losses only) the result is
    (1 - alpha) * loss + alpha * frequency_loss (FreDF).
    """
    if frequency_weight > 0:
        if loss == "quantile":
            raise ValueError("the frequency-domain term needs a point loss ('mae' or 'mse'), got 'quantile'")
        temporal = forecast_loss(loss, prediction, target, quantiles) if frequency_weight < 1 else 0.0
        return (1 - frequency_weight) * temporal + frequency_weight * frequency_loss(prediction[..., 0], target)
    if loss == "mae":
        return (prediction[..., 0] - target).abs().mean()
    if loss == "mse":
        return ((prediction[..., 0] - target) ** 2).mean()
    if loss == "quantile":
        q = torch.tensor(quantiles, dtype=prediction.dtype, device=prediction.device)  # (Q,)
        error = target.unsqueeze(-1) - prediction  # (B, h, C, Q)
        return torch.maximum(q * error, (q - 1) * error).mean()
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def frequency_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean modulus of the orthonormal real FFT over the horizon of the error: prediction and target (B, h, C).

    The FFT's components of a stationary error are nearly uncorrelated where the steps' errors are not, so a loss
    on them does not weigh the autocorrelated part of the error many times over (FreDF, Wang et al., ICLR 2025).
    With norm="ortho" it is on the same scale as the MAE.
    """
    spectrum = torch.fft.rfft(prediction - target, dim=1, norm="ortho")  # (B, h // 2 + 1, C), complex
    return spectrum.abs().mean()
