"""Training-batch augmentation: FreqMask copies of look-back + horizon (FrAug)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xlstm_seq.forecasting import XLSTMForecaster
from xlstm_seq.forecasting.augment import augmented_batch, frequency_mask


def _windows(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, 24, 3, generator=g), torch.randn(4, 8, 3, generator=g)  # (B, L, C), (B, h, C)


def test_rate_zero_returns_the_windows_unchanged():
    history, target = _windows()
    new_history, new_target = frequency_mask(history, target, 0.0, np.random.default_rng(0))
    torch.testing.assert_close(new_history, history)
    torch.testing.assert_close(new_target, target)


def test_masked_copies_keep_only_the_unmasked_components():
    history, target = _windows()
    new_history, new_target = frequency_mask(history, target, 0.5, np.random.default_rng(0))
    before = torch.fft.rfft(torch.cat([history, target], dim=1).double(), dim=1)  # (B, F, C)
    after = torch.fft.rfft(torch.cat([new_history, new_target], dim=1).double(), dim=1)  # (B, F, C)
    zeroed = after.abs() < 1e-5
    # Every component is either kept as it was or zeroed, and at rate 0.5 both happen.
    torch.testing.assert_close(after[~zeroed], before[~zeroed], atol=1e-5, rtol=1e-4)
    assert 0.2 < zeroed.double().mean().item() < 0.8
    assert new_history.shape == history.shape and new_target.shape == target.shape


def test_same_generator_state_gives_the_same_copies_and_bad_rates_raise():
    history, target = _windows()
    first = frequency_mask(history, target, 0.3, np.random.default_rng(7))
    second = frequency_mask(history, target, 0.3, np.random.default_rng(7))
    torch.testing.assert_close(first, second)
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="frequency mask rate must be in"):
            frequency_mask(history, target, bad, np.random.default_rng(0))


def test_augmented_batch_appends_copies_and_repeats_the_exogenous_inputs():
    history, target = _windows()
    batch = {"y": history, "x_hist": torch.ones(4, 24, 3, 2)}
    doubled, doubled_target = augmented_batch(batch, target, 0.3, np.random.default_rng(0))
    assert doubled["y"].shape == (8, 24, 3) and doubled_target.shape == (8, 8, 3)
    torch.testing.assert_close(doubled["y"][:4], history)
    torch.testing.assert_close(doubled_target[:4], target)
    torch.testing.assert_close(doubled["x_hist"], torch.ones(8, 24, 3, 2))
    assert not torch.allclose(doubled["y"][4:], history)


def test_forecaster_checks_and_trains_with_the_augmentation(frame, tiny_fit):
    for bad in (-0.1, 1.0, "0.5"):
        with pytest.raises(ValueError, match="augment_freq_mask must be a number in"):
            XLSTMForecaster(**tiny_fit, augment_freq_mask=bad).fit(frame(length=80))
    fits = [XLSTMForecaster(**tiny_fit, augment_freq_mask=0.2).fit(frame(length=80), val_size=12) for _ in range(2)]
    assert fits[0].steps_trained_ == 30
    assert fits[0].best_val_loss_ is not None and math.isfinite(fits[0].best_val_loss_)
    # Seeded: the masks come from the fit's generator, so two fits agree.
    assert fits[0].best_val_loss_ == fits[1].best_val_loss_
    plain = XLSTMForecaster(**tiny_fit).fit(frame(length=80), val_size=12)
    assert plain.best_val_loss_ != fits[0].best_val_loss_
