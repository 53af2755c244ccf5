"""The mLSTM layer and the pre-up-projection mLSTM block of the xLSTM paper (Fig. 10).

x -> LayerNorm -> up-projection into two branches (x_m, z); x_m -> causal conv -> SiLU -> q, k;
x_m -> v; (q, k, v) -> input and forget gates; mLSTM -> head-wise norm + learnable skip -> * SiLU(z)
-> down-projection -> residual.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xlstm_seq.components import (
    BlockDiagonalLinear,
    CausalConv1d,
    MultiHeadLayerNorm,
    small_init_,
    wang_init_,
)
from xlstm_seq.config import xLSTMConfig
from xlstm_seq.kernels.mlstm import mlstm, mlstm_step
from xlstm_seq.state import mLSTMBlockState


class mLSTMLayer(nn.Module):
    """Matrix-memory LSTM with its projections; works on (B, T, E) sequences or (B, E) single steps."""

    def __init__(self, config: xLSTMConfig):
        super().__init__()
        self.config = config
        E, inner, H = config.embedding_dim, config.mlstm_inner_dim, config.num_heads
        self.num_heads, self.head_dim = H, inner // H
        num_qkv_blocks = inner // config.mlstm.qkv_proj_blocksize

        self.up = nn.Linear(E, 2 * inner, bias=config.bias)
        self.conv = CausalConv1d(inner, config.mlstm.conv_kernel_size)
        self.q_proj = BlockDiagonalLinear(inner, inner, num_qkv_blocks, bias=config.bias)
        self.k_proj = BlockDiagonalLinear(inner, inner, num_qkv_blocks, bias=config.bias)
        self.v_proj = BlockDiagonalLinear(inner, inner, num_qkv_blocks, bias=config.bias)
        self.igate = nn.Linear(3 * inner, H)
        self.fgate = nn.Linear(3 * inner, H)
        self.out_norm = MultiHeadLayerNorm(H, self.head_dim, bias=config.bias)
        self.skip = nn.Parameter(torch.ones(inner))
        self.down = nn.Linear(inner, E, bias=config.bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        E = self.config.embedding_dim
        small_init_(self.up.weight, E)
        wang_init_(self.down.weight, E, self.config.num_blocks)
        for layer in (self.up, self.down):
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        # Paper initialisation: gates start input-independent; forget-gate biases spread over 3..6 so that
        # heads start with different memory horizons; a small random input-gate bias.
        nn.init.zeros_(self.fgate.weight)
        with torch.no_grad():
            self.fgate.bias.copy_(torch.linspace(3.0, 6.0, self.num_heads))
        nn.init.zeros_(self.igate.weight)
        nn.init.normal_(self.igate.bias, mean=0.0, std=0.1)

    def zero_state(self, batch_size: int, device: torch.device | None = None) -> mLSTMBlockState:
        H, D = self.num_heads, self.head_dim
        f32 = dict(device=device, dtype=torch.float32)
        return mLSTMBlockState(
            conv=self.conv.zero_state(batch_size, device, torch.float32),
            C=torch.zeros(batch_size, H, D, D, **f32),
            n=torch.zeros(batch_size, H, D, **f32),
            m=torch.zeros(batch_size, H, **f32),
        )

    def _qkv_gates(self, x: Tensor, conv_state: Tensor, resets: Tensor | None):
        """x (B, T, E) -> q, k, v (B, H, T, D), i, f (B, H, T), z (B, T, inner), x_conv, conv state."""
        x_m, z = self.up(x).chunk(2, dim=-1)  # (B, T, inner) each
        x_conv, conv_state = self.conv(x_m, conv_state, resets)
        x_conv = F.silu(x_conv)
        q, k, v = self.q_proj(x_conv), self.k_proj(x_conv), self.v_proj(x_m)  # (B, T, inner)
        qkv = torch.cat([q, k, v], dim=-1)  # (B, T, 3 * inner)
        i, f = self.igate(qkv).transpose(1, 2), self.fgate(qkv).transpose(1, 2)  # (B, H, T)

        def heads(t: Tensor) -> Tensor:
            return t.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)  # (B, H, T, D)

        return heads(q), heads(k), heads(v), i, f, z, x_conv, conv_state

    def _output(self, h: Tensor, x_conv: Tensor, z: Tensor) -> Tensor:
        """h (B, H, T, D) -> (B, T, E)."""
        h = self.out_norm(h.transpose(1, 2))  # (B, T, inner)
        h = (h + self.skip * x_conv) * F.silu(z)
        return self.down(h)

    def forward(
        self, x: Tensor, state: mLSTMBlockState | None = None, resets: Tensor | None = None
    ) -> tuple[Tensor, mLSTMBlockState]:
        """x (B, T, E) -> y (B, T, E), state after the last step."""
        if state is None:
            state = self.zero_state(x.shape[0], x.device)
        q, k, v, i, f, z, x_conv, conv_state = self._qkv_gates(x, state.conv, resets)
        mlstm_cfg = self.config.mlstm
        h, (C, n, m) = mlstm(
            q, k, v, i, f, (state.C, state.n, state.m), resets,
            backend=self.config.mlstm_backend, chunk_size=mlstm_cfg.chunk_size, input_gate=mlstm_cfg.input_gate,
        )  # fmt: skip
        return self._output(h, x_conv, z), mLSTMBlockState(conv_state.float(), C, n, m)

    def step(self, x_t: Tensor, state: mLSTMBlockState | None = None) -> tuple[Tensor, mLSTMBlockState]:
        """x_t (B, E) -> y_t (B, E), next state; constant memory and time per step."""
        if state is None:
            state = self.zero_state(x_t.shape[0], x_t.device)
        q, k, v, i, f, z, x_conv, conv_state = self._qkv_gates(x_t.unsqueeze(1), state.conv, None)
        h_t, (C, n, m) = mlstm_step(
            q[:, :, 0], k[:, :, 0], v[:, :, 0], i[:, :, 0], f[:, :, 0], (state.C, state.n, state.m),
            backend=self.config.mlstm_backend, input_gate=self.config.mlstm.input_gate,
        )  # fmt: skip
        y = self._output(h_t.unsqueeze(2), x_conv, z).squeeze(1)
        return y, mLSTMBlockState(conv_state.float(), C, n, m)


class mLSTMBlock(nn.Module):
    """Pre-up-projection residual block: x + mLSTMLayer(LayerNorm(x))."""

    def __init__(self, config: xLSTMConfig):
        super().__init__()
        self.norm = nn.LayerNorm(config.embedding_dim, bias=config.bias)
        self.layer = mLSTMLayer(config)
        self.dropout = nn.Dropout(config.dropout)

    def zero_state(self, batch_size: int, device: torch.device | None = None) -> mLSTMBlockState:
        return self.layer.zero_state(batch_size, device)

    def forward(
        self, x: Tensor, state: mLSTMBlockState | None = None, resets: Tensor | None = None
    ) -> tuple[Tensor, mLSTMBlockState]:
        y, state = self.layer(self.norm(x), state, resets)
        return x + self.dropout(y), state

    def step(self, x_t: Tensor, state: mLSTMBlockState | None = None) -> tuple[Tensor, mLSTMBlockState]:
        y_t, state = self.layer.step(self.norm(x_t), state)
        return x_t + self.dropout(y_t), state
