"""Triton kernels of the chunkwise mLSTM forward: the inter-chunk state recurrence and the tiled intra-chunk outputs.

Imported lazily by :mod:`xlstm_seq.kernels.mlstm.chunkwise` (this module imports Triton at its top). The math and
the per-step gate quantities (``cs``, ``logi``, ``logim``, ``seg``, ``mloc``) are explained there; shapes use the
padded length ``TP = NC * L`` for gate tensors and the true length ``T`` for q, k, v, h (loads and stores are
masked with ``t < T``, so no divisibility rule reaches the caller).

Kernels:

* ``_fwd_state_kernel``: one program per (DK block, DV block, batch*head) walks the chunks in order and writes the
  state entering every chunk, ``C_all (B*H, NC+1, DK, DV)``, ``n_all (B*H, NC+1, DK)``, ``m_all (B*H, NC+1)``;
  index NC holds the final state.
* ``_fwd_out_kernel``: one program per (query block of a chunk, DV block, batch*head) tiles the chunk over key
  blocks with a running max (flash-attention style), adds the carried state's part and normalises. It also writes
  the exact per-step stabiliser ``m_row`` and the signed denominator ``den_row`` that the backward needs.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .tiles import rows_gram, split_dot

__all__ = ["launch_fwd_out", "launch_fwd_state", "new_output"]

#: Test hook: True makes every kernel output start as NaN, so that an element a kernel never writes fails a test.
#: Off outside tests: filling the fp32 chunk states costs a full extra write (2 GiB at TFLA's T = 8,192 shape).
POISON_OUTPUTS = False
#: 16-bit inputs: how the state recurrences' k^T v (and q^T dh) products run. 0: fp32 IEEE dots on the CUDA cores.
#: n >= 1: tensor-core dots, the fp32 left operand (k scaled by its gate weight) split into n input-dtype terms
#: (hi + mid + lo: 3 x 8 bits cover bf16's 24-bit fp32 mantissa), fp32 accumulation; v and dh are exact in the
#: input dtype. H200, bf16, TFLA's T = 8,192 shape (the launch sweeps: benchmarks/kernels/mlstm_gpu_sweep.md and,
#: archived, benchmarks/archive/2026-12-04_kernels_mlstm_gpu_sweep_1.md and _2.md): the forward state kernel takes
#: 8.6 ms with IEEE dots, 1.4 ms with one term and 1.8 ms with three; one term leaves the returned C with bf16's
#: rounding (max error 0.02-0.03 against 2.5e-6 to 9e-6 for the reference, which accumulates in fp32;
#: benchmarks/kernels/gpu_tests.md), so the default takes three.
STATE_DOT_SPLITS = 3
#: 16-bit inputs: True (default) keeps the score gradients dS and the weights P in fp32 (tf32 dots) in the backward's
#: dq, dk, dv products instead of rounding them to the input dtype first (flash-attention's choice). The first H200
#: run found the exponential gate's bf16 di/df over the tests' 2x-reference-error bound with rounding; in the sweep
#: (benchmarks/archive/2026-12-04_kernels_mlstm_gpu_sweep_1.md) keeping fp32 lowered di's norm error from 1.59x to
#: under 1.39x for 2% more time.
GRAD_DOT_FP32 = True
#: The clamp on m in the normaliser's floor exp(-m), so that the floor neither overflows nor vanishes: the naive
#: reference's ``log_max(torch.float32)`` (log of float32's maximum, less 1).
LOG_MAX = tl.constexpr(87.72283905206835)


def new_output(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An output buffer every element of which a kernel writes: NaN-filled under ``POISON_OUTPUTS``, else empty."""
    if POISON_OUTPUTS:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)


@triton.jit(do_not_specialize=["T", "NC"])
def _fwd_state_kernel(
    # pointers
    K,
    V,
    CS,
    LOGI,
    SEG,
    MLOC,
    C0,
    N0,
    M0,
    C_ALL,
    N_ALL,
    M_ALL,
    # sizes
    T,
    H,
    NC,
    DK,
    DV,
    # meta-parameters
    L: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    SPLITS: tl.constexpr,
):
    pid_k = tl.program_id(0)
    pid_v = tl.program_id(1)
    bh = tl.program_id(2).to(tl.int64)
    b = bh // H
    TP = NC * L
    offs_k = pid_k * BK + tl.arange(0, BK)
    offs_v = pid_v * BV + tl.arange(0, BV)
    mask_k = offs_k < DK
    mask_v = offs_v < DV
    mask_kv = mask_k[:, None] & mask_v[None, :]
    offs_l = tl.arange(0, L)

    tile = offs_k[:, None] * DV + offs_v[None, :]
    C = tl.load(C0 + bh * DK * DV + tile, mask=mask_kv, other=0.0)  # (BK, BV) fp32
    n = tl.load(N0 + bh * DK + offs_k, mask=mask_k, other=0.0)  # (BK,)
    m = tl.load(M0 + bh)
    for c in range(NC):
        base = (bh * (NC + 1) + c).to(tl.int64)
        tl.store(C_ALL + base * DK * DV + tile, C, mask=mask_kv)
        tl.store(N_ALL + base * DK + offs_k, n, mask=mask_k & (pid_v == 0))
        if (pid_k == 0) & (pid_v == 0):
            tl.store(M_ALL + base, m)

        t = c * L + offs_l  # (L,) padded time index
        last = c * L + L - 1
        cs = tl.load(CS + bh * TP + t)
        logi = tl.load(LOGI + bh * TP + t)
        seg = tl.load(SEG + b * TP + t)
        cs_last = tl.load(CS + bh * TP + last)
        seg_last = tl.load(SEG + b * TP + last)
        mloc = tl.load(MLOC + bh * NC + c)
        carried = seg_last == 0
        m_carry = tl.where(carried, cs_last + m, float("-inf"))
        m_out = tl.maximum(m_carry, mloc)
        a = tl.exp(tl.where(carried, cs_last + m - m_out, 0.0))
        # Weight of step l in the chunk's end state; steps before the chunk's last reset do not reach it.
        u = tl.where(seg == seg_last, tl.exp(cs_last - cs + logi - m_out), 0.0)  # (L,)

        mask_t = t < T
        kt = tl.load(K + bh * T * DK + t[:, None] * DK + offs_k[None, :], mask=mask_t[:, None] & mask_k[None, :])
        vt = tl.load(V + bh * T * DV + t[:, None] * DV + offs_v[None, :], mask=mask_t[:, None] & mask_v[None, :])
        ku = kt.to(tl.float32) * u[:, None]  # (L, BK)
        # A reset in the chunk selects the zero state (0 * C would let a NaN state through).
        C = tl.where(carried, a * C, 0.0)
        n = tl.where(carried, a * n, 0.0)
        if SPLITS > 0:  # tensor cores: ku as SPLITS input-dtype terms, fp32 accumulation
            C = C + split_dot(tl.trans(ku), vt, SPLITS)
        else:
            C = C + tl.dot(tl.trans(ku), vt.to(tl.float32), input_precision="ieee")
        n = n + tl.sum(ku, axis=0)
        m = m_out

    base = (bh * (NC + 1) + NC).to(tl.int64)
    tl.store(C_ALL + base * DK * DV + tile, C, mask=mask_kv)
    tl.store(N_ALL + base * DK + offs_k, n, mask=mask_k & (pid_v == 0))
    if (pid_k == 0) & (pid_v == 0):
        tl.store(M_ALL + base, m)


@triton.jit(do_not_specialize=["T", "NC"])
def _fwd_out_kernel(
    # pointers
    Q,
    K,
    V,
    CS,
    LOGI,
    LOGIM,
    SEG,
    C_ALL,
    N_ALL,
    M_ALL,
    H_OUT,
    M_ROW,
    DEN_ROW,
    # sizes
    scale,
    T,
    H,
    NC,
    DK,
    DV,
    # meta-parameters
    L: tl.constexpr,
    BL: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    DOT_PREC: tl.constexpr,
):
    pid_q = tl.program_id(0)
    pid_v = tl.program_id(1)
    bh = tl.program_id(2).to(tl.int64)
    b = bh // H
    TP = NC * L
    NQB = L // BL
    c = pid_q // NQB
    qb = pid_q % NQB
    offs_v = pid_v * BV + tl.arange(0, BV)
    mask_v = offs_v < DV
    offs_d = tl.arange(0, BK)

    tq = c * L + qb * BL + tl.arange(0, BL)  # (BL,) query rows, padded index
    mask_q = tq < T
    cs_q = tl.load(CS + bh * TP + tq)
    seg_q = tl.load(SEG + b * TP + tq)
    m_in = tl.load(M_ALL + bh * (NC + 1) + c)
    carried = seg_q == 0
    m_run = tl.where(carried, cs_q + m_in, float("-inf"))  # (BL,)
    acc = tl.zeros((BL, BV), dtype=tl.float32)
    den = tl.zeros((BL,), dtype=tl.float32)

    for kb in range(0, qb + 1):
        tk = c * L + kb * BL + tl.arange(0, BL)  # (BL,) key rows
        mask_tk = tk < T
        cs_k = tl.load(CS + bh * TP + tk)
        logi_k = tl.load(LOGI + bh * TP + tk)
        logim_k = tl.load(LOGIM + bh * TP + tk)
        seg_k = tl.load(SEG + b * TP + tk)
        valid = (tk[None, :] <= tq[:, None]) & (seg_k[None, :] == seg_q[:, None])  # (BL, BL)
        decay = cs_q[:, None] - cs_k[None, :]
        m_blk = tl.max(tl.where(valid, decay + logim_k[None, :], float("-inf")), axis=1)
        m_new = tl.maximum(m_run, m_blk)
        # A row whose segment starts in a later key block still has m = -inf; keep its arithmetic finite.
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp(m_run - m_safe)
        # Masking the exponent (not the exp) keeps discarded entries from overflowing.
        w = tl.exp(tl.where(valid, decay + logi_k[None, :] - m_safe[:, None], float("-inf")))  # (BL, BL)

        s = rows_gram(Q + bh * T * DK, K + bh * T * DK, tq, tk, mask_q, mask_tk, DK, BL, BK, DOT_PREC)  # (BL, BL)
        p = s * scale * w
        vt = tl.load(V + bh * T * DV + tk[:, None] * DV + offs_v[None, :], mask=mask_tk[:, None] & mask_v[None, :])
        acc = acc * alpha[:, None] + tl.dot(p.to(vt.dtype), vt, input_precision=DOT_PREC)
        den = den * alpha + tl.sum(p, axis=1)
        m_run = m_new

    # The state carried into the chunk, for rows that have not seen a reset inside it (selected, not multiplied by
    # zero, so that a NaN state does not cross the reset).
    w_in = tl.exp(tl.where(carried, cs_q + m_in - m_run, 0.0)) * scale  # (BL,)
    state = (bh * (NC + 1) + c).to(tl.int64)
    inter = tl.zeros((BL, BV), dtype=tl.float32)
    inter_den = tl.zeros((BL,), dtype=tl.float32)
    for d0 in range(0, DK, BK):
        mask_d = (d0 + offs_d) < DK
        qt = tl.load(Q + bh * T * DK + tq[:, None] * DK + d0 + offs_d[None, :], mask=mask_q[:, None] & mask_d[None, :])
        qt = qt.to(tl.float32)
        ct = tl.load(
            C_ALL + state * DK * DV + (d0 + offs_d)[:, None] * DV + offs_v[None, :],
            mask=mask_d[:, None] & mask_v[None, :],
            other=0.0,
        )
        nt = tl.load(N_ALL + state * DK + d0 + offs_d, mask=mask_d, other=0.0)
        inter += tl.dot(qt, ct, input_precision=DOT_PREC)
        inter_den += tl.sum(qt * nt[None, :], axis=1)
    acc += tl.where(carried[:, None], w_in[:, None] * inter, 0.0)
    den += tl.where(carried, w_in * inter_den, 0.0)

    # m clamped as in the reference's normaliser: the floor neither overflows nor vanishes.
    z = tl.maximum(tl.abs(den), tl.exp(-tl.minimum(tl.maximum(m_run, -LOG_MAX), LOG_MAX)))
    h = acc / z[:, None]
    tl.store(
        H_OUT + bh * T * DV + tq[:, None] * DV + offs_v[None, :],
        h.to(H_OUT.dtype.element_ty),
        mask=mask_q[:, None] & mask_v[None, :],
    )
    if pid_v == 0:
        tl.store(M_ROW + bh * TP + tq, m_run)
        tl.store(DEN_ROW + bh * TP + tq, den)


def _block(d: int, cap: int) -> int:
    return min(cap, max(16, triton.next_power_of_2(d)))


# Launch settings, timed on an H200 in bf16 at TFLA's T = 8,192 shape
# (benchmarks/archive/2026-12-04_kernels_mlstm_gpu_sweep_1.md; no autotuning: the interpreter cannot benchmark
# configs). State kernels: 64-wide head-dim tiles with a two-stage
# prefetch of the next chunk's k and v (with tensor-core dots 1.4 ms against 3.0 ms for 32-wide single-stage tiles;
# 64-wide tiles with fp32 IEEE dots spill and take 56 ms, so they go with tensor-core dots only: see state_tiles);
# chunk kernels: 4 warps for the 64 x 64 tiles, one stage (output kernel 6.6 ms with 8 warps and 2 stages, 4.7 ms
# with 4 and 2, 2.9 ms with 4 and 1; fwd+bwd 21.8 -> 19.1 ms from the stages).
STATE_BLOCK, STATE_WARPS, STATE_STAGES = 64, 4, 2
STATE_BLOCK_IEEE, STATE_STAGES_IEEE = 32, 1  # the state kernels' tiles when their dots run in fp32 IEEE
CHUNK_BLOCK, CHUNK_WARPS, CHUNK_STAGES = 64, 4, 1


def state_tiles(dtype: torch.dtype, *, backward: bool = False) -> tuple[int, int, int]:
    """(tile cap, pipeline stages, dot splits) of the forward's or the backward's state kernel for this dtype.

    16-bit inputs split their state products (STATE_DOT_SPLITS terms; 0 means fp32 IEEE dots), fp32 inputs never.
    The forward's left operand k*u is bounded by |k| (u <= 1 under the stabiliser), so it fits any 16-bit dtype; the
    backward's q*cq is not (cq = w / |den| grows as exp(m) where den nears its floor exp(-m)), so fp16, whose range
    ends at 65,504, keeps IEEE dots there and only bf16 (fp32's range) splits."""
    splits = STATE_DOT_SPLITS if dtype == torch.bfloat16 or (dtype == torch.float16 and not backward) else 0
    if splits:
        return STATE_BLOCK, STATE_STAGES, splits
    return STATE_BLOCK_IEEE, STATE_STAGES_IEEE, 0


def dot_precision(dtype: torch.dtype) -> str:
    """fp32 inputs get exact fp32 dots (TF32 would cost 1e-3 relative error); 16-bit inputs use tensor cores."""
    return "ieee" if dtype == torch.float32 else "tf32"


def launch_fwd_state(k, v, cs, logi, seg, mloc, C0, n0, m0, chunk_size: int):
    """Runs the inter-chunk recurrence. k (B,H,T,DK), v (B,H,T,DV) contiguous; gates (B,H,TP) fp32; seg (B,TP) int32;
    mloc (B,H,NC); C0 (B,H,DK,DV), n0 (B,H,DK), m0 (B,H) fp32 contiguous.

    Returns C_all (B,H,NC+1,DK,DV), n_all (B,H,NC+1,DK), m_all (B,H,NC+1), all fp32.
    """
    B, H, T, DK = k.shape
    DV = v.shape[-1]
    NC = mloc.shape[-1]
    C_all = new_output((B, H, NC + 1, DK, DV), torch.float32, k.device)
    n_all = new_output((B, H, NC + 1, DK), torch.float32, k.device)
    m_all = new_output((B, H, NC + 1), torch.float32, k.device)
    cap, stages, splits = state_tiles(k.dtype)
    BK, BV = _block(DK, cap), _block(DV, cap)
    grid = (triton.cdiv(DK, BK), triton.cdiv(DV, BV), B * H)
    _fwd_state_kernel[grid](
        k, v, cs, logi, seg, mloc, C0, n0, m0, C_all, n_all, m_all, T, H, NC, DK, DV,
        L=chunk_size, BK=BK, BV=BV, SPLITS=splits, num_warps=STATE_WARPS, num_stages=stages,
    )  # fmt: skip
    return C_all, n_all, m_all


def launch_fwd_out(q, k, v, cs, logi, logim, seg, C_all, n_all, m_all, chunk_size: int, block_l: int):
    """Runs the intra-chunk outputs. Returns h (B,H,T,DV) in q's dtype, m_row and den_row (B,H,TP) fp32."""
    B, H, T, DK = q.shape
    DV = v.shape[-1]
    NC = m_all.shape[-1] - 1
    TP = NC * chunk_size
    h = new_output((B, H, T, DV), q.dtype, q.device)
    m_row = new_output((B, H, TP), torch.float32, q.device)
    den_row = new_output((B, H, TP), torch.float32, q.device)
    BK, BV = _block(DK, CHUNK_BLOCK), _block(DV, CHUNK_BLOCK)
    grid = (NC * (chunk_size // block_l), triton.cdiv(DV, BV), B * H)
    _fwd_out_kernel[grid](
        q,
        k,
        v,
        cs,
        logi,
        logim,
        seg,
        C_all,
        n_all,
        m_all,
        h,
        m_row,
        den_row,
        DK**-0.5,
        T,
        H,
        NC,
        DK,
        DV,
        L=chunk_size,
        BL=block_l,
        BK=BK,
        BV=BV,
        DOT_PREC=dot_precision(q.dtype),
        num_warps=CHUNK_WARPS,
        num_stages=CHUNK_STAGES,
    )
    return h, m_row, den_row
