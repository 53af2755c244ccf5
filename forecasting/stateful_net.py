"""The network of ``StatefulXLSTMForecaster``: an xLSTM stack that reads a series step by step from its start and, at
every step, forecasts the next h values (forking sequences, Wen et al. 2017, "A Multi-Horizon Quantile Recurrent
Forecaster").

    net = StatefulNet(h=24, lags=1, embedding_dim=64, num_blocks=2, num_heads=4, backbone="mlstm")
    inputs = lag_features(z, lags)            # z (B, T) scaled values -> (B, T, lags), oldest lag first
    out, hidden, state = net(inputs, state)   # out (B, T, h) forecasts from every step; hidden (B, T, E)

The input of step t is the ``lags`` most recent scaled values (z[t - lags + 1 .. t], zeros before the series'
start); nothing in it depends on a window, so the state after step t summarises the whole series up to t, and
feeding the series in chunks with the state carried gives the same outputs as one pass. The forecast from step t is
the last value plus a linear map of the stack's output: z[t] + head(hidden[t]) (a random walk is the starting
point, which a recurrent forecaster should beat or at least match).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xlstm_seq.forecasting.models import NetSpec, stack_config
from xlstm_seq.stack import xLSTMStack
from xlstm_seq.state import xLSTMState


def lag_features(z: Tensor, lags: int, before: Tensor | None = None) -> Tensor:
    """The inputs of every step: z (B, T) -> (B, T, lags), the ``lags`` values up to and including each step,
    oldest first. ``before`` (B, lags - 1) holds the values before z[:, 0] (zeros at a series' start)."""
    padded = F.pad(z, (lags - 1, 0)) if before is None else torch.cat([before, z], dim=1)  # (B, T + lags - 1)
    return padded.unfold(1, lags, 1)  # (B, T, lags)


class StatefulNet(nn.Module):
    """Lag inputs -> linear embedding -> xLSTM stack -> linear head to h steps, residual on the last value."""

    def __init__(
        self,
        h: int,
        lags: int,
        embedding_dim: int,
        num_blocks: int,
        num_heads: int,
        backbone: str,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.h, self.lags = h, lags
        spec = NetSpec(input_size=1, h=h, n_channels=1, n_hist=0, n_futr=0, n_stat=0, n_outputs=1,
                       embedding_dim=embedding_dim, num_blocks=num_blocks, num_heads=num_heads, backbone=backbone,
                       dropout=dropout)  # fmt: skip
        self.embed = nn.Linear(lags, embedding_dim)
        # Never compiled: the streaming path calls the stack with a few rows at a time, where eager is cheapest.
        self.stack = xLSTMStack(stack_config(spec), compile=False)
        self.head = nn.Linear(embedding_dim, h)
        nn.init.zeros_(self.head.weight)  # the first forecasts are the last value
        nn.init.zeros_(self.head.bias)

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> xLSTMState:
        """The zero state of ``batch_size`` series (the state before a series' first step)."""
        return self.stack.init_state(batch_size, device)

    def encode(self, inputs: Tensor, state: xLSTMState | None = None) -> tuple[Tensor, xLSTMState]:
        """inputs (B, T, lags) -> hidden (B, T, E) and the state after the last step."""
        return self.stack(self.embed(inputs), state)

    def forecast(self, hidden: Tensor, last_value: Tensor) -> Tensor:
        """hidden (..., E) and the scaled last value (...) -> scaled forecasts (..., h)."""
        return last_value.unsqueeze(-1) + self.head(hidden)

    def forward(self, inputs: Tensor, state: xLSTMState | None = None) -> tuple[Tensor, Tensor, xLSTMState]:
        """inputs (B, T, lags) -> forecasts from every step (B, T, h), hidden (B, T, E), the state after step T."""
        hidden, state = self.encode(inputs, state)
        return self.forecast(hidden, inputs[..., -1]), hidden, state
