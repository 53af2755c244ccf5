"""The one per-dtype tolerance table for kernel tests, and the helpers that apply it.

Rows are the dtypes the kernels accept. ``atol``/``rtol`` compare forward outputs and states, ``grad_atol``/
``grad_rtol`` compare gradients (one more reduction deep, so looser). For bfloat16 and float16 a fast kernel must
also keep its error within ``REFERENCE_ERROR_FACTOR`` times the reference's own error in that dtype
(flash-attention's criterion): see :func:`assert_within_reference_error`.

Kernel tests import it as ``from tolerances import TOLERANCES, assert_close`` (pytest puts this folder on the path).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    grad_atol: float
    grad_rtol: float


TOLERANCES: dict[torch.dtype, Tolerance] = {
    torch.float64: Tolerance(atol=1e-10, rtol=1e-8, grad_atol=1e-8, grad_rtol=1e-6),
    torch.float32: Tolerance(atol=1e-4, rtol=1e-4, grad_atol=1e-3, grad_rtol=1e-3),
    torch.bfloat16: Tolerance(atol=2e-2, rtol=2e-2, grad_atol=5e-2, grad_rtol=5e-2),
    torch.float16: Tolerance(atol=2e-3, rtol=2e-3, grad_atol=1e-2, grad_rtol=1e-2),
}

#: A low-precision kernel's error may be at most this many times the reference's own error in that dtype.
REFERENCE_ERROR_FACTOR = 2.0


def assert_close(
    actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype | None = None, *, grad: bool = False, msg: str = ""
) -> None:
    """``torch.testing.assert_close`` with the table's row for ``dtype`` (default: ``expected``'s dtype).

    Both sides are compared in float64; NaN never passes (``equal_nan=False``).
    """
    tol = TOLERANCES[dtype or expected.dtype]
    atol, rtol = (tol.grad_atol, tol.grad_rtol) if grad else (tol.atol, tol.rtol)
    torch.testing.assert_close(
        actual.double(), expected.double(), atol=atol, rtol=rtol, equal_nan=False, msg=lambda m: f"{msg}\n{m}"
    )


def assert_within_reference_error(
    actual: torch.Tensor,
    reference_lowp: torch.Tensor,
    reference_exact: torch.Tensor,
    *,
    factor: float = REFERENCE_ERROR_FACTOR,
    atol: float = 1e-5,
    msg: str = "",
) -> None:
    """max|actual - exact| <= factor * max|reference_lowp - exact| + atol (all compared in float64).

    ``reference_lowp`` is the reference run in the kernel's low-precision dtype, ``reference_exact`` the reference in
    float64 (or float32) on the same inputs.
    """
    exact = reference_exact.double()
    if not torch.isfinite(actual).all():
        raise AssertionError(f"{msg}: output has NaN/inf")
    err = (actual.double() - exact).abs().max().item()
    ref_err = (reference_lowp.double() - exact).abs().max().item()
    if err > factor * ref_err + atol:
        raise AssertionError(f"{msg}: error {err:.3g} > {factor} x reference error {ref_err:.3g} + {atol:g}")
