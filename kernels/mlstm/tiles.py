"""Triton tile helpers shared by the chunkwise mLSTM forward and backward kernels.

Each helper is a ``@triton.jit`` function, inlined into the kernel that calls it. Pointers arrive already offset to
one (batch, head): ``X`` points at a ``(T, D)`` row-major matrix, ``S`` at a ``(DK, DV)`` state tile.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def rows_gram(A, B, rows_a, rows_b, mask_a, mask_b, D, BL: tl.constexpr, BD: tl.constexpr, DOT_PREC: tl.constexpr):
    """``A[rows_a] @ B[rows_b]^T`` (BL, BL) in fp32, summed over D in blocks of BD; inputs keep their dtype."""
    offs_d = tl.arange(0, BD)
    acc = tl.zeros((BL, BL), dtype=tl.float32)
    for d0 in range(0, D, BD):
        mask_d = (d0 + offs_d) < D
        at = tl.load(A + rows_a[:, None] * D + d0 + offs_d[None, :], mask=mask_a[:, None] & mask_d[None, :])
        bt = tl.load(B + rows_b[:, None] * D + d0 + offs_d[None, :], mask=mask_b[:, None] & mask_d[None, :])
        acc += tl.dot(at, tl.trans(bt), input_precision=DOT_PREC)
    return acc


@triton.jit
def rows_dot_state_t(
    X,
    S,
    rows,
    mask_rows,
    offs_k,
    mask_k,
    DV,
    BL: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    DOT_PREC: tl.constexpr,
):
    """``X[rows] @ S[offs_k, :]^T`` (BL, BK) in fp32 for X (T, DV) and a state S (DK, DV), over DV in blocks of BV."""
    offs_e = tl.arange(0, BV)
    acc = tl.zeros((BL, BK), dtype=tl.float32)
    for e0 in range(0, DV, BV):
        mask_e = (e0 + offs_e) < DV
        xt = tl.load(X + rows[:, None] * DV + e0 + offs_e[None, :], mask=mask_rows[:, None] & mask_e[None, :])
        st = tl.load(S + offs_k[:, None] * DV + e0 + offs_e[None, :], mask=mask_k[:, None] & mask_e[None, :], other=0.0)
        acc += tl.dot(xt.to(tl.float32), tl.trans(st), input_precision=DOT_PREC)
    return acc


@triton.jit
def split_dot(a, b, SPLITS: tl.constexpr):
    """``a @ b`` in fp32 on tensor cores for fp32 ``a`` and 16-bit ``b``: ``a`` is split into SPLITS terms in b's
    dtype (each the rounding of what the earlier terms left), so three bf16 terms carry a's full 24-bit mantissa."""
    rest = a
    part = rest.to(b.dtype)
    acc = tl.dot(part, b, out_dtype=tl.float32)
    for _ in tl.static_range(SPLITS - 1):
        rest = rest - part.to(tl.float32)
        part = rest.to(b.dtype)
        acc = tl.dot(part, b, acc=acc, out_dtype=tl.float32)
    return acc
