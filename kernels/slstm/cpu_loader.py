"""Builds the C++ sLSTM recurrence (``kernels/slstm/cpu/slstm_cpu.cpp``) on first use and caches it.

The source includes no torch headers, so the system compiler builds it in about a second (an extension built
against torch's headers takes a minute). The library is loaded with :mod:`ctypes` and called with raw pointers to
contiguous tensors (:mod:`xlstm_seq.kernels.slstm.cpu`).

One build per machine and source: the file name carries a digest of the source, the compiler, its flags and the
CPU's model and feature flags (the code is built with ``-march=native``), so an edited source rebuilds and a cache
folder shared between different machines never loads code built for another CPU. The folder is
``$XLSTM_SEQ_CPU_KERNEL_DIR``, else ``$XDG_CACHE_HOME/xlstm_seq/cpu_kernels`` (``~/.cache/...``). A build writes a
temporary file and renames it, so concurrent processes never load a half-written library.

The compiler is ``$CXX`` when set, else the first of ``c++``, ``g++`` and ``clang++`` on the PATH; it is looked up
once, at import (a cheap PATH search, so that backend choices made inside ``torch.compile`` need no file system).
Nothing compiles at import time. Messages go through ``logging`` only.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

__all__ = [
    "ABI_VERSION",
    "BUILD_FLAGS",
    "COMPILER",
    "SOURCE",
    "CpuBuildError",
    "cache_dir",
    "compiler_missing",
    "known_failure",
    "load_library",
]

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent / "cpu" / "slstm_cpu.cpp"
#: The interface version the Python side expects (``xlstm_slstm_cpu_abi()`` in the source).
ABI_VERSION = 1
#: -fno-math-errno lets the compiler inline and vectorise math without changing any value; no -ffast-math (the
#: recurrence relies on IEEE exp/log1p/tanh and on comparisons with infinities).
BUILD_FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-std=c++17", "-shared", "-fPIC", "-pthread")


def _find_compiler() -> str | None:
    wanted = os.environ.get("CXX")
    candidates = [wanted] if wanted else ["c++", "g++", "clang++"]
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
    return None


#: The C++ compiler found at import (None: none on the PATH).
COMPILER: str | None = _find_compiler()


class CpuBuildError(RuntimeError):
    """Compiling or loading the C++ sLSTM failed; the message names the compiler and its first error line."""


_LOCK = threading.Lock()
_LIBRARY: ctypes.CDLL | None = None
_FAILURE = ""  # why the last build or load failed ("" when none did)


def compiler_missing() -> str:
    """Why the C++ sLSTM cannot be built here ("" when a compiler was found)."""
    if COMPILER is None:
        looked_for = os.environ.get("CXX") or "c++, g++, clang++"
        return f"no C++ compiler found (looked for {looked_for}; set CXX or install g++)"
    return ""


def known_failure() -> str:
    """Why the library cannot run here, as far as is known without building it: no compiler, or a build or load that
    failed in this process ("" otherwise)."""
    return compiler_missing() or _FAILURE


def cache_dir() -> Path:
    """Where built libraries are kept."""
    explicit = os.environ.get("XLSTM_SEQ_CPU_KERNEL_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "xlstm_seq" / "cpu_kernels"


def _cpu_signature() -> str:
    """The CPU's model and feature flags (what -march=native compiles for)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    wanted = ("model name", "flags", "Features", "CPU part")
    return "\n".join(sorted({line for line in lines if line.split(":")[0].strip() in wanted}))


def _library_path(compiler: str) -> Path:
    h = hashlib.sha256()
    for part in (SOURCE.read_bytes(), compiler.encode(), " ".join(BUILD_FLAGS).encode(), _cpu_signature().encode()):
        h.update(part)
        h.update(b"\0")
    return cache_dir() / f"libxlstm_slstm_cpu_{h.hexdigest()[:16]}.so"


def _build(compiler: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.stem + ".", suffix=".so.tmp", dir=target.parent)
    os.close(fd)
    command = [compiler, *BUILD_FLAGS, str(SOURCE), "-o", tmp]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            error = next((line for line in result.stderr.splitlines() if "error" in line), result.stderr.strip())
            raise CpuBuildError(f"building the C++ sLSTM with {compiler} failed: {error[:300]}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _bind(library: ctypes.CDLL) -> ctypes.CDLL:
    if library.xlstm_slstm_cpu_abi() != ABI_VERSION:
        raise CpuBuildError(f"the C++ sLSTM library has interface {library.xlstm_slstm_cpu_abi()}, not {ABI_VERSION}")
    ptr, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for suffix in ("f32", "f64"):
        forward = getattr(library, f"xlstm_slstm_cpu_fwd_{suffix}")
        forward.argtypes = [ptr] * 8 + [i64] * 4 + [i32]
        forward.restype = None
        backward = getattr(library, f"xlstm_slstm_cpu_bwd_{suffix}")
        backward.argtypes = [ptr] * 9 + [i64] * 4 + [i32]
        backward.restype = None
    return library


def load_library() -> ctypes.CDLL:
    """The built library, compiled on the first call of a machine (about a second) and loaded once per process.

    Raises:
        CpuBuildError: no compiler, or the build or the load failed (the message says which and why). A failure is
            remembered: later calls raise the same error without trying again.
    """
    global _LIBRARY, _FAILURE
    if _LIBRARY is not None:
        return _LIBRARY
    with _LOCK:
        if _LIBRARY is not None:
            return _LIBRARY
        if _FAILURE:
            raise CpuBuildError(_FAILURE)
        try:
            missing = compiler_missing()
            if missing:
                raise CpuBuildError(missing)
            target = _library_path(COMPILER)  # type: ignore[arg-type]
            if not target.exists():
                logger.info("xlstm_seq.kernels: building the C++ sLSTM into %s", target)
                _build(COMPILER, target)  # type: ignore[arg-type]
            try:
                library = ctypes.CDLL(str(target))
            except OSError as exc:
                raise CpuBuildError(f"loading the C++ sLSTM library {target} failed: {exc}") from exc
            _LIBRARY = _bind(library)
        except (CpuBuildError, OSError) as exc:
            _FAILURE = str(exc) if isinstance(exc, CpuBuildError) else f"building the C++ sLSTM failed: {exc}"
            raise CpuBuildError(_FAILURE) from exc
    return _LIBRARY
