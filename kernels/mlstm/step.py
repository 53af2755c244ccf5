"""Fused mLSTM step in Triton (backend ``"triton"``): one launch updates (C, n, m) and computes h for all B*H heads.

For inference (generation, RL rollouts): the op has no autograd formula (train through ``mlstm`` instead). Triton is
imported lazily by the op implementation; importing this module only registers ``xlstm_seq::mlstm_step`` (with a
fake implementation, so ``torch.compile`` traces through it). The math is the naive reference's ``_step``.
"""

from __future__ import annotations

import torch

__all__ = ["mlstm_step_triton"]

MLSTMState = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

_STEP_KERNEL = None


def _kernel():
    """Defines (once) and returns the Triton step kernel; keeps ``import triton`` out of module import."""
    global _STEP_KERNEL
    if _STEP_KERNEL is not None:
        return _STEP_KERNEL
    import triton
    import triton.language as tl

    @triton.jit
    def _step_kernel(
        # pointers
        Q,
        K,
        V,
        I,
        F,
        C,
        N,
        M,
        H_OUT,
        C_NEW,
        N_NEW,
        M_NEW,
        # sizes
        scale,
        DK,
        DV,
        # meta-parameters
        EXP_GATE: tl.constexpr,
        BK: tl.constexpr,
        BV: tl.constexpr,
    ):
        bh = tl.program_id(0).to(tl.int64)
        pid_v = tl.program_id(1)
        offs_v = pid_v * BV + tl.arange(0, BV)
        mask_v = offs_v < DV
        offs_d = tl.arange(0, BK)

        fg = tl.load(F + bh).to(tl.float32)
        ig = tl.load(I + bh).to(tl.float32)
        # log(sigmoid(x)) = min(x, 0) - log(1 + exp(-|x|)), stable for any x.
        logf = tl.minimum(fg, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(fg)))
        logi = ig if EXP_GATE else tl.minimum(ig, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(ig)))
        m = tl.load(M + bh)
        m_new = tl.maximum(logf + m, logi)
        i_gate = tl.exp(logi - m_new)
        f_gate = tl.exp(logf + m - m_new)

        v = tl.load(V + bh * DV + offs_v, mask=mask_v, other=0.0).to(tl.float32)  # (BV,)
        num = tl.zeros((BV,), dtype=tl.float32)
        den = tl.zeros((BK,), dtype=tl.float32)
        for d0 in range(0, DK, BK):
            mask_d = (d0 + offs_d) < DK
            q = tl.load(Q + bh * DK + d0 + offs_d, mask=mask_d, other=0.0).to(tl.float32) * scale  # (BK,)
            k = tl.load(K + bh * DK + d0 + offs_d, mask=mask_d, other=0.0).to(tl.float32)
            tile = bh * DK * DV + (d0 + offs_d)[:, None] * DV + offs_v[None, :]
            mask = mask_d[:, None] & mask_v[None, :]
            c = tl.load(C + tile, mask=mask, other=0.0)  # (BK, BV)
            c = f_gate * c + i_gate * k[:, None] * v[None, :]
            tl.store(C_NEW + tile, c, mask=mask)
            num += tl.sum(q[:, None] * c, axis=0)
            n = tl.load(N + bh * DK + d0 + offs_d, mask=mask_d, other=0.0)
            n = f_gate * n + i_gate * k
            tl.store(N_NEW + bh * DK + d0 + offs_d, n, mask=mask_d & (pid_v == 0))
            den += q * n
        # m clamped as in the reference's normaliser (log_max(float32)): the floor neither overflows nor vanishes.
        m_floor = tl.minimum(tl.maximum(m_new, -87.72283905206835), 87.72283905206835)
        h = num / tl.maximum(tl.abs(tl.sum(den, axis=0)), tl.exp(-m_floor))
        tl.store(H_OUT + bh * DV + offs_v, h.to(H_OUT.dtype.element_ty), mask=mask_v)
        if pid_v == 0:
            tl.store(M_NEW + bh, m_new)

    _STEP_KERNEL = _step_kernel
    return _STEP_KERNEL


@torch.library.custom_op("xlstm_seq::mlstm_step", mutates_args=())
def _step_op(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    C: torch.Tensor,
    n: torch.Tensor,
    m: torch.Tensor,
    input_gate: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns h (B,H,DV) in q's dtype and the new C, n, m in float32."""
    import triton

    B, H, DK = q.shape
    DV = v.shape[-1]
    from xlstm_seq.kernels.mlstm.chunkwise_fwd import new_output

    h = new_output((B, H, DV), q.dtype, q.device)
    C_new, n_new, m_new = (
        new_output(C.shape, C.dtype, C.device),
        new_output(n.shape, n.dtype, n.device),
        torch.empty_like(m),
    )
    BK = min(64, max(16, triton.next_power_of_2(DK)))
    BV = min(128, max(16, triton.next_power_of_2(DV)))
    grid = (B * H, triton.cdiv(DV, BV))
    _kernel()[grid](
        q, k, v, i, f, C, n, m, h, C_new, n_new, m_new, DK**-0.5, DK, DV,
        EXP_GATE=input_gate == "exp", BK=BK, BV=BV,
    )  # fmt: skip
    return h, C_new, n_new, m_new


@_step_op.register_fake
def _(q, k, v, i, f, C, n, m, input_gate):
    B, H, _ = q.shape
    return q.new_empty(B, H, v.shape[-1]), torch.empty_like(C), torch.empty_like(n), torch.empty_like(m)


def mlstm_step_triton(
    q_t: torch.Tensor,
    k_t: torch.Tensor,
    v_t: torch.Tensor,
    i_t: torch.Tensor,
    f_t: torch.Tensor,
    state: MLSTMState | None = None,
    *,
    input_gate: str = "exp",
) -> tuple[torch.Tensor, MLSTMState]:
    """One fused mLSTM step (one kernel launch for all heads; no autograd).

    Args:
        q_t: Query (B,H,DK), float32, float16 or bfloat16.
        k_t: Key (B,H,DK).
        v_t: Value (B,H,DV).
        i_t: Input-gate pre-activation (B,H), same dtype as q_t.
        f_t: Forget-gate pre-activation (B,H), same dtype as q_t.
        state: ``(C (B,H,DK,DV), n (B,H,DK), m (B,H))`` float32, or None for zeros.
        input_gate: ``"exp"`` (default) or ``"sigmoid"``.

    Returns:
        h_t (B,H,DV) in q_t's dtype and the new state in float32.
    """
    from xlstm_seq.kernels.validation import check_mlstm_step_inputs

    dims = check_mlstm_step_inputs(q_t, k_t, v_t, i_t, f_t, state, input_gate)
    if q_t.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"the triton mLSTM backend takes float32, float16 or bfloat16 inputs, got {q_t.dtype}")
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q_t, k_t, v_t, i_t, f_t, *(state or ())))
    if needs_grad:
        raise RuntimeError(
            "the fused triton mLSTM step has no backward (it is for inference); run it under torch.no_grad(), "
            "or use backend='torch' (or 'auto') to differentiate through a step"
        )
    B, H, DK, DV = dims["B"], dims["H"], dims["DK"], dims["DV"]
    if state is None:
        C = q_t.new_zeros(B, H, DK, DV, dtype=torch.float32)
        n = q_t.new_zeros(B, H, DK, dtype=torch.float32)
        m = q_t.new_zeros(B, H, dtype=torch.float32)
    else:
        C, n, m = (s.float().contiguous() for s in state)
    args = (x.contiguous() for x in (q_t, k_t, v_t, i_t, f_t))
    h, C, n, m = torch.ops.xlstm_seq.mlstm_step(*args, C, n, m, input_gate)
    return h, (C, n, m)
