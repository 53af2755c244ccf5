"""Builds the CUDA sLSTM extension (``kernels/slstm/cuda/``) on first use and caches it.

Two kernel variants share one binding (``cuda/slstm.h``): ``fused`` (one block per head and 16 batch rows, the
head's R resident in the block; head dims 16, 32, ..., 128) and ``multiblock`` (a head's gate columns spread over
D / 32 blocks that meet at a barrier every step; head dims 64, 96, ..., 256). ``auto`` takes ``fused`` wherever it
covers the head dim and ``multiblock`` above that (160, 192, 224, 256).

One build per :class:`BuildKey` = (variant, head dim, heads, dtype, compute capability): the head dim and head count
are compile-time constants of the kernels, the dtype picks the tensor-core (bf16) or FMA (f32) path, and the code is
generated for the device actually present (``-gencode=arch=compute_XY,code=sm_XY``), nothing hard-coded. Builds go
through ``torch.utils.cpp_extension.load`` into torch's extension directory (``TORCH_EXTENSIONS_DIR`` overrides
it) under a name that carries the key and a digest of the variant's sources, so an edited source rebuilds and an
unchanged one is reloaded from disk. Within a process the module is cached in a dict; that dict is the only state
here, and nothing that a model holds refers to it, so models pickle and deepcopy.

Nothing compiles or imports a compiler at import time. Messages go through ``logging`` only.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from xlstm_seq.kernels import registry
from xlstm_seq.kernels.registry import BackendUnavailableError

__all__ = [
    "BuildKey",
    "CudaBuildError",
    "KERNEL_DTYPES",
    "SOURCE_DIR",
    "VARIANTS",
    "build_flags",
    "build_key",
    "clear_cache",
    "gencode_flag",
    "load_extension",
    "resolve_variant",
    "unsupported_reason",
]

logger = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).resolve().parent / "cuda"
#: The sources each variant compiles (the binding and one kernel file), and the headers they share.
VARIANT_SOURCES: dict[str, tuple[str, ...]] = {
    "fused": ("slstm_binding.cpp", "slstm_fused.cu"),
    "multiblock": ("slstm_binding.cpp", "slstm_multiblock.cu"),
}
VARIANTS = tuple(VARIANT_SOURCES)
#: Every compiled source of either variant.
SOURCES = ("slstm_binding.cpp", "slstm_fused.cu", "slstm_multiblock.cu")
HEADERS = ("slstm.h", "slstm_common.cuh")

#: Input dtypes the kernels have a build for, and their short names in build names.
KERNEL_DTYPES: dict[torch.dtype, str] = {torch.float32: "f32", torch.bfloat16: "bf16"}
#: Head dims each variant covers. ``auto`` takes ``fused`` where it can, else ``multiblock``; head dims that neither
#: covers run the reference (see fused.py).
VARIANT_HEAD_DIMS: dict[str, tuple[int, ...]] = {
    "fused": tuple(range(16, 129, 16)),
    "multiblock": tuple(range(64, 257, 32)),
}
HEAD_DIMS = tuple(sorted(set(VARIANT_HEAD_DIMS["fused"]) | set(VARIANT_HEAD_DIMS["multiblock"])))
#: Hidden units per block of the multiblock kernel (blocks per head: head dim / this).
MULTIBLOCK_UNITS = 32
MIN_COMPUTE_CAPABILITY = (8, 0)
_HEAD_DIM_TEXT = {
    "fused": "multiples of 16 from 16 to 128",
    "multiblock": "multiples of 32 from 64 to 256",
}


class CudaBuildError(RuntimeError):
    """Compiling or loading the CUDA extension failed; the message names the build and where its log is."""


@dataclass(frozen=True)
class BuildKey:
    """What one build of the extension is specialised for."""

    head_dim: int
    num_heads: int
    dtype: str  # "f32" or "bf16"
    capability: tuple[int, int]
    variant: str = "fused"  # "fused" or "multiblock"

    def name(self) -> str:
        """The extension's module name: the key plus a digest of the variant's sources."""
        major, minor = self.capability
        prefix = "xlstm_seq_slstm" if self.variant == "fused" else "xlstm_seq_slstm_mb"
        digest = _source_digest(self.variant)
        return f"{prefix}_d{self.head_dim}_h{self.num_heads}_{self.dtype}_sm{major}{minor}_{digest}"


_CACHE: dict[BuildKey, ModuleType] = {}
_LOCK = threading.Lock()
_DIGESTS: dict[str, str] = {}  # variant -> digest, filled once per process


def _source_digest(variant: str) -> str:
    if variant not in _DIGESTS:
        h = hashlib.sha256()
        for fname in VARIANT_SOURCES[variant] + HEADERS:
            h.update(fname.encode())
            h.update((SOURCE_DIR / fname).read_bytes())
        _DIGESTS[variant] = h.hexdigest()[:10]
    return _DIGESTS[variant]


def resolve_variant(head_dim: int, variant: str = "auto") -> str:
    """The kernel variant that runs this head dim: ``variant`` itself, or for ``"auto"`` the fused kernel where it
    covers the head dim and the multiblock kernel otherwise.

    Raises:
        ValueError: an unknown variant name.
    """
    if variant == "auto":
        return "fused" if head_dim in VARIANT_HEAD_DIMS["fused"] else "multiblock"
    if variant not in VARIANTS:
        raise ValueError(f"unknown sLSTM kernel variant {variant!r}; valid: auto, {', '.join(VARIANTS)}")
    return variant


def unsupported_reason(head_dim: int, dtype: torch.dtype, variant: str = "auto") -> str:
    """Why the kernels have no build for this head dim and dtype ("" when they have one).

    Args:
        head_dim: D.
        dtype: gates_x's dtype.
        variant: ``"auto"`` (default: either variant may cover it), ``"fused"`` or ``"multiblock"``.
    """
    reasons = []
    if dtype not in KERNEL_DTYPES:
        names = ", ".join(str(d) for d in KERNEL_DTYPES)
        reasons.append(f"dtype {dtype} (the CUDA kernels take {names})")
    if variant == "auto":
        if head_dim not in HEAD_DIMS:
            reasons.append(
                f"head dim {head_dim} (the CUDA kernels take {_HEAD_DIM_TEXT['fused']} (fused) and "
                f"{_HEAD_DIM_TEXT['multiblock']} (multiblock))"
            )
    elif head_dim not in VARIANT_HEAD_DIMS[resolve_variant(head_dim, variant)]:
        reasons.append(f"head dim {head_dim} (the {variant} kernel takes {_HEAD_DIM_TEXT[variant]})")
    return "; ".join(reasons)


def gencode_flag(capability: tuple[int, int]) -> str:
    """nvcc flag generating code for exactly this compute capability: (9, 0) -> ``arch=compute_90,code=sm_90``."""
    major, minor = capability
    return f"-gencode=arch=compute_{major}{minor},code=sm_{major}{minor}"


def build_flags(key: BuildKey) -> tuple[list[str], list[str]]:
    """(host compiler flags, nvcc flags) for ``key``; the configuration macros go to both compilers."""
    defines = [
        f"-DSLSTM_D={key.head_dim}",
        f"-DSLSTM_H={key.num_heads}",
        f"-DSLSTM_BF16={int(key.dtype == 'bf16')}",
        "-DSLSTM_SPLIT=1",
    ]
    if key.variant == "multiblock":
        defines.append(f"-DSLSTM_UNITS={MULTIBLOCK_UNITS}")
    host = ["-O3", *defines]
    nvcc = ["-O3", gencode_flag(key.capability), "-lineinfo", *defines]
    return host, nvcc


def build_key(
    head_dim: int, num_heads: int, dtype: torch.dtype, device: torch.device, variant: str = "auto"
) -> BuildKey:
    """The key for tensors of this shape and dtype on ``device``, for ``variant`` (see :func:`resolve_variant`).

    Raises:
        ValueError: no kernel variant (or not the one asked for) has a build for this head dim or dtype.
        BackendUnavailableError: the device or toolchain cannot run it (no CUDA torch, no nvcc or ninja, no GPU,
            compute capability below 8.0); the message says which.
    """
    reason = unsupported_reason(head_dim, dtype, variant)
    if reason:
        raise ValueError(f"the CUDA sLSTM kernels do not cover {reason}")
    variant = resolve_variant(head_dim, variant)
    if num_heads < 1:
        raise ValueError(f"num_heads must be >= 1, got {num_heads}")
    device = torch.device(device)
    missing = registry._cuda_missing("slstm", device)
    if missing:
        raise BackendUnavailableError(f"the CUDA sLSTM kernels cannot be built or run here: {missing}")
    capability = tuple(torch.cuda.get_device_capability(device))
    return BuildKey(head_dim, num_heads, KERNEL_DTYPES[dtype], capability, variant)  # type: ignore[arg-type]


def load_extension(
    head_dim: int, num_heads: int, dtype: torch.dtype, device: torch.device | str, variant: str = "auto"
) -> ModuleType:
    """The compiled extension for this configuration: built on the first call, then taken from the cache.

    Args:
        head_dim, num_heads, dtype, device: what the build is specialised for.
        variant: ``"auto"`` (default), ``"fused"`` or ``"multiblock"``; see :func:`resolve_variant`.

    Raises:
        ValueError / BackendUnavailableError: see :func:`build_key`.
        CudaBuildError: the compiler or the loader failed (the message says where the build log is).
    """
    key = build_key(head_dim, num_heads, dtype, torch.device(device), variant)
    module = _CACHE.get(key)
    if module is not None:
        return module
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _build(key)
    return _CACHE[key]


def clear_cache() -> None:
    """Forgets the loaded modules of this process (the next call loads again; builds on disk stay)."""
    with _LOCK:
        _CACHE.clear()


def _build(key: BuildKey) -> ModuleType:
    from torch.utils import cpp_extension  # imported on first build only

    name = key.name()
    host_flags, nvcc_flags = build_flags(key)
    sources = [str(SOURCE_DIR / s) for s in VARIANT_SOURCES[key.variant]]
    logger.info(
        "xlstm_seq.kernels: building the %s CUDA sLSTM kernel %s (D=%d, H=%d, %s, sm_%d%d); first use only",
        key.variant,
        name,
        key.head_dim,
        key.num_heads,
        key.dtype,
        *key.capability,
    )
    start = time.perf_counter()
    try:
        module = cpp_extension.load(
            name=name,
            sources=sources,
            extra_cflags=host_flags,
            extra_cuda_cflags=nvcc_flags,
            extra_include_paths=[str(SOURCE_DIR)],
            with_cuda=True,
            verbose=False,
        )
    except Exception as err:  # compiler, linker or import failure: say which build and where its log is
        where = cpp_extension._get_build_directory(name, verbose=False)
        raise CudaBuildError(
            f"building the {key.variant} CUDA sLSTM kernel {name} failed ({type(err).__name__}: {err}); "
            f"nvcc flags: {' '.join(nvcc_flags)}; build directory: {where}"
        ) from err
    logger.info("xlstm_seq.kernels: %s ready in %.1f s", name, time.perf_counter() - start)
    return module
