"""Input checks shared by every kernel entry point (reference and fast backends alike).

Each check raises ``TypeError`` (not a tensor, wrong dtype) or ``ValueError`` (shape, device, value) with a
message that names the argument, the expected shape in the shape legend's letters with the sizes already
known filled in, and what came, e.g. ``k must have shape (B,H,T,DK) = (2,4,63,16), got (2,4,62,16)``.

Shapes are checked against a ``dims`` dictionary that the first tensor of a call fills in (``q`` binds B, H,
T and DK) and the later ones must agree with (``v`` only adds DV). Fixed sizes are written as digits in the
spec, e.g. ``(B,T,4,H,D)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "check_chunk_size",
    "check_input_gate",
    "check_mlstm_inputs",
    "check_mlstm_step_inputs",
    "check_slstm_inputs",
    "check_slstm_step_inputs",
    "compute_dtype",
    "INPUT_GATES",
]

INPUT_GATES = ("exp", "sigmoid")


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype kernels compute in: float64 stays float64 (gradcheck), everything else runs in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _fmt(shape: Sequence[int | str]) -> str:
    return "(" + ",".join(str(s) for s in shape) + ")"


def _check_tensor(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def _check_floating(name: str, x: torch.Tensor, like: torch.Tensor | None = None, like_name: str = "") -> None:
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if like is not None and x.dtype != like.dtype:
        raise TypeError(f"{name} must have the same dtype as {like_name} ({like.dtype}), got {x.dtype}")


def _check_device(name: str, x: torch.Tensor, device: torch.device, ref_name: str) -> None:
    if x.device != device:
        raise ValueError(f"{name} is on {x.device} but {ref_name} is on {device}; all inputs must be on one device")


def _check_shape(name: str, x: torch.Tensor, spec: str, dims: dict[str, int]) -> None:
    """Checks ``x.shape`` against ``spec`` (e.g. ``"(B,H,T,DK)"``); binds letters not yet in ``dims``."""
    letters = spec.strip("()").split(",")
    expected = [int(letter) if letter.isdigit() else dims.get(letter) for letter in letters]
    ok = x.ndim == len(letters) and all(e is None or e == s for e, s in zip(expected, x.shape, strict=False))
    if not ok:
        filled = [letter if e is None else e for letter, e in zip(letters, expected, strict=True)]
        known = any(letter in dims for letter in letters)
        shown = f"{spec} = {_fmt(filled)}" if known else spec
        ndim_note = f" ({x.ndim} dims, expected {len(letters)})" if x.ndim != len(letters) else ""
        raise ValueError(f"{name} must have shape {shown}, got {_fmt(tuple(x.shape))}{ndim_note}")
    for letter, size in zip(letters, x.shape, strict=True):
        if not letter.isdigit():
            dims.setdefault(letter, size)


def _check_input(
    name: str, x: object, spec: str, dims: dict[str, int], ref: torch.Tensor, ref_name: str, same_dtype: bool
) -> torch.Tensor:
    x = _check_tensor(name, x)
    _check_floating(name, x, ref if same_dtype else None, ref_name)
    _check_device(name, x, ref.device, ref_name)
    _check_shape(name, x, spec, dims)
    return x


def _check_state(
    name: str,
    state: object,
    parts: Sequence[tuple[str, str]],
    dims: dict[str, int],
    ref: torch.Tensor,
    ref_name: str,
) -> None:
    if state is None:
        return
    part_names = ", ".join(p for p, _ in parts)
    if not isinstance(state, (tuple, list)) or len(state) != len(parts):
        got = f"a {type(state).__name__} of length {len(state)}" if isinstance(state, (tuple, list)) else type(state)
        raise TypeError(f"{name} must be a tuple ({part_names}) or None, got {got}")
    for (part, spec), x in zip(parts, state, strict=True):
        _check_input(f"{name}.{part}", x, spec, dims, ref, ref_name, same_dtype=False)


def _check_resets(resets: object, dims: dict[str, int], ref: torch.Tensor, ref_name: str) -> None:
    if resets is None:
        return
    resets = _check_tensor("resets", resets)
    if resets.dtype != torch.bool:
        raise TypeError(f"resets must be a bool tensor, got dtype {resets.dtype}")
    _check_device("resets", resets, ref.device, ref_name)
    _check_shape("resets", resets, "(B,T)", dims)


def check_chunk_size(chunk_size: object) -> None:
    """``chunk_size`` must be a positive int (``None`` means the backend's default)."""
    if chunk_size is None:
        return
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise TypeError(f"chunk_size must be an int >= 1 or None, got {type(chunk_size).__name__} {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")


def check_input_gate(input_gate: object) -> None:
    """``input_gate`` must be one of ``INPUT_GATES``."""
    if input_gate not in INPUT_GATES:
        raise ValueError(f"input_gate must be one of {', '.join(map(repr, INPUT_GATES))}, got {input_gate!r}")


_MLSTM_STATE = (("C", "(B,H,DK,DV)"), ("n", "(B,H,DK)"), ("m", "(B,H)"))
_SLSTM_STATE = (("c", "(B,H,D)"), ("n", "(B,H,D)"), ("m", "(B,H,D)"), ("h", "(B,H,D)"))


def check_mlstm_inputs(
    q: object,
    k: object,
    v: object,
    i: object,
    f: object,
    initial_state: object = None,
    resets: object = None,
    chunk_size: object = None,
    input_gate: object = "exp",
) -> dict[str, int]:
    """Checks the arguments of ``mlstm``; returns the sizes ``{"B", "H", "T", "DK", "DV"}``."""
    q = _check_tensor("q", q)
    _check_floating("q", q)
    dims: dict[str, int] = {}
    _check_shape("q", q, "(B,H,T,DK)", dims)
    if dims["T"] < 1:
        raise ValueError(f"q must have T >= 1 time steps, got shape {_fmt(tuple(q.shape))}")
    _check_input("k", k, "(B,H,T,DK)", dims, q, "q", same_dtype=True)
    _check_input("v", v, "(B,H,T,DV)", dims, q, "q", same_dtype=True)
    _check_input("i", i, "(B,H,T)", dims, q, "q", same_dtype=True)
    _check_input("f", f, "(B,H,T)", dims, q, "q", same_dtype=True)
    _check_state("initial_state", initial_state, _MLSTM_STATE, dims, q, "q")
    _check_resets(resets, dims, q, "q")
    check_chunk_size(chunk_size)
    check_input_gate(input_gate)
    return dims


def check_mlstm_step_inputs(
    q_t: object,
    k_t: object,
    v_t: object,
    i_t: object,
    f_t: object,
    state: object = None,
    input_gate: object = "exp",
) -> dict[str, int]:
    """Checks the arguments of ``mlstm_step``; returns the sizes ``{"B", "H", "DK", "DV"}``."""
    q_t = _check_tensor("q_t", q_t)
    _check_floating("q_t", q_t)
    dims: dict[str, int] = {}
    _check_shape("q_t", q_t, "(B,H,DK)", dims)
    _check_input("k_t", k_t, "(B,H,DK)", dims, q_t, "q_t", same_dtype=True)
    _check_input("v_t", v_t, "(B,H,DV)", dims, q_t, "q_t", same_dtype=True)
    _check_input("i_t", i_t, "(B,H)", dims, q_t, "q_t", same_dtype=True)
    _check_input("f_t", f_t, "(B,H)", dims, q_t, "q_t", same_dtype=True)
    _check_state("state", state, _MLSTM_STATE, dims, q_t, "q_t")
    check_input_gate(input_gate)
    return dims


def check_slstm_inputs(
    gates_x: object, R: object, b: object, initial_state: object = None, resets: object = None
) -> dict[str, int]:
    """Checks the arguments of ``slstm``; returns the sizes ``{"B", "T", "H", "D"}``."""
    gates_x = _check_tensor("gates_x", gates_x)
    _check_floating("gates_x", gates_x)
    dims: dict[str, int] = {}
    _check_shape("gates_x", gates_x, "(B,T,4,H,D)", dims)
    if dims["T"] < 1:
        raise ValueError(f"gates_x must have T >= 1 time steps, got shape {_fmt(tuple(gates_x.shape))}")
    # R and b are parameters: they may stay float32 while gates_x comes in bf16 under autocast.
    _check_input("R", R, "(H,D,4,D)", dims, gates_x, "gates_x", same_dtype=False)
    _check_input("b", b, "(4,H,D)", dims, gates_x, "gates_x", same_dtype=False)
    _check_state("initial_state", initial_state, _SLSTM_STATE, dims, gates_x, "gates_x")
    _check_resets(resets, dims, gates_x, "gates_x")
    return dims


def check_slstm_step_inputs(gates_x_t: object, R: object, b: object, state: object = None) -> dict[str, int]:
    """Checks the arguments of ``slstm_step``; returns the sizes ``{"B", "H", "D"}``."""
    gates_x_t = _check_tensor("gates_x_t", gates_x_t)
    _check_floating("gates_x_t", gates_x_t)
    dims: dict[str, int] = {}
    _check_shape("gates_x_t", gates_x_t, "(B,4,H,D)", dims)
    _check_input("R", R, "(H,D,4,D)", dims, gates_x_t, "gates_x_t", same_dtype=False)
    _check_input("b", b, "(4,H,D)", dims, gates_x_t, "gates_x_t", same_dtype=False)
    _check_state("state", state, _SLSTM_STATE, dims, gates_x_t, "gates_x_t")
    return dims
