"""xlstm_time_linear: a linear forecast refined by the xLSTM path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xlstm_seq.forecasting.models import MODELS, NetSpec, XLSTMTimeLinear, build_model, moving_average


def _spec(mixing="variates", backbone="mlstm", X=0, F=0, S=0, Q=1) -> NetSpec:
    return NetSpec(input_size=32, h=8, n_channels=4, n_hist=X, n_futr=F, n_stat=S, n_outputs=Q, embedding_dim=8,
                   num_blocks=1, num_heads=2, backbone=backbone, mixing=mixing, patch_len=8, moving_avg=5)  # fmt: skip


def test_registered_by_name():
    assert MODELS["xlstm_time_linear"] is XLSTMTimeLinear
    assert isinstance(build_model("xlstm_time_linear", _spec()), XLSTMTimeLinear)


@pytest.mark.parametrize(("mixing", "backbone"), [("variates", "mlstm"), ("independent", "slstm")])
def test_starts_as_the_linear_forecast_and_keeps_the_contract(mixing, backbone, net_batch):
    torch.manual_seed(0)
    net = XLSTMTimeLinear(_spec(mixing, backbone, X=1, F=1, S=2, Q=3)).eval()
    batch = net_batch(X=1, F=1, S=2)
    out = net(batch)  # (B, h, C, Q)
    assert out.shape == (3, 8, 4, 3) and torch.isfinite(out).all()
    # Before training the xLSTM correction head is zero: without the future-exogenous head the output is exactly
    # the linear forecast of the RevIN-normalised input, mapped back.
    net.head_futr = None
    y, mean, std = net.revin.normalise(batch["y"])
    trend = moving_average(y, 5)
    flat = lambda t: t.transpose(1, 2).reshape(12, 32)  # noqa: E731  (B*C, L)
    linear = (net.linear_seasonal(flat(y - trend)) + net.linear_trend(flat(trend))).reshape(3, 4, 8, 3)
    expected = net.revin.denormalise(linear.transpose(1, 2), mean, std)
    torch.testing.assert_close(net(batch), expected)


def test_xlstm_path_gets_gradients_and_changes_the_output(net_batch):
    torch.manual_seed(0)
    net = XLSTMTimeLinear(_spec())
    batch = net_batch()
    before = net(batch).detach()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = (net(batch) - 1.0).pow(2).mean()
    loss.backward()
    assert net.head.weight.grad.abs().sum() > 0
    optimizer.step()
    # After one step the stack's parameters also receive gradients through the (now non-zero) head.
    net.zero_grad()
    (net(batch) - 1.0).pow(2).mean().backward()
    stack_grads = [p.grad.abs().sum() for p in net.stack.parameters() if p.grad is not None]
    assert stack_grads and sum(stack_grads) > 0
    assert not np.allclose(net(batch).detach().numpy(), before.numpy())


def test_fits_through_the_forecaster(frame):
    from xlstm_seq.forecasting.forecaster import XLSTMForecaster

    df = frame(n_series=2, length=120)
    fc = XLSTMForecaster(h=12, input_size=36, model="xlstm_time_linear", mixing="variates", embedding_dim=8,
                         num_blocks=1, num_heads=2, max_steps=30, batch_size=8, learning_rate=5e-3,
                         progress=False, track=False, random_seed=0)  # fmt: skip
    fc.fit(df, val_size=12)
    pred = fc.predict()
    assert list(pred.columns) == ["unique_id", "ds", "xLSTMTimeLinear"] and len(pred) == 24
    # A sine with period 12 is learnt well by the linear base within 30 steps (scale of y is ~1).
    y, y_hat = fc.forecast_windows(df, n_windows=3, step_size=12)
    assert np.abs(y - y_hat[..., 0]).mean() < 0.5
