"""Backend registry: which implementation of an op runs on which device.

Backends by name:

* ``torch``: the plain-PyTorch reference (``naive.py``); any op, any device.
* ``triton``: the chunkwise Triton mLSTM kernel; needs CUDA (or ``TRITON_INTERPRET=1`` on a CPU). Not in this
  release yet (issue 3).
* ``cuda``: the fused CUDA sLSTM kernel; needs an NVIDIA GPU with compute capability >= 8.0 and nvcc. Not in this
  release yet (issue 4).
* ``auto``: the fastest backend available for the op on the tensors' device (today always ``torch``). The choice
  is made once per (op, device), cached, and logged once through ``logging``.

Nothing here imports Triton or compiles CUDA: availability is checked with ``importlib.util.find_spec`` and a
look for nvcc on the file system, and only when a backend is asked for.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["BACKEND_NAMES", "OPS", "BackendUnavailableError", "available_backends", "resolve_backend"]

logger = logging.getLogger(__name__)

OPS = ("mlstm", "slstm")
BACKEND_NAMES = ("auto", "torch", "triton", "cuda")
_OP_TITLES = {"mlstm": "mLSTM", "slstm": "sLSTM"}


class BackendUnavailableError(RuntimeError):
    """A backend was asked for by name but cannot run here; the message says what is missing."""


@dataclass(frozen=True)
class _Backend:
    name: str
    ops: tuple[str, ...]
    # Returns the reasons the backend cannot run `op` on `device` ("" when it can), without importing anything.
    missing: Callable[[str, torch.device], str]


def _torch_missing(op: str, device: torch.device) -> str:
    return ""


def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def _triton_missing(op: str, device: torch.device) -> str:
    interpret = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    if device.type == "cuda":
        device_note = f"device: {device} (ok)"
    elif interpret:
        device_note = f"device: {device} (ok under TRITON_INTERPRET=1)"
    else:
        device_note = f"device: {device} (needs CUDA, or TRITON_INTERPRET=1)"
    installed = "yes" if _triton_installed() else "no"
    kernel = f"the Triton {_OP_TITLES[op]} kernel is not in this release yet (issue 3)"
    return f"{kernel}; triton installed: {installed}; {device_note}"


def _find_nvcc() -> str | None:
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")):
        if root and os.path.isfile(os.path.join(root, "bin", "nvcc")):
            return os.path.join(root, "bin", "nvcc")
    found = shutil.which("nvcc")
    if found:
        return found
    default = "/usr/local/cuda/bin/nvcc"
    return default if os.path.isfile(default) else None


def _cuda_missing(op: str, device: torch.device) -> str:
    nvcc = _find_nvcc()
    nvcc_note = f"nvcc: {nvcc}" if nvcc else "nvcc: not found (set CUDA_HOME or put nvcc on PATH)"
    if device.type != "cuda":
        device_note = f"device: {device} (needs an NVIDIA GPU with compute capability >= 8.0)"
    else:
        major, minor = torch.cuda.get_device_capability(device)
        ok = "ok" if (major, minor) >= (8, 0) else "needs >= 8.0"
        device_note = f"device: {device}, compute capability {major}.{minor} ({ok})"
    return f"the CUDA {_OP_TITLES[op]} kernel is not in this release yet (issue 4); {nvcc_note}; {device_note}"


# Preference order for `auto`: fastest first, the reference last.
_BACKENDS: dict[str, _Backend] = {
    "triton": _Backend("triton", ("mlstm",), _triton_missing),
    "cuda": _Backend("cuda", ("slstm",), _cuda_missing),
    "torch": _Backend("torch", ("mlstm", "slstm"), _torch_missing),
}

# (op, device) -> the backend `auto` resolved to; filled (and logged) once per key.
_AUTO_CHOICE: dict[tuple[str, torch.device], str] = {}


def _check_op(op: str) -> None:
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; valid ops: {', '.join(OPS)}")


def available_backends(op: str, device: torch.device | str = "cpu") -> tuple[str, ...]:
    """The concrete backends that can run ``op`` on ``device`` now, fastest first (``torch`` is always there).

    Args:
        op: ``"mlstm"`` or ``"slstm"``.
        device: The device the tensors live on. Default ``"cpu"``.
    """
    _check_op(op)
    device = torch.device(device)
    return tuple(b.name for b in _BACKENDS.values() if op in b.ops and not b.missing(op, device))


def resolve_backend(op: str, name: str, device: torch.device | str) -> str:
    """Maps a requested backend name to the concrete backend that will run ``op`` on ``device``.

    Args:
        op: ``"mlstm"`` or ``"slstm"``.
        name: ``"auto"``, ``"torch"``, ``"triton"`` or ``"cuda"``.
        device: The device of the op's tensors.

    Returns:
        ``"torch"``, ``"triton"`` or ``"cuda"``.

    Raises:
        ValueError: ``op`` or ``name`` is not known (the message lists the valid ones).
        BackendUnavailableError: the named backend cannot run here (the message says what is missing).
    """
    _check_op(op)
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {name!r}; valid backends: {', '.join(BACKEND_NAMES)}")
    device = torch.device(device)
    if name == "auto":
        key = (op, device)
        if key not in _AUTO_CHOICE:
            choice = available_backends(op, device)[0]
            _AUTO_CHOICE[key] = choice
            logger.info("xlstm_seq.kernels: backend 'auto' for %s on %s -> %r", op, device, choice)
        return _AUTO_CHOICE[key]
    backend = _BACKENDS[name]
    if op not in backend.ops:
        has = ", ".join(b.name for b in _BACKENDS.values() if op in b.ops)
        raise BackendUnavailableError(
            f"the {name} backend has no {op} kernel (it implements {', '.join(backend.ops)}); {op} backends: {has}"
        )
    reason = backend.missing(op, device)
    if reason:
        raise BackendUnavailableError(f"backend {name!r} cannot run {op} here: {reason}")
    return name
