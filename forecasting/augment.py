"""Training-batch augmentation in the frequency domain (FreqMask of FrAug, Chen et al., 2023).

A window's look-back and horizon are one stretch of the series; zeroing a few of that stretch's frequency
components gives a new, plausible stretch whose look-back and horizon still belong together. The augmented copies
join the batch beside the originals.
"""

from __future__ import annotations

import numpy as np
import torch


def frequency_mask(history: torch.Tensor, target: torch.Tensor, rate: float, rng: np.random.Generator):
    """Copies of the windows with each rFFT component of look-back + horizon zeroed with probability ``rate``.

    Args:
        history: (B, L, C) look-back values.
        target: (B, h, C) values to forecast.
        rate: probability in [0, 1) that one component (per window and channel) is zeroed.
        rng: the fit's generator, so that a seeded fit stays repeatable.

    Returns:
        history (B, L, C) and target (B, h, C) of the augmented copies.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"frequency mask rate must be in [0, 1), got {rate!r}")
    L = history.shape[1]
    stretch = torch.cat([history, target], dim=1)  # (B, L + h, C)
    spectrum = torch.fft.rfft(stretch.double(), dim=1)  # (B, F, C)
    keep = torch.from_numpy(rng.random(tuple(spectrum.shape)) >= rate).to(spectrum.device)  # (B, F, C)
    masked = torch.fft.irfft(spectrum * keep, n=stretch.shape[1], dim=1).to(stretch.dtype)  # (B, L + h, C)
    return masked[:, :L], masked[:, L:]


def augmented_batch(batch: dict[str, torch.Tensor], target: torch.Tensor, rate: float, rng: np.random.Generator):
    """The batch and its target with FreqMask copies appended (2B windows); exogenous inputs are repeated as is."""
    history, future = frequency_mask(batch["y"], target, rate, rng)
    doubled = {k: torch.cat([v, history if k == "y" else v], dim=0) for k, v in batch.items()}
    return doubled, torch.cat([target, future], dim=0)
