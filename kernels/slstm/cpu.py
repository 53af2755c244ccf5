"""The C++ sLSTM on the CPU (backend ``"cpu"``): torch.library custom ops, their fake implementations, autograd.

* ``xlstm_seq::slstm_cpu_fwd``: all T steps in one call of the C++ recurrence (kernels/slstm/cpu/); returns h, the
  final state and, when asked to save, the pre-activations and states of every step for the backward.
* ``xlstm_seq::slstm_cpu_bwd``: the reverse-time recurrence; returns the gradient of the pre-activations (= the
  gradient of gates_x) and of the initial state. dR and db follow with one batched product
  (:mod:`xlstm_seq.kernels.slstm.grads`).

The reference (kernels/slstm/naive.py) runs the recurrence as a Python loop of about a dozen small tensor ops per
step, each paying dispatch overhead; here a step is one pass over a (batch row, head) pair's D units in C++, and the
pairs are split over the torch thread count. Computed in float32 (float64 stays float64, for gradcheck) whatever the
input dtype, as the reference.

Both ops have fake implementations, so ``torch.compile`` traces through them (an opaque call in the graph, instead
of T unrolled steps). Outside torch.compile the same two functions run through an autograd.Function instead: an
op's first call imports torch._dynamo (about 2 s), which a process that never compiles need not pay. Where the
library cannot be built (no C++ compiler, or the build failed), :func:`slstm_cpu` runs the reference and logs why,
once.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from xlstm_seq.kernels.slstm import cpu_loader
from xlstm_seq.kernels.slstm.grads import recurrent_weight_grads
from xlstm_seq.kernels.slstm.naive import SLSTMState, _slstm_recurrent
from xlstm_seq.kernels.validation import compute_dtype

__all__ = ["slstm_cpu", "slstm_cpu_kernel", "unavailable_reason"]

logger = logging.getLogger(__name__)

_FALLBACK_LOGGED: set[str] = set()
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
#: Below this many multiply-adds of the recurrent product (B T H D 4D), one thread: starting threads costs tens of
#: microseconds, more than a single step (an RL rollout's T = 1) takes.
_MIN_WORK_PER_THREAD = 1 << 20


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None or t.numel() == 0 else t.data_ptr()


def _threads(B: int, T: int, H: int, D: int) -> int:
    work = B * T * H * D * 4 * D
    return max(1, min(torch.get_num_threads(), B * H, work // _MIN_WORK_PER_THREAD))


# ------------------------------------------------------------------------------------------------ forward op


def _run_forward(
    gates_x: Tensor, R: Tensor, b: Tensor, state0: Tensor | None, resets: Tensor | None, save: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """gates_x (B,T,4,H,D), R (H,D,4,D), b (4,H,D), state0 (4,B,H,D) or None, resets (B,T) bool or None.

    Returns h (B,T,H,D) in gates_x's dtype, the final c, n, m, h (B,H,D) each, and the saved pre-activations and
    states (B,T,4,H,D) (empty when ``save`` is False), all but h in the compute dtype. The final state's parts are
    separate tensors, not views into one: a view's storage offset grows with B, and a compiled step taking the state
    back would guard on it (one more graph per batch size).
    """
    B, T, _, H, D = gates_x.shape
    cdt = compute_dtype(gates_x.dtype)
    pre_x = (gates_x.to(cdt) + b.to(cdt)).contiguous()  # (B,T,4,H,D)
    R_rows = R.to(cdt).reshape(H, D, 4 * D).contiguous()
    state0 = None if state0 is None else state0.to(cdt).contiguous()
    resets = None if resets is None else resets.to(torch.bool).contiguous()  # one byte per flag
    h = pre_x.new_empty(B, T, H, D)
    state_T = pre_x.new_empty(4, B, H, D)
    saved = (B, T, 4, H, D) if save else (0,)
    pre_save, state_save = pre_x.new_empty(saved), pre_x.new_empty(saved)
    forward = getattr(cpu_loader.load_library(), f"xlstm_slstm_cpu_fwd_{_SUFFIX[cdt]}")
    forward(
        *map(_ptr, (pre_x, R_rows, state0, resets, h, state_T, pre_save, state_save)), B, T, H, D, _threads(B, T, H, D)
    )
    c, n, m, h_last = (part.clone() for part in state_T.unbind(0))
    return h.to(gates_x.dtype), c, n, m, h_last, pre_save, state_save


# The ops wrap the plain functions, which the eager path (_EagerSlstmCpu) calls directly.
slstm_cpu_fwd = torch.library.custom_op("xlstm_seq::slstm_cpu_fwd", mutates_args=(), device_types="cpu")(_run_forward)


@slstm_cpu_fwd.register_fake
def _slstm_cpu_fwd_fake(gates_x, R, b, state0, resets, save):
    B, T, _, H, D = gates_x.shape
    cdt = compute_dtype(gates_x.dtype)
    saved = (B, T, 4, H, D) if save else (0,)
    state_parts = [gates_x.new_empty(B, H, D, dtype=cdt) for _ in range(4)]
    return (
        gates_x.new_empty(B, T, H, D),
        *state_parts,
        gates_x.new_empty(saved, dtype=cdt),
        gates_x.new_empty(saved, dtype=cdt),
    )


# ----------------------------------------------------------------------------------------------- backward op


def _run_backward(
    dh: Tensor,
    dstate_T: Tensor | None,
    R: Tensor,
    pre_save: Tensor,
    state_save: Tensor,
    state0: Tensor | None,
    resets: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """dh (B,T,H,D), dstate_T (4,B,H,D) or None, and the forward's R, saved tensors, state0 and resets.

    Returns dpre (B,T,4,H,D) (= d gates_x) and dstate0 (4,B,H,D), in the saved tensors' dtype.
    """
    B, T, _, H, D = pre_save.shape
    cdt = pre_save.dtype
    R_columns = R.to(cdt).reshape(H, D, 4 * D).transpose(1, 2).contiguous()  # (H,4D,D): R transposed per head
    dh = dh.to(cdt).contiguous()
    dstate_T = None if dstate_T is None else dstate_T.to(cdt).contiguous()
    state0 = None if state0 is None else state0.to(cdt).contiguous()
    resets = None if resets is None else resets.to(torch.bool).contiguous()
    dpre, dstate0 = pre_save.new_empty(B, T, 4, H, D), pre_save.new_empty(4, B, H, D)
    backward = getattr(cpu_loader.load_library(), f"xlstm_slstm_cpu_bwd_{_SUFFIX[cdt]}")
    tensors = (dh, dstate_T, R_columns, pre_save, state_save, state0, resets, dpre, dstate0)
    backward(*map(_ptr, tensors), B, T, H, D, _threads(B, T, H, D))
    return dpre, dstate0


slstm_cpu_bwd = torch.library.custom_op("xlstm_seq::slstm_cpu_bwd", mutates_args=(), device_types="cpu")(_run_backward)


@slstm_cpu_bwd.register_fake
def _slstm_cpu_bwd_fake(dh, dstate_T, R, pre_save, state_save, state0, resets):
    B, T, _, H, D = pre_save.shape
    return pre_save.new_empty(B, T, 4, H, D), pre_save.new_empty(4, B, H, D)


# -------------------------------------------------------------------------------------------------- autograd


def _setup_context(ctx, inputs, output) -> None:
    gates_x, R, b, state0, resets, save = inputs
    pre, states = output[-2:]
    ctx.save_for_backward(R, state0, resets, pre, states)
    ctx.saved = save
    ctx.dtypes = (gates_x.dtype, R.dtype, b.dtype, None if state0 is None else state0.dtype)


def _gradients(ctx, grads, run_backward):
    dh, dc, dn, dm, dh_last, _dpre_save, _dstate_save = grads
    R, state0, resets, pre, states = ctx.saved_tensors
    if not ctx.saved:
        raise RuntimeError(
            "slstm cpu: the forward ran with save=False (no gradient was required then), so there is nothing to "
            "differentiate; run the forward with gradients enabled"
        )
    gx_dtype, r_dtype, b_dtype, state0_dtype = ctx.dtypes
    B, T, _, H, D = pre.shape
    if dh is None:
        dh = pre.new_zeros(B, T, H, D)
    parts = (dc, dn, dm, dh_last)
    dstate_T = None
    if any(part is not None for part in parts):
        dstate_T = torch.stack([pre.new_zeros(B, H, D) if part is None else part.to(pre.dtype) for part in parts])
    dpre, dstate0 = run_backward(dh, dstate_T, R, pre, states, state0, resets)
    dR, db = recurrent_weight_grads(dpre, states, state0, resets)
    d_state0 = None if state0_dtype is None else dstate0.to(state0_dtype)
    return dpre.to(gx_dtype), dR.to(r_dtype), db.to(b_dtype), d_state0, None, None


def _op_backward(ctx, *grads):
    return _gradients(ctx, grads, torch.ops.xlstm_seq.slstm_cpu_bwd)


slstm_cpu_fwd.register_autograd(_op_backward, setup_context=_setup_context)


class _EagerSlstmCpu(torch.autograd.Function):
    """The same forward and backward outside torch.compile. The custom ops' first call imports torch._dynamo (about
    2 s); a process that never compiles (a short fit, an RL rollout) need not pay for it."""

    @staticmethod
    def forward(ctx, gates_x, R, b, state0, resets, save):
        outputs = _run_forward(gates_x, R, b, state0, resets, save)
        _setup_context(ctx, (gates_x, R, b, state0, resets, save), outputs)
        ctx.mark_non_differentiable(*outputs[-2:])
        ctx.set_materialize_grads(False)
        return outputs

    @staticmethod
    @torch.autograd.function.once_differentiable  # no second derivative: asking for one raises, never a silent zero
    def backward(ctx, *grads):
        return _gradients(ctx, grads, _run_backward)


# -------------------------------------------------------------------------------------------- public functions


def unavailable_reason() -> str:
    """Why the C++ sLSTM cannot run ("" when it can). Builds it on the first call of a machine (about a second);
    inside ``torch.compile`` only reports a failure already known (the build then happens at the first run)."""
    if torch.compiler.is_compiling():
        return cpu_loader.known_failure()
    try:
        cpu_loader.load_library()
    except cpu_loader.CpuBuildError as exc:
        return str(exc)
    return ""


def slstm_cpu_kernel(
    gates_x: Tensor,
    R: Tensor,
    b: Tensor,
    initial_state: SLSTMState | None = None,
    resets: Tensor | None = None,
) -> tuple[Tensor, SLSTMState]:
    """The C++ recurrence, no fallback: inputs as :func:`xlstm_seq.kernels.slstm.slstm` (already checked), on the CPU.

    Returns:
        h (B,T,H,D) in gates_x's dtype and the final state (c, n, m, h), each (B,H,D) in float32 (float64 for
        float64 inputs).
    """
    cdt = compute_dtype(gates_x.dtype)
    state0 = None if initial_state is None else torch.stack([s.to(cdt) for s in initial_state])
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (gates_x, R, b, state0))
    forward = slstm_cpu_fwd if torch.compiler.is_compiling() else _EagerSlstmCpu.apply
    h, c, n, m, h_last, _, _ = forward(gates_x, R, b, state0, resets, needs_grad)
    return h, (c, n, m, h_last)


def slstm_cpu(
    gates_x: Tensor,
    R: Tensor,
    b: Tensor,
    initial_state: SLSTMState | None = None,
    resets: Tensor | None = None,
) -> tuple[Tensor, SLSTMState]:
    """Backend ``"cpu"``: the C++ recurrence where it can be built, else the reference (the reason logged once)."""
    reason = unavailable_reason()
    if reason:
        if reason not in _FALLBACK_LOGGED:
            _FALLBACK_LOGGED.add(reason)
            logger.warning("xlstm_seq.kernels: slstm backend 'cpu' runs the reference: %s", reason)
        return _slstm_recurrent(gates_x, R, b, initial_state, resets)
    return slstm_cpu_kernel(gates_x, R, b, initial_state, resets)
