"""Training losses: the point and pinball losses, the frequency-domain term (FreDF) and the step weights."""

from __future__ import annotations

import math

import pytest
import torch

from xlstm_seq.forecasting import XLSTMForecaster
from xlstm_seq.forecasting.losses import forecast_loss, frequency_loss, horizon_step_weights


def test_frequency_loss_of_a_constant_error_is_its_dc_component():
    # A constant error e over h steps has one non-zero orthonormal FFT component, e * sqrt(h), at frequency 0.
    h, e = 8, 0.5
    target = torch.zeros(2, h, 3)  # (B, h, C)
    loss = frequency_loss(target + e, target)
    assert loss.item() == pytest.approx(e * math.sqrt(h) / (h // 2 + 1))


def test_frequency_loss_follows_parseval():
    # Orthonormal FFT keeps the error's energy: with the one-sided spectrum, bins other than 0 and h/2 count twice.
    error = torch.randn(4, 16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    spectrum = torch.fft.rfft(error, dim=1, norm="ortho").abs() ** 2  # (4, 9, 2)
    energy = spectrum[:, 0] + spectrum[:, -1] + 2 * spectrum[:, 1:-1].sum(dim=1)  # (4, 2)
    torch.testing.assert_close(energy, (error**2).sum(dim=1))
    assert frequency_loss(error, torch.zeros_like(error)).item() == pytest.approx(spectrum.sqrt().mean().item())


def test_frequency_weight_mixes_the_two_terms():
    g = torch.Generator().manual_seed(1)
    prediction, target = torch.randn(3, 12, 2, 1, generator=g), torch.randn(3, 12, 2, generator=g)  # (B, h, C, 1)
    mae = forecast_loss("mae", prediction, target, [0.5])
    spectral = frequency_loss(prediction[..., 0], target)
    assert forecast_loss("mae", prediction, target, [0.5], 0.0).item() == pytest.approx(mae.item())
    assert forecast_loss("mae", prediction, target, [0.5], 1.0).item() == pytest.approx(spectral.item())
    mixed = forecast_loss("mae", prediction, target, [0.5], 0.25)
    assert mixed.item() == pytest.approx(0.75 * mae.item() + 0.25 * spectral.item())
    with pytest.raises(ValueError, match="needs a point loss"):
        forecast_loss("quantile", prediction, target, [0.5], 0.5)


def test_forecaster_checks_and_trains_with_the_frequency_term(frame, tiny_fit):
    for bad in (-0.1, 1.5, "0.5"):
        with pytest.raises(ValueError, match="freq_loss_weight must be a number in"):
            XLSTMForecaster(**tiny_fit, freq_loss_weight=bad).fit(frame(length=80))
    with pytest.raises(ValueError, match="freq_loss_weight > 0 needs a point loss"):
        XLSTMForecaster(**tiny_fit, loss="quantile", freq_loss_weight=0.5).fit(frame(length=80))
    fc = XLSTMForecaster(**tiny_fit, freq_loss_weight=0.8).fit(frame(length=80), val_size=12)
    assert fc.steps_trained_ == 30
    assert fc.best_val_loss_ is not None and math.isfinite(fc.best_val_loss_)
    assert fc.predict()["xLSTMTime"].notna().all()


def test_step_weights_fall_as_t_to_the_minus_decay_with_mean_one():
    like = torch.zeros(1)
    weights = horizon_step_weights(4, 0.5, like)
    raw = torch.tensor([1.0, 2.0, 3.0, 4.0]) ** -0.5
    torch.testing.assert_close(weights, raw / raw.mean())
    assert weights.mean().item() == pytest.approx(1.0)
    torch.testing.assert_close(horizon_step_weights(5, 0.0, like), torch.ones(5))


@pytest.mark.parametrize("loss", ["mae", "mse", "quantile"])
def test_step_decay_weighs_each_step_of_every_loss(loss):
    # With the error at one step only, the weighted loss is the plain one times that step's weight (first and last).
    h, quantiles = 4, [0.1, 0.5, 0.9]
    weights = horizon_step_weights(h, 1.0, torch.zeros(1))
    target = torch.zeros(2, h, 3)  # (B, h, C)
    for step in (0, h - 1):
        prediction = torch.zeros(2, h, 3, 3)  # (B, h, C, Q)
        prediction[:, step] = 2.0
        plain = forecast_loss(loss, prediction, target, quantiles)
        weighted = forecast_loss(loss, prediction, target, quantiles, step_decay=1.0)
        assert weighted.item() == pytest.approx(plain.item() * weights[step].item())


def test_step_decay_applies_to_the_temporal_part_of_fredf_only():
    g = torch.Generator().manual_seed(2)
    prediction, target = torch.randn(3, 12, 2, 1, generator=g), torch.randn(3, 12, 2, generator=g)  # (B, h, C, 1)
    weighted = forecast_loss("mse", prediction, target, [0.5], step_decay=0.5)
    spectral = frequency_loss(prediction[..., 0], target)
    mixed = forecast_loss("mse", prediction, target, [0.5], 0.5, step_decay=0.5)
    assert mixed.item() == pytest.approx(0.5 * weighted.item() + 0.5 * spectral.item())


def test_forecaster_checks_and_trains_with_step_decay(frame, tiny_fit):
    for bad in (-0.5, 5.0, "0.5", None):
        with pytest.raises(ValueError, match="horizon_loss_decay must be a number in"):
            XLSTMForecaster(**tiny_fit, horizon_loss_decay=bad).fit(frame(length=80))
    with pytest.raises(ValueError, match="which freq_loss_weight=1 leaves out"):
        XLSTMForecaster(**tiny_fit, horizon_loss_decay=0.5, freq_loss_weight=1.0).fit(frame(length=80))
    plain = XLSTMForecaster(**tiny_fit).fit(frame(length=80), val_size=12)
    decayed = XLSTMForecaster(**tiny_fit, horizon_loss_decay=0.5).fit(frame(length=80), val_size=12)
    assert decayed.steps_trained_ == 30 and math.isfinite(decayed.best_val_loss_)
    # Same seed and windows, other weights on the steps: a different fit.
    assert plain.best_val_loss_ != decayed.best_val_loss_
    assert decayed.predict()["xLSTMTime"].notna().all()


def test_pinball_loss_by_hand():
    # y = 10; quantile heads 0.1 / 0.5 / 0.9 forecast 8 / 10 / 13: errors e = y - yhat = 2, 0, -3.
    # q * e if e >= 0 else (q - 1) * e: 0.1 * 2 = 0.2; 0; (0.9 - 1) * -3 = 0.3 -> mean 0.5 / 3.
    prediction = torch.tensor([8.0, 10.0, 13.0]).reshape(1, 1, 1, 3)
    target = torch.tensor([10.0]).reshape(1, 1, 1)
    assert forecast_loss("quantile", prediction, target, [0.1, 0.5, 0.9]).item() == pytest.approx(0.5 / 3)
    # Under-forecasting costs q per unit, over-forecasting 1 - q: the 0.9 head is pushed up nine times as hard.
    low = forecast_loss("quantile", torch.full((1, 1, 1, 1), 9.0), target, [0.9]).item()
    high = forecast_loss("quantile", torch.full((1, 1, 1, 1), 11.0), target, [0.9]).item()
    assert (low, high) == (pytest.approx(0.9), pytest.approx(0.1))
