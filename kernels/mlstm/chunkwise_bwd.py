"""Triton kernels of the chunkwise mLSTM backward ("m constant": every stabiliser is a saved constant).

Imported lazily by :mod:`xlstm_seq.kernels.mlstm.chunkwise`, which explains the math and prepares the per-step
scalars (padded length TP = NC * L, float32):

* ``rz = 1 / max(|den_j|, exp(-m_j))`` and ``dden_j``: so that ``dnum_j = dh_j * rz_j``;
* ``cq_j = scale w_j rz_j`` and ``cn_j = scale w_j dden_j``: the carried state's weights in the dq and dC_in terms;
* ``u_l``: the weight of step l in its chunk's end state.

Kernels:

* ``_bwd_state_kernel``: per (DK block, DV block, batch*head), walks the chunks backwards carrying dC, dn; writes
  ``dC_out (B*H, NC, DK, DV)`` / ``dn_out`` (the gradient reaching each chunk's end state), the gradient of the
  initial state, and per-program partial sums of ``<dC_out, C_out> + <dn_out, n_out>`` per chunk.
* ``_bwd_dq_kernel``, ``_bwd_dk_kernel``, ``_bwd_dv_kernel``: per (row block of a chunk, head-dim block, batch*head),
  the intra-chunk part tiled over the other side's blocks, plus the state part (layout ``"split"``). Each head-dim
  block recomputes its row block's gram and decay weights: dk's programs the gram dh v^T over all of DV, dv's the
  gram k q^T over all of DK.
* ``_bwd_dkdv_kernel`` (layout ``"fused_dkdv"``): per (key block of a chunk, column part, batch*head), dk and dv
  together, walking the chunk's query blocks (flash-attention-2's backward order): k q^T, v dh^T and the decay
  weights are computed once per (key block, query block) tile and feed both products. With one column part (the
  default) a program holds the whole head dims of dk and dv; with n parts each holds 1/n of each and the grams are
  computed n times. dq stays in ``_bwd_dq_kernel`` (fusing it would need atomics across key blocks).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import chunkwise_fwd as fwd  # launch settings read at call time, so a tuning sweep can set them
from .chunkwise_fwd import _block, dot_precision, new_output
from .tiles import rows_dot_state_t, rows_gram, split_dot

__all__ = ["BWD_LAYOUTS", "launch_bwd"]

#: The ways the backward's intra-chunk part may be laid out over kernels (see the module docstring).
BWD_LAYOUTS = ("split", "fused_dkdv")
# Launch settings, read at call time (a tuning sweep sets them; tools/gpu/mlstm_sweep.py). "split" stays the default
# until a GPU run of the sweep has timed "fused_dkdv" beside it at TFLA's shape: "fused_dkdv" passes the tests
# (interpreter, and the compile check for sm_90) but has not run on a GPU yet. Its tiles: key rows per program,
# query rows per step of its walk, the head-dim slice of its end-state products; warps and stages. It holds dk
# (BLOCK_K, DK) and dv (BLOCK_K, DV) in fp32 over the whole head dims; compiled for sm_90 in bf16 at DK 128, DV 256
# by triton 3.7.1 (cuobjdump's resource usage), 32 x 32 tiles with 8 warps use no stack, while 64 key rows or 4
# warps spill (the GPU machines ran triton 3.6.0, whose register allocation may differ).
BWD_LAYOUT = "split"
FUSED_BLOCK_K, FUSED_BLOCK_Q, FUSED_STATE_BLOCK = 32, 32, 32
FUSED_WARPS, FUSED_STAGES = 8, 1
# FUSED_SPLITS > 1 spreads each key block's dk and dv columns over that many programs (each recomputing the tile's
# grams: half the accumulators per program for twice the gram work at 2), for when the whole-head-dim accumulators
# cost more in occupancy than the recomputation (in two parts 64 key rows x 32 query rows with 8 warps compile
# without stack, as above).
FUSED_SPLITS = 1
# The layout "fused_dkdv" launches dq's kernel with this head-dim block and these warps (the split layout with
# CHUNK_BLOCK and CHUNK_WARPS): DK in one block computes each row block's gram once instead of once per block.
# Compiled as above at DK 128: one 128-wide block uses 168 bytes of stack with 8 warps, 1,456 with 4; 64-wide blocks
# 520 with 4 and none with 8.
FUSED_DQ_BLOCK, FUSED_DQ_WARPS = 64, 4


@triton.jit(do_not_specialize=["T", "NC"])
def _bwd_state_kernel(
    # pointers
    Q,
    DH,
    CS,
    SEG,
    CQ,
    CN,
    C_ALL,
    N_ALL,
    M_ALL,
    DC_T,
    DN_T,
    DC_OUT,
    DN_OUT,
    DC0,
    DN0,
    E_PART,
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
    NPART = tl.num_programs(0) * tl.num_programs(1)
    offs_k = pid_k * BK + tl.arange(0, BK)
    offs_v = pid_v * BV + tl.arange(0, BV)
    mask_k = offs_k < DK
    mask_v = offs_v < DV
    mask_kv = mask_k[:, None] & mask_v[None, :]
    tile = offs_k[:, None] * DV + offs_v[None, :]
    offs_l = tl.arange(0, L)

    dC = tl.load(DC_T + bh * DK * DV + tile, mask=mask_kv, other=0.0)  # (BK, BV)
    dn = tl.load(DN_T + bh * DK + offs_k, mask=mask_k, other=0.0)  # (BK,)
    for cc in range(NC):
        c = NC - 1 - cc
        out = (bh * NC + c).to(tl.int64)
        tl.store(DC_OUT + out * DK * DV + tile, dC, mask=mask_kv)
        tl.store(DN_OUT + out * DK + offs_k, dn, mask=mask_k & (pid_v == 0))
        # <dC_out, C_out> + <dn_out, n_out>: the end-state part of d cs at the chunk's last step.
        nxt = (bh * (NC + 1) + c + 1).to(tl.int64)
        c_out = tl.load(C_ALL + nxt * DK * DV + tile, mask=mask_kv, other=0.0)
        n_out = tl.load(N_ALL + nxt * DK + offs_k, mask=mask_k, other=0.0)
        e = tl.sum(tl.sum(dC * c_out, axis=1), axis=0) + tl.where(pid_v == 0, tl.sum(dn * n_out, axis=0), 0.0)
        tl.store(E_PART + out * NPART + pid_k * tl.num_programs(1) + pid_v, e)

        last = c * L + L - 1
        cs_last = tl.load(CS + bh * TP + last)
        seg_last = tl.load(SEG + b * TP + last)
        m_in = tl.load(M_ALL + bh * (NC + 1) + c)
        m_out = tl.load(M_ALL + bh * (NC + 1) + c + 1)
        a = tl.exp(tl.where(seg_last == 0, cs_last + m_in - m_out, 0.0))
        # A reset in the chunk cuts the path back to the state entering it: select zero (0 * NaN = NaN).
        dC = tl.where(seg_last == 0, a * dC, 0.0)
        dn = tl.where(seg_last == 0, a * dn, 0.0)

        t = c * L + offs_l
        mask_t = t < T
        cq = tl.load(CQ + bh * TP + t)  # (L,)
        cn = tl.load(CN + bh * TP + t)
        qt = tl.load(Q + bh * T * DK + t[:, None] * DK + offs_k[None, :], mask=mask_t[:, None] & mask_k[None, :])
        dht = tl.load(DH + bh * T * DV + t[:, None] * DV + offs_v[None, :], mask=mask_t[:, None] & mask_v[None, :])
        qt = qt.to(tl.float32)
        if SPLITS > 0:  # tensor cores: q * cq as SPLITS input-dtype terms, fp32 accumulation
            dC = dC + split_dot(tl.trans(qt * cq[:, None]), dht, SPLITS)
        else:
            dC = dC + tl.dot(tl.trans(qt * cq[:, None]), dht.to(tl.float32), input_precision="ieee")
        dn = dn + tl.sum(qt * cn[:, None], axis=0)

    tl.store(DC0 + bh * DK * DV + tile, dC, mask=mask_kv)
    tl.store(DN0 + bh * DK + offs_k, dn, mask=mask_k & (pid_v == 0))


@triton.jit(do_not_specialize=["T", "NC"])
def _bwd_dq_kernel(
    # pointers
    Q,
    K,
    V,
    DH,
    CS,
    LOGI,
    SEG,
    M_ROW,
    RZ,
    DDEN,
    CQ,
    CN,
    C_ALL,
    N_ALL,
    DQ,
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
    GRAD_FP32: tl.constexpr,
):
    pid_q = tl.program_id(0)
    pid_k = tl.program_id(1)
    bh = tl.program_id(2).to(tl.int64)
    b = bh // H
    TP = NC * L
    NQB = L // BL
    c = pid_q // NQB
    qb = pid_q % NQB
    offs_k = pid_k * BK + tl.arange(0, BK)
    mask_k = offs_k < DK

    tq = c * L + qb * BL + tl.arange(0, BL)
    mask_q = tq < T
    cs_q = tl.load(CS + bh * TP + tq)
    seg_q = tl.load(SEG + b * TP + tq)
    m_q = tl.load(M_ROW + bh * TP + tq)
    rz_q = tl.load(RZ + bh * TP + tq)
    dden_q = tl.load(DDEN + bh * TP + tq)

    dq = tl.zeros((BL, BK), dtype=tl.float32)
    for kb in range(0, qb + 1):
        tk = c * L + kb * BL + tl.arange(0, BL)
        mask_tk = tk < T
        cs_k = tl.load(CS + bh * TP + tk)
        logi_k = tl.load(LOGI + bh * TP + tk)
        seg_k = tl.load(SEG + b * TP + tk)
        valid = (tk[None, :] <= tq[:, None]) & (seg_k[None, :] == seg_q[:, None])
        w = tl.exp(tl.where(valid, cs_q[:, None] - cs_k[None, :] + logi_k[None, :] - m_q[:, None], float("-inf")))
        dp = rows_gram(DH + bh * T * DV, V + bh * T * DV, tq, tk, mask_q, mask_tk, DV, BL, BV, DOT_PREC)  # (BL, BL)
        ds = (dp * rz_q[:, None] + dden_q[:, None]) * w
        kt = tl.load(K + bh * T * DK + tk[:, None] * DK + offs_k[None, :], mask=mask_tk[:, None] & mask_k[None, :])
        if GRAD_FP32:  # dS kept in fp32 (tf32 on tensor cores) instead of rounded to the input dtype
            dq += tl.dot(ds, kt.to(tl.float32), input_precision=DOT_PREC)
        else:
            dq += tl.dot(ds.to(kt.dtype), kt, input_precision=DOT_PREC)
    dq = dq * scale

    # Carried state: dq_j += scale w_j (C_in dnum_j + dden_j n_in).
    state = (bh * (NC + 1) + c).to(tl.int64)
    cq = tl.load(CQ + bh * TP + tq)
    cn = tl.load(CN + bh * TP + tq)
    inter = rows_dot_state_t(
        DH + bh * T * DV, C_ALL + state * DK * DV, tq, mask_q, offs_k, mask_k, DV, BL, BK, BV, DOT_PREC
    )  # (BL, BK)
    nt = tl.load(N_ALL + state * DK + offs_k, mask=mask_k, other=0.0)
    # Rows after a reset in the chunk do not see that state: selected, so that a NaN state does not cross the reset.
    dq += tl.where((seg_q == 0)[:, None], cq[:, None] * inter + cn[:, None] * nt[None, :], 0.0)
    tl.store(DQ + bh * T * DK + tq[:, None] * DK + offs_k[None, :], dq, mask=mask_q[:, None] & mask_k[None, :])


@triton.jit
def _key_block_weights(CS, LOGI, SEG, M_ROW, bh, b, tk, tq, TP):
    """Transposed decay weights W^T (BL keys, BL queries) of one key block against one query block of a chunk."""
    cs_k = tl.load(CS + bh * TP + tk)
    logi_k = tl.load(LOGI + bh * TP + tk)
    seg_k = tl.load(SEG + b * TP + tk)
    cs_q = tl.load(CS + bh * TP + tq)
    seg_q = tl.load(SEG + b * TP + tq)
    m_q = tl.load(M_ROW + bh * TP + tq)
    valid = (tk[:, None] <= tq[None, :]) & (seg_k[:, None] == seg_q[None, :])
    return tl.exp(tl.where(valid, cs_q[None, :] - cs_k[:, None] + logi_k[:, None] - m_q[None, :], float("-inf")))


@triton.jit(do_not_specialize=["T", "NC"])
def _bwd_dk_kernel(
    # pointers
    Q,
    K,
    V,
    DH,
    CS,
    LOGI,
    SEG,
    M_ROW,
    RZ,
    DDEN,
    U,
    DC_OUT,
    DN_OUT,
    DK_OUT,
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
    GRAD_FP32: tl.constexpr,
):
    pid_l = tl.program_id(0)
    pid_k = tl.program_id(1)
    bh = tl.program_id(2).to(tl.int64)
    b = bh // H
    TP = NC * L
    NB = L // BL
    c = pid_l // NB
    lb = pid_l % NB
    offs_k = pid_k * BK + tl.arange(0, BK)
    mask_k = offs_k < DK
    tk = c * L + lb * BL + tl.arange(0, BL)
    mask_tk = tk < T

    dk = tl.zeros((BL, BK), dtype=tl.float32)
    for qb in range(lb, NB):
        tq = c * L + qb * BL + tl.arange(0, BL)
        mask_q = tq < T
        wt = _key_block_weights(CS, LOGI, SEG, M_ROW, bh, b, tk, tq, TP)  # (BL keys, BL queries)
        rz_q = tl.load(RZ + bh * TP + tq)
        dden_q = tl.load(DDEN + bh * TP + tq)
        dpt = rows_gram(V + bh * T * DV, DH + bh * T * DV, tk, tq, mask_tk, mask_q, DV, BL, BV, DOT_PREC)  # (BL, BL)
        dst = (dpt * rz_q[None, :] + dden_q[None, :]) * wt
        qt = tl.load(Q + bh * T * DK + tq[:, None] * DK + offs_k[None, :], mask=mask_q[:, None] & mask_k[None, :])
        if GRAD_FP32:
            dk += tl.dot(dst, qt.to(tl.float32), input_precision=DOT_PREC)
        else:
            dk += tl.dot(dst.to(qt.dtype), qt, input_precision=DOT_PREC)
    dk = dk * scale

    # End state: dk_l += u_l (dC_out v_l + dn_out).
    out = (bh * NC + c).to(tl.int64)
    u = tl.load(U + bh * TP + tk)
    st = rows_dot_state_t(
        V + bh * T * DV, DC_OUT + out * DK * DV, tk, mask_tk, offs_k, mask_k, DV, BL, BK, BV, DOT_PREC
    )  # (BL, BK)
    dnt = tl.load(DN_OUT + out * DK + offs_k, mask=mask_k, other=0.0)
    dk += u[:, None] * (st + dnt[None, :])
    tl.store(DK_OUT + bh * T * DK + tk[:, None] * DK + offs_k[None, :], dk, mask=mask_tk[:, None] & mask_k[None, :])


@triton.jit(do_not_specialize=["T", "NC"])
def _bwd_dv_kernel(
    # pointers
    Q,
    K,
    DH,
    CS,
    LOGI,
    SEG,
    M_ROW,
    RZ,
    U,
    DC_OUT,
    DV_OUT,
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
    GRAD_FP32: tl.constexpr,
):
    pid_l = tl.program_id(0)
    pid_v = tl.program_id(1)
    bh = tl.program_id(2).to(tl.int64)
    b = bh // H
    TP = NC * L
    NB = L // BL
    c = pid_l // NB
    lb = pid_l % NB
    offs_v = pid_v * BV + tl.arange(0, BV)
    mask_v = offs_v < DV
    offs_d = tl.arange(0, BK)
    tk = c * L + lb * BL + tl.arange(0, BL)
    mask_tk = tk < T

    dv = tl.zeros((BL, BV), dtype=tl.float32)
    for qb in range(lb, NB):
        tq = c * L + qb * BL + tl.arange(0, BL)
        mask_q = tq < T
        wt = _key_block_weights(CS, LOGI, SEG, M_ROW, bh, b, tk, tq, TP)
        rz_q = tl.load(RZ + bh * TP + tq)
        st = rows_gram(K + bh * T * DK, Q + bh * T * DK, tk, tq, mask_tk, mask_q, DK, BL, BK, DOT_PREC)  # (BL, BL)
        # P^T with the 1/Z of each query folded in, so that dv += P^T dh.
        pt = st * scale * wt * rz_q[None, :]
        dht = tl.load(DH + bh * T * DV + tq[:, None] * DV + offs_v[None, :], mask=mask_q[:, None] & mask_v[None, :])
        if GRAD_FP32:
            dv += tl.dot(pt, dht.to(tl.float32), input_precision=DOT_PREC)
        else:
            dv += tl.dot(pt.to(dht.dtype), dht, input_precision=DOT_PREC)

    # End state: dv_l += u_l dC_out^T k_l.
    out = (bh * NC + c).to(tl.int64)
    u = tl.load(U + bh * TP + tk)
    st2 = tl.zeros((BL, BV), dtype=tl.float32)
    for d0 in range(0, DK, BK):
        mask_d = (d0 + offs_d) < DK
        kt = tl.load(K + bh * T * DK + tk[:, None] * DK + d0 + offs_d[None, :], mask=mask_tk[:, None] & mask_d[None, :])
        dct = tl.load(
            DC_OUT + out * DK * DV + (d0 + offs_d)[:, None] * DV + offs_v[None, :],
            mask=mask_d[:, None] & mask_v[None, :],
            other=0.0,
        )
        st2 += tl.dot(kt.to(tl.float32), dct, input_precision=DOT_PREC)
    dv += u[:, None] * st2
    tl.store(DV_OUT + bh * T * DV + tk[:, None] * DV + offs_v[None, :], dv, mask=mask_tk[:, None] & mask_v[None, :])


@triton.jit(do_not_specialize=["T", "NC"])
def _bwd_dkdv_kernel(
    # pointers
    Q,
    K,
    V,
    DH,
    CS,
    LOGI,
    SEG,
    M_ROW,
    RZ,
    DDEN,
    U,
    DC_OUT,
    DN_OUT,
    DK_OUT,
    DV_OUT,
    # sizes
    scale,
    T,
    H,
    NC,
    DK,
    DV,
    # meta-parameters
    L: tl.constexpr,
    BLK: tl.constexpr,
    BLQ: tl.constexpr,
    DKP: tl.constexpr,
    DVP: tl.constexpr,
    NSPLIT: tl.constexpr,
    BS: tl.constexpr,
    DOT_PREC: tl.constexpr,
    GRAD_FP32: tl.constexpr,
):
    pid_l = tl.program_id(0)
    pid_s = tl.program_id(1)  # which 1/NSPLIT of dk's and of dv's columns this program writes
    bh = tl.program_id(2).to(tl.int64)
    b = bh // H
    TP = NC * L
    NKB = L // BLK
    c = pid_l // NKB
    lb = pid_l % NKB
    SK: tl.constexpr = DKP // NSPLIT
    SV: tl.constexpr = DVP // NSPLIT
    offs_dk = tl.arange(0, DKP)  # the whole (padded) head dims, over which the grams run
    offs_dv = tl.arange(0, DVP)
    mask_dk = offs_dk < DK
    mask_dv = offs_dv < DV
    if NSPLIT == 1:  # this program's columns of dk and of dv
        own_k = offs_dk
        own_v = offs_dv
    else:
        own_k = pid_s * SK + tl.arange(0, SK)
        own_v = pid_s * SV + tl.arange(0, SV)
    mask_ok = own_k < DK
    mask_ov = own_v < DV
    tk = c * L + lb * BLK + tl.arange(0, BLK)  # (BLK,) key rows, padded index
    mask_tk = tk < T

    # The key block's k and v, loaded once for the whole walk over the query blocks.
    kt = tl.load(
        K + bh * T * DK + tk[:, None] * DK + offs_dk[None, :], mask=mask_tk[:, None] & mask_dk[None, :], other=0.0
    )
    vt = tl.load(
        V + bh * T * DV + tk[:, None] * DV + offs_dv[None, :], mask=mask_tk[:, None] & mask_dv[None, :], other=0.0
    )
    cs_k = tl.load(CS + bh * TP + tk)
    logi_k = tl.load(LOGI + bh * TP + tk)
    seg_k = tl.load(SEG + b * TP + tk)

    dk = tl.zeros((BLK, SK), dtype=tl.float32)
    dv = tl.zeros((BLK, SV), dtype=tl.float32)
    # Query blocks from the one holding the key block's first row to the chunk's end (the causal triangle).
    for qb in range((lb * BLK) // BLQ, L // BLQ):
        tq = c * L + qb * BLQ + tl.arange(0, BLQ)  # (BLQ,) query rows
        mask_q = tq < T
        qt = tl.load(
            Q + bh * T * DK + tq[:, None] * DK + offs_dk[None, :], mask=mask_q[:, None] & mask_dk[None, :], other=0.0
        )
        dht = tl.load(
            DH + bh * T * DV + tq[:, None] * DV + offs_dv[None, :], mask=mask_q[:, None] & mask_dv[None, :], other=0.0
        )
        if NSPLIT == 1:
            q_own = qt
            dh_own = dht
        else:  # this program's columns, re-read (from cache) rather than sliced out of the registers
            q_own = tl.load(
                Q + bh * T * DK + tq[:, None] * DK + own_k[None, :], mask=mask_q[:, None] & mask_ok[None, :], other=0.0
            )
            dh_own = tl.load(
                DH + bh * T * DV + tq[:, None] * DV + own_v[None, :], mask=mask_q[:, None] & mask_ov[None, :], other=0.0
            )
        cs_q = tl.load(CS + bh * TP + tq)
        seg_q = tl.load(SEG + b * TP + tq)
        m_q = tl.load(M_ROW + bh * TP + tq)
        rz_q = tl.load(RZ + bh * TP + tq)
        dden_q = tl.load(DDEN + bh * TP + tq)
        valid = (tk[:, None] <= tq[None, :]) & (seg_k[:, None] == seg_q[None, :])  # (BLK, BLQ)
        # W^T: masking the exponent (not the exp) keeps discarded entries from overflowing.
        wt = tl.exp(tl.where(valid, cs_q[None, :] - cs_k[:, None] + logi_k[:, None] - m_q[None, :], float("-inf")))
        st = tl.dot(kt, tl.trans(qt), input_precision=DOT_PREC)  # (BLK, BLQ) k q^T, shared by P and dS
        dpt = tl.dot(vt, tl.trans(dht), input_precision=DOT_PREC)  # (BLK, BLQ) v dh^T
        pt = st * scale * wt * rz_q[None, :]  # P^T with each query's 1/Z folded in: dv += P^T dh
        dst = (dpt * rz_q[None, :] + dden_q[None, :]) * wt  # dS^T / scale: dk += scale dS^T q
        if GRAD_FP32:  # dS and P kept in fp32 (tf32 on tensor cores), as in the split kernels
            dv += tl.dot(pt, dh_own.to(tl.float32), input_precision=DOT_PREC)
            dk += tl.dot(dst, q_own.to(tl.float32), input_precision=DOT_PREC)
        else:
            dv += tl.dot(pt.to(dh_own.dtype), dh_own, input_precision=DOT_PREC)
            dk += tl.dot(dst.to(q_own.dtype), q_own, input_precision=DOT_PREC)
    dk = dk * scale

    # End state: dk_l += u_l (dC_out v_l + dn_out), dv_l += u_l dC_out^T k_l; dC_out (DK, DV) is read in BS-wide
    # slices (a whole fp32 tile would not fit beside the accumulators), k and v re-read per slice.
    out = (bh * NC + c).to(tl.int64)
    u = tl.load(U + bh * TP + tk)  # (BLK,)
    offs_s = tl.arange(0, BS)
    st_k = tl.zeros((BLK, SK), dtype=tl.float32)
    for e0 in range(0, DV, BS):
        mask_e = (e0 + offs_s) < DV
        ve = tl.load(
            V + bh * T * DV + tk[:, None] * DV + e0 + offs_s[None, :],
            mask=mask_tk[:, None] & mask_e[None, :],
            other=0.0,
        )  # (BLK, BS)
        dce = tl.load(
            DC_OUT + out * DK * DV + own_k[:, None] * DV + e0 + offs_s[None, :],
            mask=mask_ok[:, None] & mask_e[None, :],
            other=0.0,
        )  # (SK, BS)
        st_k += tl.dot(ve.to(tl.float32), tl.trans(dce), input_precision=DOT_PREC)
    dnt = tl.load(DN_OUT + out * DK + own_k, mask=mask_ok, other=0.0)
    dk += u[:, None] * (st_k + dnt[None, :])
    st_v = tl.zeros((BLK, SV), dtype=tl.float32)
    for d0 in range(0, DK, BS):
        mask_d = (d0 + offs_s) < DK
        kd = tl.load(
            K + bh * T * DK + tk[:, None] * DK + d0 + offs_s[None, :],
            mask=mask_tk[:, None] & mask_d[None, :],
            other=0.0,
        )  # (BLK, BS)
        dcd = tl.load(
            DC_OUT + out * DK * DV + (d0 + offs_s)[:, None] * DV + own_v[None, :],
            mask=mask_d[:, None] & mask_ov[None, :],
            other=0.0,
        )  # (BS, SV)
        st_v += tl.dot(kd.to(tl.float32), dcd, input_precision=DOT_PREC)
    dv += u[:, None] * st_v
    tl.store(DK_OUT + bh * T * DK + tk[:, None] * DK + own_k[None, :], dk, mask=mask_tk[:, None] & mask_ok[None, :])
    tl.store(DV_OUT + bh * T * DV + tk[:, None] * DV + own_v[None, :], dv, mask=mask_tk[:, None] & mask_ov[None, :])


def launch_bwd(q, k, v, dh, g, C_all, n_all, m_all, m_row, rz, dden, cq, cn, u, dC_T, dn_T, chunk_size, block_l):
    """Runs the backward kernels: the state kernel, then dq, dk, dv in the layout ``BWD_LAYOUT`` names.

    Args: q, k (B,H,T,DK), v, dh (B,H,T,DV) contiguous, dh in q's dtype; ``g`` the gate dict of ``_gate_prep``;
    C_all, n_all, m_all the forward's saved states; m_row, rz, dden, cq, cn, u (B,H,TP) fp32; dC_T (B,H,DK,DV),
    dn_T (B,H,DK) fp32 (the "m constant" gradient reaching the final state).

    Returns dq (B,H,T,DK), dk (B,H,T,DK), dv (B,H,T,DV) in float32, dC0 (B,H,DK,DV), dn0 (B,H,DK) and
    e (B,H,NC) = <dC_out, C_out> + <dn_out, n_out> per chunk.
    """
    if BWD_LAYOUT not in BWD_LAYOUTS:
        raise ValueError(f"chunkwise_bwd.BWD_LAYOUT must be one of {BWD_LAYOUTS}, got {BWD_LAYOUT!r}")
    B, H, T, DK = q.shape
    DV = v.shape[-1]
    NC = g["NC"]
    dev = q.device
    state_cap, state_stages, state_splits = fwd.state_tiles(q.dtype, backward=True)
    SK, SV = _block(DK, state_cap), _block(DV, state_cap)
    BK, BV = _block(DK, fwd.CHUNK_BLOCK), _block(DV, fwd.CHUNK_BLOCK)
    nkb, nvb = triton.cdiv(DK, BK), triton.cdiv(DV, BV)
    prec = dot_precision(q.dtype)
    scale = DK**-0.5

    def f32_output(*shape):
        return new_output(shape, torch.float32, dev)

    dC_out, dn_out = f32_output(B, H, NC, DK, DV), f32_output(B, H, NC, DK)
    dC0, dn0 = f32_output(B, H, DK, DV), f32_output(B, H, DK)
    nsk, nsv = triton.cdiv(DK, SK), triton.cdiv(DV, SV)
    e_part = f32_output(B, H, NC, nsk * nsv)
    _bwd_state_kernel[(nsk, nsv, B * H)](
        q, dh, g["cs"], g["seg"], cq, cn, C_all, n_all, m_all, dC_T, dn_T, dC_out, dn_out, dC0, dn0, e_part,
        T, H, NC, DK, DV, L=chunk_size, BK=SK, BV=SV, SPLITS=state_splits,
        num_warps=fwd.STATE_WARPS, num_stages=state_stages,
    )  # fmt: skip

    nblocks = NC * (chunk_size // block_l)
    dq, dk, dv = f32_output(B, H, T, DK), f32_output(B, H, T, DK), f32_output(B, H, T, DV)
    meta = {"L": chunk_size, "BL": block_l, "BK": BK, "BV": BV, "DOT_PREC": prec, "GRAD_FP32": fwd.GRAD_DOT_FP32}
    meta.update(num_warps=fwd.CHUNK_WARPS, num_stages=fwd.CHUNK_STAGES)
    # dq's programs each recompute their row block's dh v^T gram, once per head-dim block of dq.
    fused = BWD_LAYOUT == "fused_dkdv"
    dq_bk = _block(DK, FUSED_DQ_BLOCK) if fused else BK
    _bwd_dq_kernel[(nblocks, triton.cdiv(DK, dq_bk), B * H)](
        q, k, v, dh, g["cs"], g["logi"], g["seg"], m_row, rz, dden, cq, cn, C_all, n_all, dq,
        scale, T, H, NC, DK, DV, **{**meta, "BK": dq_bk, "num_warps": FUSED_DQ_WARPS if fused else fwd.CHUNK_WARPS},
    )  # fmt: skip
    if fused:
        blk, blq = min(chunk_size, FUSED_BLOCK_K), min(chunk_size, FUSED_BLOCK_Q)
        dkp, dvp = _block(DK, 1 << 30), _block(DV, 1 << 30)  # the whole head dims, padded to powers of two
        nsplit = min(FUSED_SPLITS, dkp // 16, dvp // 16)  # tl.dot needs 16 columns per part
        _bwd_dkdv_kernel[(NC * (chunk_size // blk), nsplit, B * H)](
            q, k, v, dh, g["cs"], g["logi"], g["seg"], m_row, rz, dden, u, dC_out, dn_out, dk, dv,
            scale, T, H, NC, DK, DV, L=chunk_size, BLK=blk, BLQ=blq,
            DKP=dkp, DVP=dvp, NSPLIT=nsplit, BS=FUSED_STATE_BLOCK,
            DOT_PREC=prec, GRAD_FP32=fwd.GRAD_DOT_FP32, num_warps=FUSED_WARPS, num_stages=FUSED_STAGES,
        )  # fmt: skip
        return dq, dk, dv, dC0, dn0, e_part.sum(-1)
    _bwd_dk_kernel[(nblocks, nkb, B * H)](
        q, k, v, dh, g["cs"], g["logi"], g["seg"], m_row, rz, dden, u, dC_out, dn_out, dk,
        scale, T, H, NC, DK, DV, **meta,
    )  # fmt: skip
    _bwd_dv_kernel[(nblocks, nvb, B * H)](
        q, k, dh, g["cs"], g["logi"], g["seg"], m_row, rz, u, dC_out, dv,
        scale, T, H, NC, DK, DV, **meta,
    )  # fmt: skip
    return dq, dk, dv, dC0, dn0, e_part.sum(-1)
