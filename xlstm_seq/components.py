"""Building blocks shared by the mLSTM and sLSTM layers: causal convolution with state, block-diagonal
projections, head-wise normalisation, the gated MLP, and the paper's initialisations."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def small_init_(weight: Tensor, dim: int) -> Tensor:
    """Normal init with std sqrt(2 / (5 * dim)) (Nguyen & Salazar, 2019), used by the xLSTM paper."""
    return nn.init.normal_(weight, mean=0.0, std=math.sqrt(2.0 / (5.0 * dim)))


def wang_init_(weight: Tensor, dim: int, num_blocks: int) -> Tensor:
    """Normal init with std 2 / (num_blocks * sqrt(dim)) for projections back into the residual stream."""
    return nn.init.normal_(weight, mean=0.0, std=2.0 / num_blocks / math.sqrt(dim))


def segment_ids(resets: Tensor) -> Tensor:
    """(B, T) bool resets -> (B, T) int segment index: how many resets happened at or before each step."""
    return torch.cumsum(resets.to(torch.int64), dim=1)


class CausalConv1d(nn.Module):
    """Depthwise causal convolution over time that carries its last K-1 inputs as state.

    With ``resets`` the convolution never looks across a reset: inputs before the reset count as zeros,
    exactly as if the new segment had started from the zero state (selected, not multiplied by zero, so that
    not even a NaN crosses a reset).
    """

    def __init__(self, channels: int, kernel_size: int, bias: bool = True):
        super().__init__()
        self.channels = channels
        self.kernel_size = kernel_size
        # weight[c, j] multiplies x[t - j, c]: tap j looks j steps back.
        self.weight = nn.Parameter(torch.empty(channels, kernel_size))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.kernel_size)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def zero_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        return torch.zeros(batch_size, self.kernel_size - 1, self.channels, device=device, dtype=dtype)

    def forward(self, x: Tensor, state: Tensor | None = None, resets: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x (B, T, C), state (B, K-1, C), resets (B, T) -> y (B, T, C), new state (B, K-1, C)."""
        B, T, _ = x.shape
        K = self.kernel_size
        if state is None:
            state = self.zero_state(B, x.device, x.dtype)
        padded = torch.cat([state.to(x.dtype), x], dim=1)  # (B, K-1+T, C)
        if resets is not None:
            seg = segment_ids(resets)  # (B, T)
            seg_padded = torch.cat([seg.new_zeros(B, K - 1), seg], dim=1)  # (B, K-1+T)
        y = x * self.weight[:, 0]
        for lag in range(1, K):
            shifted = padded[:, K - 1 - lag : K - 1 - lag + T]  # (B, T, C) = x[t - lag]
            if resets is not None:
                same_segment = seg_padded[:, K - 1 - lag : K - 1 - lag + T] == seg  # (B, T)
                shifted = torch.where(same_segment.unsqueeze(-1), shifted, 0.0)
            y = y + shifted * self.weight[:, lag]
        if self.bias is not None:
            y = y + self.bias
        new_state = padded[:, padded.shape[1] - (K - 1) :]
        if resets is not None and K > 1:
            # Inputs before the last reset belong to a finished segment: the next call must not see them.
            live = seg_padded[:, seg_padded.shape[1] - (K - 1) :] == seg[:, -1:]
            new_state = torch.where(live.unsqueeze(-1), new_state, 0.0)
        return y, new_state

    def step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """x_t (B, C), state (B, K-1, C) -> y_t (B, C), new state (B, K-1, C)."""
        y, new_state = self.forward(x_t.unsqueeze(1), state)
        return y.squeeze(1), new_state


class BlockDiagonalLinear(nn.Module):
    """A linear map whose weight is block-diagonal: ``num_blocks`` independent (in/nb -> out/nb) maps."""

    def __init__(self, in_features: int, out_features: int, num_blocks: int, bias: bool = False):
        super().__init__()
        if in_features % num_blocks or out_features % num_blocks:
            raise ValueError(
                f"features ({in_features} -> {out_features}) must be divisible by num_blocks ({num_blocks})"
            )
        self.num_blocks = num_blocks
        self.weight = nn.Parameter(torch.empty(num_blocks, out_features // num_blocks, in_features // num_blocks))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        small_init_(self.weight, in_features)

    def forward(self, x: Tensor) -> Tensor:
        """x (..., in_features) -> (..., out_features)."""
        blocks = x.unflatten(-1, (self.num_blocks, -1))  # (..., NB, in/NB)
        y = torch.einsum("...bi,boi->...bo", blocks, self.weight).flatten(-2)  # (..., out)
        return y + self.bias if self.bias is not None else y


class MultiHeadLayerNorm(nn.Module):
    """Layer norm applied per head (a group norm over each head's channels), then a learned scale."""

    def __init__(self, num_heads: int, head_dim: int, bias: bool = False, eps: float = 1e-5):
        super().__init__()
        self.num_heads, self.head_dim, self.eps = num_heads, head_dim, eps
        self.weight = nn.Parameter(torch.ones(num_heads * head_dim))
        self.bias = nn.Parameter(torch.zeros(num_heads * head_dim)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        """x (..., H, D) -> (..., H * D)."""
        normed = F.layer_norm(x, (self.head_dim,), eps=self.eps).flatten(-2)
        normed = normed * self.weight
        return normed + self.bias if self.bias is not None else normed


class GatedMLP(nn.Module):
    """The sLSTM block's feed-forward part: GeLU-gated up-projection, then down-projection."""

    def __init__(self, dim: int, proj_factor: float, num_blocks: int, bias: bool = False, dropout: float = 0.0):
        super().__init__()
        # Rounded up to a multiple of 64 as in the official implementation (tensor-core friendly).
        hidden = 64 * math.ceil(proj_factor * dim / 64)
        self.up = nn.Linear(dim, 2 * hidden, bias=bias)
        self.down = nn.Linear(hidden, dim, bias=bias)
        self.dropout = nn.Dropout(dropout)
        small_init_(self.up.weight, dim)
        wang_init_(self.down.weight, dim, num_blocks)
        for layer in (self.up, self.down):
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.up(x).chunk(2, dim=-1)
        return self.dropout(self.down(F.gelu(gate) * up))
