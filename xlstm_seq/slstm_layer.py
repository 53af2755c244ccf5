"""The sLSTM layer and the post-up-projection sLSTM block of the xLSTM paper (Fig. 9).

x -> LayerNorm -> causal conv -> SiLU feeding the input and forget gates (z and o see x directly) ->
sLSTM with block-diagonal recurrence per head -> head-wise norm -> residual; then LayerNorm -> gated MLP
-> residual.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xlstm_seq.compiled import CompiledPath, mark_batch_dynamic
from xlstm_seq.components import BlockDiagonalLinear, CausalConv1d, GatedMLP, MultiHeadLayerNorm
from xlstm_seq.config import xLSTMConfig
from xlstm_seq.kernels.registry import resolve_backend
from xlstm_seq.kernels.slstm import slstm, slstm_step
from xlstm_seq.kernels.slstm.naive import _slstm_recurrent, _step
from xlstm_seq.state import sLSTMBlockState

# The sLSTM recurrence is a loop over time: traced into a compiled whole-sequence pass it would unroll T steps
# into one graph (minutes of compiling, and again for every new T). The C++ and CUDA kernels are one opaque call
# in the graph; with the torch backend, a compiled pass instead leaves the loop eager and runs each step through
# this one compiled cell, shared by every sLSTM layer (graphs per shape).
_COMPILED_CELL = CompiledPath(_step, "forward", setting=True)


def _compiled_cell_step(pre_x, R, c, n, m, h, may_be_empty=True):
    dynamic = (pre_x, c, n, m, h)
    # Always with the empty-memory cap: one graph instead of two, and the same values (the cap only acts where
    # n = 0, i.e. exactly where ``may_be_empty`` would have been True).
    return _COMPILED_CELL(pre_x, R, c, n, m, h, True, device=pre_x.device, dynamic=dynamic)


@torch._disable_dynamo  # torch._dynamo.disable would import dynamo (and triton) with this module
def _slstm_with_compiled_cell(gates_x, R, b, state, resets):
    """The reference recurrence, stepping through the compiled cell; called from inside a compiled pass."""
    h, new_state = _slstm_recurrent(gates_x, R, b, state, resets, step=_compiled_cell_step)
    # The compiled code after the loop receives these: a batch size > 1 is dynamic there, as everywhere.
    mark_batch_dynamic((h, *new_state))
    return h, new_state


class sLSTMLayer(nn.Module):
    """Scalar-memory LSTM with exponential gating and memory mixing inside each head."""

    def __init__(self, config: xLSTMConfig):
        super().__init__()
        self.config = config
        E, H = config.embedding_dim, config.slstm_num_heads
        self.num_heads, self.head_dim = H, E // H
        D = self.head_dim
        self.conv = CausalConv1d(E, config.slstm.conv_kernel_size)
        # One block-diagonal (per head) input projection per gate, in the kernel's order i, f, z, o.
        self.gate_proj = nn.ModuleList([BlockDiagonalLinear(E, E, H) for _ in range(4)])
        self.R = nn.Parameter(torch.empty(H, D, 4, D))  # recurrent weights, block-diagonal per head
        self.b = nn.Parameter(torch.empty(4, H, D))  # gate biases
        self.out_norm = MultiHeadLayerNorm(H, D, bias=config.bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        D = self.head_dim
        nn.init.normal_(self.R, mean=0.0, std=(2.0 / (5.0 * D)) ** 0.5)
        with torch.no_grad():
            self.b.zero_()
            # Paper initialisation: forget-gate biases spread over 3..6 (long to very long memory),
            # a small input-gate bias.
            self.b[1] = torch.linspace(3.0, 6.0, D).expand(self.num_heads, D)
            self.b[0].normal_(mean=0.0, std=0.1)

    def zero_state(self, batch_size: int, device: torch.device | None = None) -> sLSTMBlockState:
        shape = (batch_size, self.num_heads, self.head_dim)
        f32 = dict(device=device, dtype=torch.float32)
        return sLSTMBlockState(
            conv=self.conv.zero_state(batch_size, device, torch.float32),
            c=torch.zeros(shape, **f32),
            n=torch.zeros(shape, **f32),
            m=torch.zeros(shape, **f32),
            h=torch.zeros(shape, **f32),
        )

    def _gates_x(self, x: Tensor, conv_state: Tensor, resets: Tensor | None) -> tuple[Tensor, Tensor]:
        """x (B, T, E) -> gate inputs (B, T, 4, H, D), conv state (B, K-1, E)."""
        x_conv, conv_state = self.conv(x, conv_state, resets)
        x_conv = F.silu(x_conv)
        sources = (x_conv, x_conv, x, x)  # i and f see the convolved input, z and o the raw one
        gates = torch.stack([proj(src) for proj, src in zip(self.gate_proj, sources, strict=True)], dim=2)
        return gates.unflatten(-1, (self.num_heads, self.head_dim)), conv_state

    def forward(
        self, x: Tensor, state: sLSTMBlockState | None = None, resets: Tensor | None = None
    ) -> tuple[Tensor, sLSTMBlockState]:
        """x (B, T, E) -> y (B, T, E), state after the last step."""
        if state is None:
            state = self.zero_state(x.shape[0], x.device)
        gates_x, conv_state = self._gates_x(x, state.conv, resets)
        carried = (state.c, state.n, state.m, state.h)
        if torch.compiler.is_compiling() and resolve_backend("slstm", self.config.slstm_backend, x.device) == "torch":
            h, (c, n, m, h_last) = _slstm_with_compiled_cell(gates_x, self.R, self.b, carried, resets)
        else:
            h, (c, n, m, h_last) = slstm(gates_x, self.R, self.b, carried, resets, backend=self.config.slstm_backend)
        return self.out_norm(h), sLSTMBlockState(conv_state.float(), c, n, m, h_last)

    def step(self, x_t: Tensor, state: sLSTMBlockState | None = None) -> tuple[Tensor, sLSTMBlockState]:
        """x_t (B, E) -> y_t (B, E), next state."""
        if state is None:
            state = self.zero_state(x_t.shape[0], x_t.device)
        gates_x, conv_state = self._gates_x(x_t.unsqueeze(1), state.conv, None)
        h_t, (c, n, m, h_last) = slstm_step(
            gates_x[:, 0], self.R, self.b, (state.c, state.n, state.m, state.h), backend=self.config.slstm_backend
        )
        return self.out_norm(h_t), sLSTMBlockState(conv_state.float(), c, n, m, h_last)


class sLSTMBlock(nn.Module):
    """Post-up-projection residual block: x + sLSTM(LN(x)), then + GatedMLP(LN(x))."""

    def __init__(self, config: xLSTMConfig):
        super().__init__()
        E = config.embedding_dim
        self.norm = nn.LayerNorm(E, bias=config.bias)
        self.layer = sLSTMLayer(config)
        self.ffn_norm = nn.LayerNorm(E, bias=config.bias)
        self.ffn = GatedMLP(
            E, config.slstm.ffn_proj_factor, config.num_blocks, bias=config.bias, dropout=config.dropout
        )
        self.dropout = nn.Dropout(config.dropout)

    def zero_state(self, batch_size: int, device: torch.device | None = None) -> sLSTMBlockState:
        return self.layer.zero_state(batch_size, device)

    def forward(
        self, x: Tensor, state: sLSTMBlockState | None = None, resets: Tensor | None = None
    ) -> tuple[Tensor, sLSTMBlockState]:
        y, state = self.layer(self.norm(x), state, resets)
        x = x + self.dropout(y)
        return x + self.ffn(self.ffn_norm(x)), state

    def step(self, x_t: Tensor, state: sLSTMBlockState | None = None) -> tuple[Tensor, sLSTMBlockState]:
        y_t, state = self.layer.step(self.norm(x_t), state)
        x_t = x_t + self.dropout(y_t)
        return x_t + self.ffn(self.ffn_norm(x_t)), state
