"""Input factories shared by the kernel tests."""

from __future__ import annotations

import os

import pytest
import torch

# Triton decides when it is first imported whether @triton.jit kernels run in its CPU interpreter, and any
# earlier import in the session (torch and mlflow may import it) fixes that choice. Without CUDA, switch the
# interpreter on while the suite is being collected, before any test runs; `auto` never picks Triton on a CPU.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def make_mlstm_inputs(
    B: int = 2,
    H: int = 2,
    T: int = 16,
    DK: int = 8,
    DV: int = 6,
    *,
    dtype: torch.dtype = torch.float64,
    with_state: bool = False,
    with_resets: bool = False,
    seed: int = 0,
) -> dict:
    """q, k, v, i, f (+ initial_state, resets). Forget gates are biased open so the initial state stays visible."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)

    inputs = {
        "q": randn(B, H, T, DK),
        "k": randn(B, H, T, DK),
        "v": randn(B, H, T, DV),
        "i": randn(B, H, T),
        "f": randn(B, H, T) + 3.0,
        "initial_state": None,
        "resets": None,
    }
    if with_state:
        inputs["initial_state"] = (randn(B, H, DK, DV), randn(B, H, DK), randn(B, H))
    if with_resets:
        inputs["resets"] = make_resets(B, T)
    return inputs


def make_resets(B: int, T: int) -> torch.Tensor:
    """Resets at awkward places: step 0, mid-chunk, exactly on a chunk boundary (16), the last step."""
    resets = torch.zeros(B, T, dtype=torch.bool)
    resets[0, 0] = True
    resets[0, T // 3] = True
    resets[-1, min(16, T - 1)] = True
    resets[-1, T - 1] = True
    return resets


def make_slstm_inputs(
    B: int = 2,
    T: int = 16,
    H: int = 2,
    D: int = 4,
    *,
    dtype: torch.dtype = torch.float64,
    with_state: bool = False,
    with_resets: bool = False,
    seed: int = 0,
) -> dict:
    """gates_x, R, b (+ initial_state with |c| < n, resets)."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    inputs = {
        "gates_x": randn(B, T, 4, H, D).to(dtype),
        "R": (randn(H, D, 4, D) * D**-0.5).to(dtype),
        "b": randn(4, H, D).to(dtype),
        "initial_state": None,
        "resets": None,
    }
    if with_state:
        n = torch.rand(B, H, D, generator=g, dtype=torch.float64) + 0.5
        c = n * (torch.rand(B, H, D, generator=g, dtype=torch.float64) * 1.8 - 0.9)
        inputs["initial_state"] = (c.to(dtype), n.to(dtype), randn(B, H, D).to(dtype), randn(B, H, D).tanh().to(dtype))
    if with_resets:
        inputs["resets"] = make_resets(B, T)
    return inputs


@pytest.fixture
def mlstm_inputs():
    return make_mlstm_inputs


@pytest.fixture
def slstm_inputs():
    return make_slstm_inputs


@pytest.fixture
def fresh_auto_cache(monkeypatch):
    """`auto` resolves once per (op, device) and caches it; tests that change the environment start afresh."""
    from xlstm_seq.kernels import registry

    monkeypatch.setattr(registry, "_AUTO_CHOICE", {})
