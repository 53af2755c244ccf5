"""sLSTM kernels: the public entry points ``slstm`` and ``slstm_step``, dispatched by backend name.

The math is documented in :mod:`xlstm_seq.kernels.slstm.naive`; backend names in :mod:`xlstm_seq.kernels.registry`.
"""

from __future__ import annotations

import torch

from xlstm_seq.kernels.registry import resolve_backend
from xlstm_seq.kernels.slstm.naive import (
    SLSTMState,
    _slstm_recurrent,
    _slstm_step,
    slstm_recurrent,
    slstm_step_naive,
)
from xlstm_seq.kernels.validation import check_slstm_inputs, check_slstm_step_inputs

__all__ = ["SLSTMState", "slstm", "slstm_recurrent", "slstm_step", "slstm_step_naive"]


def slstm(
    gates_x: torch.Tensor,
    R: torch.Tensor,
    b: torch.Tensor,
    initial_state: SLSTMState | None = None,
    resets: torch.Tensor | None = None,
    *,
    backend: str = "auto",
) -> tuple[torch.Tensor, SLSTMState]:
    """sLSTM over a whole sequence.

    Args:
        gates_x: Input contributions to the gates (B,T,4,H,D), order i, f, z, o; any T >= 1.
        R: Block-diagonal recurrent weights (H,D,4,D).
        b: Biases (4,H,D).
        initial_state: ``(c, n, m, h)`` each (B,H,D) float32, or None for zeros.
        resets: (B,T) bool; the state is cleared to zeros before step t where True. Default None.
        backend: ``"auto"`` (default), ``"torch"``, ``"cuda"`` or ``"cpu"``; see :mod:`xlstm_seq.kernels.registry`.
            ``"cuda"`` runs a CUDA kernel (:mod:`xlstm_seq.kernels.slstm.fused`) for float32/bfloat16 and head dims
            16, 32, ..., 128 (fused) and 160, 192, 224, 256 (multiblock), and the reference on the GPU otherwise.
            ``"cpu"`` runs the C++ recurrence (:mod:`xlstm_seq.kernels.slstm.cpu`) on CPU tensors.

    Returns:
        h (B,T,H,D) in gates_x's dtype, and the final state (c, n, m, h) in float32 (float64 for float64 inputs).
    """
    check_slstm_inputs(gates_x, R, b, initial_state, resets)
    name = resolve_backend("slstm", backend, gates_x.device)
    if name == "cuda":
        from xlstm_seq.kernels.slstm.fused import slstm_cuda  # defines the custom ops; compiles nothing

        return slstm_cuda(gates_x, R, b, initial_state, resets)
    if name == "cpu":
        from xlstm_seq.kernels.slstm.cpu import slstm_cpu

        return slstm_cpu(gates_x, R, b, initial_state, resets)
    if name != "torch":
        raise AssertionError(f"registry resolved slstm to {name!r}, which has no entry point")
    return _slstm_recurrent(gates_x, R, b, initial_state, resets)


def slstm_step(
    gates_x_t: torch.Tensor,
    R: torch.Tensor,
    b: torch.Tensor,
    state: SLSTMState | None = None,
    *,
    backend: str = "auto",
) -> tuple[torch.Tensor, SLSTMState]:
    """One sLSTM step.

    Args:
        gates_x_t: Input contributions to the gates (B,4,H,D), order i, f, z, o.
        R: Block-diagonal recurrent weights (H,D,4,D).
        b: Biases (4,H,D).
        state: ``(c, n, m, h)`` each (B,H,D) float32, or None for zeros.
        backend: ``"auto"`` (default), ``"torch"``, ``"cuda"`` or ``"cpu"``. Inside ``torch.compile``, ``"cpu"``
            runs the reference's ops: a dozen small ops that inductor fuses into the caller's graph, faster there
            than a call out of it.

    Returns:
        h_t (B,H,D) in gates_x_t's dtype, and the new state in float32 (float64 for float64 inputs).
    """
    check_slstm_step_inputs(gates_x_t, R, b, state)
    name = resolve_backend("slstm", backend, gates_x_t.device)
    if name == "cuda":  # one run of the CUDA kernel with T = 1
        from xlstm_seq.kernels.slstm.fused import slstm_cuda

        h, state = slstm_cuda(gates_x_t.unsqueeze(1), R, b, state, None)
        return h[:, 0], state
    if name == "cpu" and not torch.compiler.is_compiling():  # one call of the C++ recurrence with T = 1
        from xlstm_seq.kernels.slstm.cpu import slstm_cpu

        h, state = slstm_cpu(gates_x_t.unsqueeze(1), R, b, state, None)
        return h[:, 0], state
    if name not in ("torch", "cpu"):
        raise AssertionError(f"registry resolved slstm to {name!r}, which has no entry point")
    return _slstm_step(gates_x_t, R, b, state)
