r"""Chunkwise mLSTM in Triton (backend ``"triton"``): forward, backward, ``torch.library`` ops, public function.

Nothing here imports Triton at import time: the kernel modules (:mod:`.chunkwise_fwd`, :mod:`.chunkwise_bwd`) are
imported inside the op implementations. Importing this module registers the ops ``xlstm_seq::mlstm_chunkwise_fwd``
and ``xlstm_seq::mlstm_chunkwise_bwd`` (with fake implementations, so ``torch.compile`` traces through them).

Math (per batch element and head; the notation of :mod:`xlstm_seq.kernels.mlstm.naive`). The padded sequence is cut
into NC chunks of L steps. Per step the host computes, in float32 (``_gate_prep``):

* ``logi``, ``logf``: log input and forget gates (padding: ``logi = -inf``, ``logf = 0``, so it neither writes nor
  decays);
* ``cs``: the cumulative ``logf`` inside the chunk (plain, not restarted at resets: differences inside one segment
  are what matter);
* ``seg`` (B,TP): resets seen so far inside the chunk; a step "is carried" (sees the state entering the chunk) when
  ``seg == 0``;
* ``logim = max(logi, logf)`` at reset steps, ``logi`` elsewhere: the zero state a reset installs has m = 0, and its
  path into m_t looks like a key at the reset step with log weight ``logf``;
* ``mloc`` (B,H,NC): the local part of the chunk's end stabiliser, ``max_l (cs_last - cs_l + logim_l)`` over the
  last row's segment.

Then the exact per-step stabiliser is ``m_j = max(cs_j + m_in if carried, max_{l<=j, same seg} cs_j - cs_l +
logim_l)``, and

    h_j = (sum_l S_jl W_jl v_l + w_j q_j C_in) / max(|sum_l S_jl W_jl + w_j q_j.n_in|, exp(-m_j))
    S_jl = scale q_j.k_l,  W_jl = exp(cs_j - cs_l + logi_l - m_j),  w_j = scale exp(cs_j + m_in - m_j) (carried)

Gradient convention: exactly the naive reference's (plain autograd through the stabilised forward, m not detached).
h does not depend on any stabiliser (num and den share the factor exp(-m_j), the floor too), so the backward kernels
hold every m constant ("m constant" convention), which is exact for h and for the chunk-to-chunk states. The one
place where m is not a pure stabiliser is the returned final state (C_T, n_T, m_T): the host adds
``(dm_T - <dC_T, C_T> - <dn_T, n_T>) * d m_T / d(inputs)``, where m_T is a max-plus expression of the gates and m0,
so its derivative is an indicator of the winning path (``_final_m_correction``). Gate gradients come from the
identity ``dD_jl = dS_jl S_jl``: ``q_j.dq_j`` is the row sum and ``k_l.dk_l`` the column sum of dD, so
``d cs_t = q_t.dq_t - k_t.dk_t (+ <dC_out, C_out> + <dn_out, n_out> at the chunk's last step)`` and
``d logi_t = k_t.dk_t``; ``d logf`` is the reverse cumulative sum of ``d cs`` inside each chunk.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["TRITON_CHUNK_SIZES", "mlstm_chunkwise_triton"]

#: Chunk sizes the Triton kernel accepts (powers of two: Triton tiles need them, and tl.dot needs >= 16).
TRITON_CHUNK_SIZES = (16, 32, 64, 128, 256)
#: Query/key tile inside a chunk (the second tiling level); a chunk of L steps is L / BL tiles.
_BLOCK_L = 64

MLSTMState = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _logsigmoid(x: torch.Tensor) -> torch.Tensor:
    # The same expression as the naive reference, so gates agree bit for bit.
    return -F.softplus(-x, threshold=40.0)


def _block_l(chunk_size: int) -> int:
    return min(chunk_size, _BLOCK_L)


def check_triton_chunk_size(chunk_size: int) -> None:
    """The Triton kernel tiles a chunk in registers, so its length must be one of ``TRITON_CHUNK_SIZES``."""
    if chunk_size not in TRITON_CHUNK_SIZES:
        sizes = ", ".join(map(str, TRITON_CHUNK_SIZES))
        raise ValueError(f"the triton mLSTM backend needs chunk_size in ({sizes}), got {chunk_size}")


def _gate_prep(i: torch.Tensor, f: torch.Tensor, resets: torch.Tensor | None, input_gate: str, L: int) -> dict:
    """Per-step gate quantities, padded to TP = NC * L. i, f (B,H,T); resets (B,T) bool or None."""
    B, H, T = i.shape
    NC = -(-T // L)
    pad = NC * L - T
    logf = _logsigmoid(f.float())
    logi = i.float() if input_gate == "exp" else _logsigmoid(i.float())
    logf = F.pad(logf, (0, pad), value=0.0)  # (B,H,TP)
    logi = F.pad(logi, (0, pad), value=float("-inf"))  # (B,H,TP)
    if resets is None:
        r = torch.zeros(B, NC * L, dtype=torch.bool, device=i.device)
    else:
        r = F.pad(resets, (0, pad), value=False)  # (B,TP)
    seg = r.view(B, NC, L).to(torch.int32).cumsum(-1, dtype=torch.int32)  # (B,NC,L)
    cs = logf.view(B, H, NC, L).cumsum(-1)  # (B,H,NC,L)
    logim = torch.where(r[:, None], torch.maximum(logi, logf), logi)  # (B,H,TP)
    same_as_last = (seg == seg[..., -1:])[:, None]  # (B,1,NC,L)
    local = cs[..., -1:] - cs + logim.view(B, H, NC, L)
    mloc = local.masked_fill(~same_as_last, float("-inf")).amax(-1)  # (B,H,NC)
    return {
        "logi": logi.contiguous(),
        "logf": logf,
        "cs": cs.reshape(B, H, NC * L).contiguous(),
        "seg": seg.reshape(B, NC * L).contiguous(),
        "logim": logim.contiguous(),
        "mloc": mloc.contiguous(),
        "resets": r,
        "NC": NC,
    }


def _forward(q, k, v, i, f, C0, n0, m0, resets, chunk_size, input_gate):
    """Runs both forward kernels. Returns h, C_all, n_all, m_all, m_row, den_row (see chunkwise_fwd)."""
    from xlstm_seq.kernels.mlstm.chunkwise_fwd import launch_fwd_out, launch_fwd_state

    g = _gate_prep(i, f, resets, input_gate, chunk_size)
    C_all, n_all, m_all = launch_fwd_state(k, v, g["cs"], g["logi"], g["seg"], g["mloc"], C0, n0, m0, chunk_size)
    h, m_row, den_row = launch_fwd_out(
        q, k, v, g["cs"], g["logi"], g["logim"], g["seg"], C_all, n_all, m_all, chunk_size, _block_l(chunk_size)
    )
    return h, C_all, n_all, m_all, m_row, den_row


def _final_m_correction(logi, logf, resets, m0, dm_eff):
    """Gradient of the final stabiliser m_T (a max over paths) times ``dm_eff`` (B,H), as (dlogi, dlogf, dm0).

    m_T = max(sum_t logf_t + m0 (no reset in the row), max_{s in the last segment} sum_{t>s} logf_t + logim_s); its
    derivative is 1 along the winning path. logi, logf (B,H,T) fp32 unpadded; resets (B,T) bool or None.
    """
    B, H, T = logi.shape
    positions = torch.arange(T, device=logi.device)
    suffix = logf.flip(-1).cumsum(-1).flip(-1)  # (B,H,T) sum_{t>=s} logf_t
    after = suffix - logf  # sum_{t>s} logf_t
    if resets is None:
        resets = torch.zeros(B, T, dtype=torch.bool, device=logi.device)
    last_reset = torch.where(resets, positions, -1).amax(-1)  # (B,)
    in_last = (positions >= last_reset[:, None])[:, None]  # (B,1,T)
    logim = torch.where(resets[:, None], torch.maximum(logi, logf), logi)
    cand = torch.where(in_last, after + logim, float("-inf"))  # (B,H,T)
    init = torch.where((last_reset < 0)[:, None], suffix[..., 0] + m0, float("-inf"))  # (B,H)
    idx = torch.cat([init[..., None], cand], -1).argmax(-1)  # (B,H); 0 = the initial state's path
    s = idx - 1
    dlogf = dm_eff[..., None] * (positions > s[..., None])
    at_s = positions == s[..., None]  # (B,H,T)
    via_logf = resets[:, None] & (logf > logi)  # the zero state's path at a reset step
    dlogi = torch.where(at_s & ~via_logf, dm_eff[..., None], 0.0)
    dlogf = dlogf + torch.where(at_s & via_logf, dm_eff[..., None], 0.0)
    return dlogi, dlogf, torch.where(idx == 0, dm_eff, 0.0)


def _per_step(x: torch.Tensor, L: int) -> torch.Tensor:
    """(B,H,NC) per-chunk values -> (B,H,NC*L) per step."""
    return x.repeat_interleave(L, dim=-1)


def _backward(q, k, v, i, f, C0, n0, m0, resets, h, C_all, n_all, m_all, m_row, den_row, dh, dC_T, dn_T, dm_T, L, gate):
    from xlstm_seq.kernels.mlstm.chunkwise_bwd import launch_bwd

    B, H, T, DK = q.shape
    g = _gate_prep(i, f, resets, gate, L)
    NC = g["NC"]
    pad = NC * L - T
    scale = DK**-0.5

    # Per-step scalars of the normaliser h = num / Z, Z = max(|den|, exp(-m)), m capped as in the forward (so 1/Z is
    # finite where den = 0); padded rows (den = 0) get rz = 0, so that they reach no gradient.
    from xlstm_seq.kernels.mlstm.naive import log_max

    bound = log_max(torch.float32)
    floor = torch.exp(-m_row.clamp(-bound, bound))
    real = torch.arange(NC * L, device=q.device) < T  # (TP,)
    rz = torch.where(real, 1.0 / torch.maximum(den_row.abs(), floor), 0.0)  # (B,H,TP)
    delta = F.pad((dh.float() * h.float()).sum(-1), (0, pad))  # (B,H,TP) dh.h
    dden = torch.where(den_row.abs() > floor, -torch.sign(den_row) * delta * rz, 0.0)
    carried = (g["seg"] == 0)[:, None]  # (B,1,TP)
    w_in = torch.where(carried, torch.exp(g["cs"] + _per_step(m_all[..., :-1], L) - m_row), 0.0)
    cq, cn = scale * w_in * rz, scale * w_in * dden
    cs_last = _per_step(g["cs"].view(B, H, NC, L)[..., -1], L)
    seg_last = _per_step(g["seg"].view(B, NC, L)[..., -1], L)
    u = torch.where(
        (g["seg"] == seg_last)[:, None], torch.exp(cs_last - g["cs"] + g["logi"] - _per_step(m_all[..., 1:], L)), 0.0
    )

    dq, dk, dv, dC0, dn0, e = launch_bwd(
        q, k, v, dh.contiguous(), g, C_all, n_all, m_all, m_row, rz.contiguous(), dden.contiguous(),
        cq.contiguous(), cn.contiguous(), u.contiguous(), dC_T.float().contiguous(), dn_T.float().contiguous(),
        L, _block_l(L),
    )  # fmt: skip

    # Gates: d cs = q.dq - k.dk (+ the end-state term at each chunk's last step); d logf = reverse cumsum in chunk.
    qdq = F.pad((q.float() * dq).sum(-1), (0, pad))  # (B,H,TP)
    kdk = F.pad((k.float() * dk).sum(-1), (0, pad))
    dcs = (qdq - kdk).view(B, H, NC, L).clone()
    dcs[..., -1] += e
    dlogf = dcs.flip(-1).cumsum(-1).flip(-1).reshape(B, H, NC * L)[..., :T]
    dlogi = kdk[..., :T]
    dm0 = (C0 * dC0).sum((-2, -1)) + (n0 * dn0).sum(-1)

    # The final state's stabiliser is the one m that is not a pure stabiliser (see the module docstring).
    C_T, n_T = C_all[:, :, -1], n_all[:, :, -1]
    dm_eff = dm_T - (dC_T * C_T).sum((-2, -1)) - (dn_T * n_T).sum(-1)
    ci, cf, cm = _final_m_correction(g["logi"][..., :T], g["logf"][..., :T], resets, m0, dm_eff)
    dlogi, dlogf, dm0 = dlogi + ci, dlogf + cf, dm0 + cm

    df = dlogf * torch.sigmoid(-f.float())
    di = dlogi if gate == "exp" else dlogi * torch.sigmoid(-i.float())
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), di.to(i.dtype), df.to(f.dtype), dC0, dn0, dm0


# ----------------------------------------------------------------------------------------------- torch.library ops


@torch.library.custom_op("xlstm_seq::mlstm_chunkwise_fwd", mutates_args=())
def _fwd_op(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    C0: torch.Tensor,
    n0: torch.Tensor,
    m0: torch.Tensor,
    resets: torch.Tensor | None,
    chunk_size: int,
    input_gate: str,
) -> tuple[
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
]:
    """Returns h, C_T, n_T, m_T, and for the backward C_all, n_all, m_all, m_row, den_row."""
    h, C_all, n_all, m_all, m_row, den_row = _forward(q, k, v, i, f, C0, n0, m0, resets, chunk_size, input_gate)
    final = (C_all[:, :, -1].clone(), n_all[:, :, -1].clone(), m_all[:, :, -1].clone())
    return h, *final, C_all, n_all, m_all, m_row, den_row


@_fwd_op.register_fake
def _(q, k, v, i, f, C0, n0, m0, resets, chunk_size, input_gate):
    B, H, T, DK = q.shape
    DV = v.shape[-1]
    NC = -(-T // chunk_size)

    def f32(*shape):
        return q.new_empty(shape, dtype=torch.float32)

    return (
        q.new_empty(B, H, T, DV),
        f32(B, H, DK, DV),
        f32(B, H, DK),
        f32(B, H),
        f32(B, H, NC + 1, DK, DV),
        f32(B, H, NC + 1, DK),
        f32(B, H, NC + 1),
        f32(B, H, NC * chunk_size),
        f32(B, H, NC * chunk_size),
    )


@torch.library.custom_op("xlstm_seq::mlstm_chunkwise_bwd", mutates_args=())
def _bwd_op(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    C0: torch.Tensor,
    n0: torch.Tensor,
    m0: torch.Tensor,
    resets: torch.Tensor | None,
    h: torch.Tensor,
    C_all: torch.Tensor,
    n_all: torch.Tensor,
    m_all: torch.Tensor,
    m_row: torch.Tensor,
    den_row: torch.Tensor,
    dh: torch.Tensor,
    dC_T: torch.Tensor,
    dn_T: torch.Tensor,
    dm_T: torch.Tensor,
    chunk_size: int,
    input_gate: str,
) -> tuple[
    torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor
]:
    """Returns dq, dk, dv, di, df, dC0, dn0, dm0."""
    return _backward(
        q, k, v, i, f, C0, n0, m0, resets, h, C_all, n_all, m_all, m_row, den_row, dh, dC_T, dn_T, dm_T,
        chunk_size, input_gate,
    )  # fmt: skip


@_bwd_op.register_fake
def _(q, k, v, i, f, C0, n0, m0, resets, h, C_all, n_all, m_all, m_row, den_row, dh, dC_T, dn_T, dm_T, L, gate):
    return (
        torch.empty_like(q),
        torch.empty_like(k),
        torch.empty_like(v),
        torch.empty_like(i),
        torch.empty_like(f),
        torch.empty_like(C0),
        torch.empty_like(n0),
        torch.empty_like(m0),
    )


def _setup_context(ctx, inputs, output):
    q, k, v, i, f, C0, n0, m0, resets, chunk_size, input_gate = inputs
    h, _, _, _, C_all, n_all, m_all, m_row, den_row = output
    ctx.save_for_backward(q, k, v, i, f, C0, n0, m0, h, C_all, n_all, m_all, m_row, den_row)
    ctx.resets = resets
    ctx.chunk_size, ctx.input_gate = chunk_size, input_gate


def _zeros_if_none(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like) if grad is None else grad


def _autograd_backward(ctx, dh, dC_T, dn_T, dm_T, *unused):
    q, k, v, i, f, C0, n0, m0, h, C_all, n_all, m_all, m_row, den_row = ctx.saved_tensors
    grads = torch.ops.xlstm_seq.mlstm_chunkwise_bwd(
        q, k, v, i, f, C0, n0, m0, ctx.resets, h, C_all, n_all, m_all, m_row, den_row,
        _zeros_if_none(dh, h), _zeros_if_none(dC_T, C0), _zeros_if_none(dn_T, n0), _zeros_if_none(dm_T, m0),
        ctx.chunk_size, ctx.input_gate,
    )  # fmt: skip
    return (*grads, None, None, None)


_fwd_op.register_autograd(_autograd_backward, setup_context=_setup_context)


# ----------------------------------------------------------------------------------------------- public function


def mlstm_chunkwise_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    initial_state: MLSTMState | None = None,
    resets: torch.Tensor | None = None,
    *,
    chunk_size: int | None = None,
    input_gate: str = "exp",
) -> tuple[torch.Tensor, MLSTMState]:
    """mLSTM over a whole sequence with the chunkwise Triton kernels (CUDA, or CPU under ``TRITON_INTERPRET=1``).

    Args:
        q: Queries (B,H,T,DK), float32, float16 or bfloat16; any T >= 1.
        k: Keys (B,H,T,DK).
        v: Values (B,H,T,DV).
        i: Input-gate pre-activations (B,H,T), same dtype as q.
        f: Forget-gate pre-activations (B,H,T), same dtype as q.
        initial_state: ``(C (B,H,DK,DV), n (B,H,DK), m (B,H))`` float32, or None for zeros.
        resets: (B,T) bool; memory is cleared to the zero state before step t where True. Default None.
        chunk_size: One of ``TRITON_CHUNK_SIZES``. None: ``DEFAULT_CHUNK_SIZE`` (64: 3x faster than 128 on an
            H200, benchmarks/kernels/mlstm_gpu.md).
        input_gate: ``"exp"`` (default) or ``"sigmoid"``.

    Returns:
        h (B,H,T,DV) in q's dtype and the final state (C, n, m) in float32. Differentiable in every tensor input
        (the naive reference's gradient convention); traceable by ``torch.compile`` (a ``torch.library`` op).
    """
    from xlstm_seq.kernels.mlstm.naive import DEFAULT_CHUNK_SIZE, _nonfinite_steps, _poison, _sanitise
    from xlstm_seq.kernels.validation import check_mlstm_inputs

    dims = check_mlstm_inputs(q, k, v, i, f, initial_state, resets, chunk_size, input_gate)
    if q.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"the triton mLSTM backend takes float32, float16 or bfloat16 inputs, got {q.dtype}")
    L = DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size
    check_triton_chunk_size(L)
    B, H, DK, DV = dims["B"], dims["H"], dims["DK"], dims["DV"]
    if initial_state is None:
        C0 = q.new_zeros(B, H, DK, DV, dtype=torch.float32)
        n0 = q.new_zeros(B, H, DK, dtype=torch.float32)
        m0 = q.new_zeros(B, H, dtype=torch.float32)
    else:
        C0, n0, m0 = (s.float().contiguous() for s in initial_state)
    # The kernels multiply every step's k and v by its zero weight in earlier rows: they run on copies without
    # non-finite steps, and NaN is put back from each such step to the end of its segment (as in the reference).
    bad = _nonfinite_steps(k, v, f)
    k, v, f = _sanitise(k, v, f, bad)
    q, k, v, i, f = (x.contiguous() for x in (q, k, v, i, f))
    out = torch.ops.xlstm_seq.mlstm_chunkwise_fwd(q, k, v, i, f, C0, n0, m0, resets, L, input_gate)
    return _poison(out[0], (out[1], out[2], out[3]), bad, resets)
