"""Backend registry: which implementation of an op runs on which device.

Backends by name:

* ``torch``: the plain-PyTorch reference (``naive.py``); any op, any device.
* ``triton``: the chunkwise Triton mLSTM kernels and the fused step (``mlstm/chunkwise.py``, ``mlstm/step.py``);
  need triton installed and a CUDA device, or ``TRITON_INTERPRET=1`` on a CPU (for tests: ``auto`` picks ``triton``
  on CUDA devices only).
* ``cuda``: the fused CUDA sLSTM kernel (``slstm/fused.py``); needs a CUDA build of torch, nvcc, ninja and an NVIDIA
  GPU with compute capability >= 8.0; built on first use (``slstm/cuda_loader.py``).
* ``cpu``: the C++ sLSTM recurrence (``slstm/cpu.py``) for CPU tensors; needs a C++ compiler; built on first use in
  about a second (``slstm/cpu_loader.py``), and where that build fails the reference runs instead (logged).
* ``auto``: the fastest backend available for the op on the tensors' device (``triton`` for mLSTM and ``cuda`` for
  sLSTM on CUDA devices where they can run, ``cpu`` for sLSTM on CPUs with a C++ compiler, else ``torch``). The
  choice is made once per (op, device), cached, and logged once through ``logging``.

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
BACKEND_NAMES = ("auto", "torch", "triton", "cuda", "cpu")
_OP_TITLES = {"mlstm": "mLSTM", "slstm": "sLSTM"}


class BackendUnavailableError(RuntimeError):
    """A backend was asked for by name but cannot run here; the message says what is missing."""


@dataclass(frozen=True)
class _Backend:
    name: str
    ops: tuple[str, ...]
    # Returns the reasons the backend cannot run `op` on `device` ("" when it can), without importing anything.
    missing: Callable[[str, torch.device], str]
    # Whether `auto` may choose it (False: only when asked for by name).
    auto: bool = True


def _torch_missing(op: str, device: torch.device) -> str:
    return ""


# Looked up once at import: find_spec locates the package without importing it, and a lookup inside a
# torch.compile'd region is a graph break (torch 2.11's dynamo refuses to trace importlib.util.find_spec).
_TRITON_INSTALLED = importlib.util.find_spec("triton") is not None


def _triton_installed() -> bool:
    return _TRITON_INSTALLED


def _triton_missing(op: str, device: torch.device) -> str:
    interpret = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    installed = _triton_installed()
    device_ok = device.type == "cuda" or interpret
    if installed and device_ok:
        return ""
    installed_note = "triton installed: yes" if installed else "triton installed: no (pip install 'xlstm-seq[triton]')"
    device_note = f"device: {device} (ok)" if device_ok else f"device: {device} (needs CUDA, or TRITON_INTERPRET=1)"
    return f"the Triton {_OP_TITLES[op]} kernel needs triton and a CUDA device; {installed_note}; {device_note}"


def _auto_may_pick(name: str, device: torch.device) -> bool:
    # Interpreted Triton on a CPU is far slower than the reference: a test tool, never an automatic choice.
    return _BACKENDS[name].auto and (name != "triton" or device.type == "cuda")


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
    missing = []
    if torch.version.cuda is None:
        missing.append(f"torch {torch.__version__} is built without CUDA")
    if nvcc is None:
        missing.append("nvcc: not found (set CUDA_HOME or put nvcc on PATH)")
    if shutil.which("ninja") is None:
        missing.append("ninja: not found (pip install ninja; torch builds extensions with it)")
    if device.type != "cuda":
        missing.append(f"device: {device} (needs an NVIDIA GPU with compute capability >= 8.0)")
    elif torch.version.cuda is None or not torch.cuda.is_available():
        missing.append(f"device: {device} (no CUDA device visible; needs compute capability >= 8.0)")
    else:
        major, minor = torch.cuda.get_device_capability(device)
        if (major, minor) < (8, 0):
            missing.append(f"device: {device}, compute capability {major}.{minor} (needs >= 8.0)")
    if missing and nvcc:
        missing.append(f"nvcc: {nvcc} (found)")
    return "; ".join(missing)


def _cpu_missing(op: str, device: torch.device) -> str:
    from xlstm_seq.kernels.slstm import cpu_loader  # stdlib only; imported here as kernels.slstm imports this module

    missing = [] if device.type == "cpu" else [f"device: {device} (the C++ sLSTM runs on CPU tensors)"]
    reason = cpu_loader.known_failure()
    return "; ".join(missing + ([reason] if reason else []))


# Preference order for `auto`: fastest first, the reference last.
_BACKENDS: dict[str, _Backend] = {
    "triton": _Backend("triton", ("mlstm",), _triton_missing),
    # The fused sLSTM passed its 23 GPU tests on an H200 (2026-12-04) and beats the torch loop 14-58x there
    # (benchmarks/kernels/), so `auto` takes it wherever it can be built; uncovered shapes fall back inside it.
    "cuda": _Backend("cuda", ("slstm",), _cuda_missing),
    # Stacks with sLSTM blocks train 1.9-3.0x faster on it than on the torch loop (benchmarks/kernels/core_cpu.md).
    "cpu": _Backend("cpu", ("slstm",), _cpu_missing),
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
        name: ``"auto"``, ``"torch"``, ``"triton"``, ``"cuda"`` or ``"cpu"``.
        device: The device of the op's tensors.

    Returns:
        ``"torch"``, ``"triton"``, ``"cuda"`` or ``"cpu"``.

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
            choice = next(b for b in available_backends(op, device) if _auto_may_pick(b, device))
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
