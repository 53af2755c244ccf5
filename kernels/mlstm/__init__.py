"""mLSTM kernels: the public entry points ``mlstm`` and ``mlstm_step``, dispatched by backend name.

The math, the gradient convention and the three reference forms are documented in
:mod:`xlstm_seq.kernels.mlstm.naive`; backend names in :mod:`xlstm_seq.kernels.registry`.
"""

from __future__ import annotations

import torch

from xlstm_seq.kernels.mlstm.naive import (
    DEFAULT_CHUNK_SIZE,
    MLSTMState,
    _mlstm_chunkwise,
    _mlstm_step,
    mlstm_chunkwise,
    mlstm_parallel,
    mlstm_recurrent,
    mlstm_step_naive,
)
from xlstm_seq.kernels.registry import resolve_backend
from xlstm_seq.kernels.validation import check_mlstm_inputs, check_mlstm_step_inputs

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MLSTMState",
    "mlstm",
    "mlstm_chunkwise",
    "mlstm_parallel",
    "mlstm_recurrent",
    "mlstm_step",
    "mlstm_step_naive",
]


def mlstm(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    initial_state: MLSTMState | None = None,
    resets: torch.Tensor | None = None,
    *,
    backend: str = "auto",
    chunk_size: int | None = None,
    input_gate: str = "exp",
) -> tuple[torch.Tensor, MLSTMState]:
    """mLSTM over a whole sequence.

    Args:
        q: Queries (B,H,T,DK); any T >= 1.
        k: Keys (B,H,T,DK).
        v: Values (B,H,T,DV).
        i: Input-gate pre-activations (B,H,T), same dtype as q.
        f: Forget-gate pre-activations (B,H,T), same dtype as q (the forget gate is always a sigmoid).
        initial_state: ``(C (B,H,DK,DV), n (B,H,DK), m (B,H))`` float32, or None for zeros.
        resets: (B,T) bool; memory is cleared to the zero state before step t where True. Default None.
        backend: ``"auto"`` (default), ``"torch"`` or ``"triton"``; see :mod:`xlstm_seq.kernels.registry`.
        chunk_size: Chunk length of the chunkwise form, any value >= 1 (``triton``: 16, 32, 64, 128 or 256). None:
            ``DEFAULT_CHUNK_SIZE`` (64).
        input_gate: ``"exp"`` (default) or ``"sigmoid"``.

    Returns:
        h (B,H,T,DV) in q's dtype, and the final state (C, n, m) in float32 (float64 for float64 inputs).
    """
    check_mlstm_inputs(q, k, v, i, f, initial_state, resets, chunk_size, input_gate)
    name = resolve_backend("mlstm", backend, q.device)
    if name == "triton":
        from xlstm_seq.kernels.mlstm.chunkwise import mlstm_chunkwise_triton

        return mlstm_chunkwise_triton(
            q, k, v, i, f, initial_state, resets, chunk_size=chunk_size, input_gate=input_gate
        )
    if name != "torch":
        raise AssertionError(f"registry resolved mlstm to {name!r}, which has no entry point")
    return _mlstm_chunkwise(q, k, v, i, f, initial_state, resets, chunk_size, input_gate)


def mlstm_step(
    q_t: torch.Tensor,
    k_t: torch.Tensor,
    v_t: torch.Tensor,
    i_t: torch.Tensor,
    f_t: torch.Tensor,
    state: MLSTMState | None = None,
    *,
    backend: str = "auto",
    input_gate: str = "exp",
) -> tuple[torch.Tensor, MLSTMState]:
    """One mLSTM step with constant memory (generation, RL rollouts).

    Args:
        q_t: Query (B,H,DK).
        k_t: Key (B,H,DK).
        v_t: Value (B,H,DV).
        i_t: Input-gate pre-activation (B,H), same dtype as q_t.
        f_t: Forget-gate pre-activation (B,H), same dtype as q_t.
        state: ``(C (B,H,DK,DV), n (B,H,DK), m (B,H))`` float32, or None for zeros.
        backend: ``"auto"`` (default), ``"torch"`` or ``"triton"``. The fused ``triton`` step has no backward:
            ``auto`` uses ``torch`` when a gradient is needed, and ``"triton"`` raises then.
        input_gate: ``"exp"`` (default) or ``"sigmoid"``.

    Returns:
        h_t (B,H,DV) in q_t's dtype, and the new state in float32 (float64 for float64 inputs).
    """
    check_mlstm_step_inputs(q_t, k_t, v_t, i_t, f_t, state, input_gate)
    name = resolve_backend("mlstm", backend, q_t.device)
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (q_t, k_t, v_t, i_t, f_t, *(state or ()))
    )
    if name == "triton" and needs_grad and backend == "auto":
        # The fused step is inference-only (no backward); the reference step is differentiable.
        name = "torch"
    if name == "triton":
        from xlstm_seq.kernels.mlstm.step import mlstm_step_triton

        return mlstm_step_triton(q_t, k_t, v_t, i_t, f_t, state, input_gate=input_gate)
    if name != "torch":
        raise AssertionError(f"registry resolved mlstm to {name!r}, which has no entry point")
    return _mlstm_step(q_t, k_t, v_t, i_t, f_t, state, input_gate)
