"""A one-program Triton kernel around ``split_dot`` for tests/kernels/test_mlstm_triton.py.

Its own module because Triton resolves a kernel's callees from its module's globals, and the test module must not
import the kernels before its fixture has set ``TRITON_INTERPRET`` (so this module is imported inside the test).
"""

import triton
import triton.language as tl

from xlstm_seq.kernels.mlstm.tiles import split_dot


@triton.jit
def split_dot_product(A, B, OUT, SPLITS: tl.constexpr, S: tl.constexpr):
    """OUT = A @ B for one (S, S) tile: A fp32, B 16-bit, OUT fp32, all row-major."""
    rows, cols = tl.arange(0, S)[:, None] * S, tl.arange(0, S)[None, :]
    out = split_dot(tl.load(A + rows + cols), tl.load(B + rows + cols), SPLITS)
    tl.store(OUT + rows + cols, out)
