"""xlstm_mixer (xLSTM-Mixer): the network contract, mixing in both directions over the series, gradients."""

from __future__ import annotations

import pytest
import torch

from xlstm_seq.forecasting.models import MODELS, NetSpec, XLSTMMixer, build_model

B, L, C, H = 3, 32, 4, 8


def _spec(backbone="slstm", X=0, F=0, S=0, Q=1) -> NetSpec:
    return NetSpec(input_size=L, h=H, n_channels=C, n_hist=X, n_futr=F, n_stat=S, n_outputs=Q, embedding_dim=8,
                   num_blocks=1, num_heads=2, backbone=backbone, mixing="variates")  # fmt: skip


def test_registered_by_name():
    assert MODELS["xlstm_mixer"] is XLSTMMixer
    assert isinstance(build_model("xlstm_mixer", _spec()), XLSTMMixer)


@pytest.mark.parametrize("backbone", ["slstm", "mlstm"])
def test_keeps_the_contract_with_exogenous_inputs_and_quantiles(backbone, net_batch):
    torch.manual_seed(0)
    net = XLSTMMixer(_spec(backbone, X=2, F=1, S=3, Q=3)).eval()
    out = net(net_batch(X=2, F=1, S=3))
    assert out.shape == (B, H, C, 3) and torch.isfinite(out).all()


@pytest.mark.parametrize(("changed", "watched"), [(0, C - 1), (C - 1, 0)])
def test_each_series_forecast_reads_the_series_on_both_sides(changed, watched, net_batch):
    # The forward view carries the first series to the last, the reverse view the last to the first.
    torch.manual_seed(0)
    net = XLSTMMixer(_spec()).eval()
    batch = net_batch()
    base = net(batch)
    batch["y"][:, :, changed] = 3.0 * batch["y"][:, :, changed].flip(1)
    moved = net(batch)
    assert not torch.allclose(base[..., watched, :], moved[..., watched, :])


def test_a_single_series_is_a_valid_input():
    # A one-series window is a valid input (mixing="independent" panels): the stack reads the prompt and the series.
    torch.manual_seed(0)
    net = XLSTMMixer(NetSpec(input_size=L, h=H, n_channels=1, n_hist=0, n_futr=0, n_stat=0, n_outputs=1,
                             embedding_dim=8, num_blocks=1, num_heads=2, mixing="independent"))  # fmt: skip
    out = net({"y": torch.randn(B, L, 1), "x_hist": torch.zeros(B, L, 1, 0), "x_futr": torch.zeros(B, H, 1, 0),
               "x_stat": torch.zeros(B, 1, 0)})  # fmt: skip
    assert out.shape == (B, H, 1, 1)


def test_every_parameter_gets_a_gradient(net_batch):
    torch.manual_seed(0)
    net = XLSTMMixer(_spec(X=1, F=1, S=1))
    net(net_batch(X=1, F=1, S=1)).pow(2).mean().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
