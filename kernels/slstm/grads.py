"""Gradients of the sLSTM's recurrent weights and biases from the gate gradients, shared by the compiled kernels.

A kernel's backward returns dpre (B,T,4,H,D), the gradient of the pre-activations, which is also the gradient of
gates_x. The weights' gradients are sums over (B, T): ``dR[h,k,g,j] = sum h_{t-1}[b,h,k] dpre_t[b,g,h,j]`` and
``db = sum dpre_t``, formed after the kernel with one batched product and one sum.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["previous_h", "recurrent_weight_grads"]


def previous_h(states: Tensor, state0: Tensor | None, resets: Tensor | None) -> Tensor:
    """h_{t-1} as step t saw it (B,T,H,D), from the saved states (B,T,4,H,D): the initial h at t=0, zeros after a
    reset."""
    h = states[:, :, 3]  # (B,T,H,D)
    first = state0[3].to(h.dtype) if state0 is not None else torch.zeros_like(h[:, 0])  # (B,H,D)
    h_prev = torch.cat([first.unsqueeze(1), h[:, :-1]], dim=1)
    if resets is not None:
        h_prev = h_prev.masked_fill(resets[:, :, None, None], 0.0)
    return h_prev


def recurrent_weight_grads(
    dpre: Tensor, states: Tensor, state0: Tensor | None, resets: Tensor | None
) -> tuple[Tensor, Tensor]:
    """dR (H,D,4,D) and db (4,H,D) in dpre's dtype, from dpre and the saved states (both (B,T,4,H,D))."""
    dR = torch.einsum("bthk,btghj->hkgj", previous_h(states, state0, resets), dpre)
    return dR, dpre.sum(dim=(0, 1))
