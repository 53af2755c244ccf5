"""The CUDA sLSTM (backend ``"cuda"``): torch.library custom ops, their fake implementations, autograd.

* ``xlstm_seq::slstm_fused_fwd``: all T steps in one kernel (kernels/slstm/cuda/); returns h, the final state and,
  when asked to save, the pre-activations and states every step for the backward.
* ``xlstm_seq::slstm_fused_bwd``: the reverse-time kernel; returns the gradient of the pre-activations (which is
  the gradient of gates_x) and of the initial state. The gradients of R and b are sums over (B, T) of
  ``h_{t-1} (x) dpre_t`` and of ``dpre_t``; they are formed after the kernel with one batched GEMM and one sum.

Two kernel variants sit behind the same ops (``variant``; see :mod:`xlstm_seq.kernels.slstm.cuda_loader`):
``fused`` for head dims 16, 32, ..., 128 (one block per head and 16 batch rows) and ``multiblock`` for 160, 192,
224 and 256 (a head's gate columns spread over D / 32 blocks that meet at a barrier every step).

STATUS: the fused variant passed its ``gpu`` tests in tests/kernels/test_slstm_cuda.py on an NVIDIA H200
(2026-12-04: torch 2.11, CUDA 13.0; float32 and bfloat16 forward and backward against the reference with resets and
initial states, T = 4096 without NaN, chunks == steps == one pass, torch.compile, pickling), so ``auto`` picks this
backend wherever it can be built. The multiblock variant is compiled for sm_80 and sm_90 on CPU machines; its ``gpu``
tests (the same comparisons at head dims 160, 192 and 256) are what confirms it on a GPU (kernels/slstm/cuda/README.md
says where they have run); until they have, backend ``"cuda"`` uses it only where ``XLSTM_SEQ_SLSTM_MULTIBLOCK=1``.
Timings: benchmarks/kernels/slstm_gpu.md.

Both ops have fake implementations, so ``torch.compile`` and FakeTensor tracing see them without a GPU. Inputs no
variant covers (float64/float16; head dims other than 16, 32, ..., 128 and 160, 192, 224, 256) run the reference in
:mod:`xlstm_seq.kernels.slstm.naive` on the same device, logged once per reason.
"""

from __future__ import annotations

import logging
import os

import torch
from torch import Tensor

from xlstm_seq.kernels.slstm.cuda_loader import load_extension, resolve_variant, unsupported_reason
from xlstm_seq.kernels.slstm.grads import recurrent_weight_grads
from xlstm_seq.kernels.slstm.naive import SLSTMState, _slstm_recurrent

__all__ = ["slstm_cuda", "slstm_fused"]

logger = logging.getLogger(__name__)

_FALLBACK_LOGGED: set[str] = set()
#: Until the multiblock kernel has passed its ``gpu`` tests on a device, backend ``"cuda"`` (and so ``auto``) runs it
#: only where this variable allows it (:func:`multiblock_enabled`); otherwise head dims above 128 keep the reference, as
#: before the kernel existed. ``slstm_fused(..., variant=...)`` runs it regardless.
MULTIBLOCK_ENV = "XLSTM_SEQ_SLSTM_MULTIBLOCK"

#: Test hook: True makes the kernels' outputs start as NaN, so that an element a kernel never writes fails a test.
POISON_OUTPUTS = False
#: Test hook: > 0 caps the block groups per launch of the multiblock kernel, so that tests reach its batch loop.
MAX_GROUPS_PER_LAUNCH = 0


def _kernel_R(R: Tensor, dtype: torch.dtype) -> Tensor:
    """R (H,D,4,D) -> (H,D,4D) contiguous in the kernel's dtype (bf16 builds multiply by bf16 R)."""
    H, D = R.shape[0], R.shape[1]
    Rk = R.to(dtype).reshape(H, D, 4 * D).contiguous()
    return Rk if Rk.data_ptr() % 32 == 0 else Rk.clone()  # the kernel loads R in 32-byte aligned tiles


def _contiguous(x: Tensor | None) -> Tensor | None:
    return None if x is None else x.contiguous()


# ------------------------------------------------------------------------------------------------ forward op


@torch.library.custom_op("xlstm_seq::slstm_fused_fwd", mutates_args=(), device_types="cuda")
def slstm_fused_fwd(
    gates_x: Tensor,
    R: Tensor,
    b: Tensor,
    state0: Tensor | None,
    resets: Tensor | None,
    save: bool,
    allow_r_in_smem: bool,
    variant: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """gates_x (B,T,4,H,D) f32/bf16, R (H,D,4,D), b (4,H,D), state0 (4,B,H,D) f32 or None, resets (B,T) bool or None.

    ``variant``: the kernel (``"auto"``, ``"fused"`` or ``"multiblock"``). Returns h (B,T,H,D) in gates_x's dtype,
    the final state (4,B,H,D) f32, and the saved pre-activations and states (B,T,4,H,D) f32 (empty when ``save`` is
    False).
    """
    _, _, _, H, D = gates_x.shape
    ext = load_extension(D, H, gates_x.dtype, gates_x.device, variant)
    h, state_T, pre, states = ext.forward(
        gates_x.contiguous(),
        _kernel_R(R, gates_x.dtype),
        b.to(torch.float32).contiguous(),
        _contiguous(state0),
        _contiguous(resets),
        save,
        allow_r_in_smem,
        POISON_OUTPUTS,
        MAX_GROUPS_PER_LAUNCH,
    )
    return h, state_T, pre, states


@slstm_fused_fwd.register_fake
def _slstm_fused_fwd_fake(gates_x, R, b, state0, resets, save, allow_r_in_smem, variant):
    B, T, _, H, D = gates_x.shape
    f32 = torch.float32
    saved = (B, T, 4, H, D) if save else (0,)
    return (
        gates_x.new_empty(B, T, H, D),
        gates_x.new_empty(4, B, H, D, dtype=f32),
        gates_x.new_empty(saved, dtype=f32),
        gates_x.new_empty(saved, dtype=f32),
    )


# ----------------------------------------------------------------------------------------------- backward op


@torch.library.custom_op("xlstm_seq::slstm_fused_bwd", mutates_args=(), device_types="cuda")
def slstm_fused_bwd(
    dh: Tensor,
    dstate_T: Tensor | None,
    R: Tensor,
    pre_save: Tensor,
    state_save: Tensor,
    state0: Tensor | None,
    resets: Tensor | None,
    allow_r_in_smem: bool,
    variant: str,
) -> tuple[Tensor, Tensor]:
    """dh (B,T,H,D), dstate_T (4,B,H,D) f32 or None, and the forward's R, saved tensors, state0, resets, variant.

    Returns dpre (B,T,4,H,D) f32 (= d gates_x) and dstate0 (4,B,H,D) f32.
    """
    _, _, _, H, D = pre_save.shape
    ext = load_extension(D, H, dh.dtype, dh.device, variant)
    dpre, dstate0 = ext.backward(
        dh.contiguous(),
        _contiguous(dstate_T),
        _kernel_R(R, dh.dtype),
        pre_save,
        state_save,
        _contiguous(state0),
        _contiguous(resets),
        allow_r_in_smem,
        POISON_OUTPUTS,
        MAX_GROUPS_PER_LAUNCH,
    )
    return dpre, dstate0


@slstm_fused_bwd.register_fake
def _slstm_fused_bwd_fake(dh, dstate_T, R, pre_save, state_save, state0, resets, allow_r_in_smem, variant):
    B, T, _, H, D = pre_save.shape
    return pre_save.new_empty(B, T, 4, H, D), pre_save.new_empty(4, B, H, D)


# -------------------------------------------------------------------------------------------------- autograd


def _setup_context(ctx, inputs, output) -> None:
    gates_x, R, b, state0, resets, save, allow_r_in_smem, variant = inputs
    _, _, pre, states = output
    ctx.save_for_backward(R, state0, resets, pre, states)
    ctx.saved = save
    ctx.dtypes = (gates_x.dtype, R.dtype, b.dtype)
    ctx.has_state0 = state0 is not None
    ctx.allow_r_in_smem = allow_r_in_smem
    ctx.variant = variant


def _backward(ctx, dh, dstate_T, _dpre_save, _dstate_save):
    R, state0, resets, pre, states = ctx.saved_tensors
    if not ctx.saved:
        raise RuntimeError(
            "slstm cuda: the forward ran with save=False (no gradient was required then), so there is nothing to "
            "differentiate; run the forward with gradients enabled"
        )
    gx_dtype, r_dtype, b_dtype = ctx.dtypes
    if dh is None:
        B, T, _, H, D = pre.shape
        dh = pre.new_zeros(B, T, H, D, dtype=gx_dtype)
    dpre, dstate0 = torch.ops.xlstm_seq.slstm_fused_bwd(
        dh, dstate_T, R, pre, states, state0, resets, ctx.allow_r_in_smem, ctx.variant
    )
    dR, db = recurrent_weight_grads(dpre, states, state0, resets)  # float32
    d_state0 = dstate0 if ctx.has_state0 else None
    return dpre.to(gx_dtype), dR.to(r_dtype), db.to(b_dtype), d_state0, None, None, None, None


slstm_fused_fwd.register_autograd(_backward, setup_context=_setup_context)


# -------------------------------------------------------------------------------------------- public functions


def slstm_fused(
    gates_x: Tensor,
    R: Tensor,
    b: Tensor,
    initial_state: SLSTMState | None = None,
    resets: Tensor | None = None,
    *,
    allow_r_in_smem: bool = True,
    variant: str = "auto",
) -> tuple[Tensor, SLSTMState]:
    """The CUDA kernels, no fallback: gates_x (B,T,4,H,D) float32/bfloat16 on a CUDA device, D a head dim the variant
    covers (fused: 16, 32, ..., 128; multiblock: 64, 96, ..., 256).

    Args:
        gates_x, R, b, initial_state, resets: as :func:`xlstm_seq.kernels.slstm.slstm` (inputs already checked).
        allow_r_in_smem: fused variant: False keeps R in global memory even where it fits in shared memory (tests
            that path). The multiblock variant always keeps its slices of R in shared memory.
        variant: ``"auto"`` (default: fused up to head dim 128, multiblock above), ``"fused"`` or ``"multiblock"``.

    Returns:
        h (B,T,H,D) in gates_x's dtype and the final state (c, n, m, h), each (B,H,D) float32.
    """
    variant = resolve_variant(gates_x.shape[-1], variant)
    state0 = None if initial_state is None else torch.stack([s.to(torch.float32) for s in initial_state])
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (gates_x, R, b, state0))
    h, state_T, _, _ = slstm_fused_fwd(gates_x, R, b, state0, resets, needs_grad, allow_r_in_smem, variant)
    c, n, m, h_last = state_T.unbind(0)
    return h, (c, n, m, h_last)


def multiblock_enabled() -> bool:
    """Whether backend ``"cuda"`` may run the multiblock kernel: ``XLSTM_SEQ_SLSTM_MULTIBLOCK`` is "1", or names a
    file that exists (a GPU run writes it once the kernel's tests have passed there, while other work goes on)."""
    value = os.environ.get(MULTIBLOCK_ENV, "")
    return value == "1" or (value not in ("", "0") and os.path.isfile(value))


def fallback_reason(head_dim: int, dtype: torch.dtype) -> str:
    """Why backend ``"cuda"`` runs the reference for this head dim and dtype ("" when a CUDA kernel runs)."""
    reason = unsupported_reason(head_dim, dtype)
    if not reason and resolve_variant(head_dim) == "multiblock" and not multiblock_enabled():
        reason = f"head dim {head_dim}: the multiblock kernel is not yet confirmed on a GPU ({MULTIBLOCK_ENV} unset)"
    return reason


def slstm_cuda(
    gates_x: Tensor,
    R: Tensor,
    b: Tensor,
    initial_state: SLSTMState | None = None,
    resets: Tensor | None = None,
) -> tuple[Tensor, SLSTMState]:
    """Backend ``"cuda"``: a CUDA kernel where one covers the inputs, else the reference on the same device.

    The fallback (float64/float16 inputs; head dims outside 16, 32, ..., 128 and 160, 192, 224, 256, e.g. 240; the
    multiblock head dims unless ``XLSTM_SEQ_SLSTM_MULTIBLOCK=1``) is logged once per reason.
    """
    reason = fallback_reason(gates_x.shape[-1], gates_x.dtype)
    if reason:
        if reason not in _FALLBACK_LOGGED:
            _FALLBACK_LOGGED.add(reason)
            logger.info("xlstm_seq.kernels: slstm backend 'cuda' runs the reference for %s", reason)
        return _slstm_recurrent(gates_x, R, b, initial_state, resets)
    return slstm_fused(gates_x, R, b, initial_state, resets)
