"""Configuration of the xLSTM core: dataclasses validated on construction, round-tripped through YAML.

The configs are plain dataclasses with attribute docstrings. Every config class derives from ``ConfigMixin``, which
checks each field against its annotation when the config is built (``num_blocks=2.5`` or ``embedding_dim="128"``
raise ``ConfigError`` naming the field, the value and the type expected; see ``xlstm_seq.config_io``); then the
class's ``__post_init__`` raises ``ConfigError`` (a ``ValueError``) with the reason when a value cannot work (an
embedding width not divisible by the heads, an sLSTM position outside the stack, ...). ``to_dict``/``from_dict`` and
``to_yaml``/``from_yaml`` are exact inverses.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from xlstm_seq.config_io import ConfigError, check_config_types, config_from_dict, config_to_dict, dump_yaml, load_yaml

BACKEND_NAMES = ("auto", "torch", "triton", "cuda", "cpu")
INPUT_GATES = ("exp", "sigmoid")

C = TypeVar("C")


class ConfigMixin:
    """YAML and dict round trip shared by every config dataclass, and the typed check of its fields.

    Each field is checked against its annotation on construction, before the class's own ``__post_init__`` runs
    (so that its range checks compare numbers with numbers); a subclass needs nothing for it.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__post_init__")
        if own is None or getattr(own, "_checks_types", False):
            return

        @functools.wraps(own)
        def __post_init__(self: Any, *args: Any) -> None:
            # Only the outermost class checks: a subclass's __post_init__ calling super() does not check again.
            if type(self).__post_init__ is __post_init__:
                check_config_types(self)
            own(self, *args)

        __post_init__._checks_types = True  # type: ignore[attr-defined]
        cls.__post_init__ = __post_init__  # type: ignore[attr-defined]

    def __post_init__(self) -> None:
        check_config_types(self)

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        return config_from_dict(cls, data)

    def to_yaml(self, path: str | Path | None = None, header: str | None = None) -> str:
        """Returns the YAML text; also writes it to ``path`` when given (``header`` becomes a comment line)."""
        return dump_yaml(self.to_dict(), path, header=header)

    @classmethod
    def from_yaml(cls: type[C], path_or_text: str | Path) -> C:
        return cls.from_dict(load_yaml(path_or_text))

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass
class mLSTMLayerConfig(ConfigMixin):
    """The mLSTM layer inside the pre-up-projection block (xLSTM paper, Fig. 10)."""

    proj_factor: float = 2.0
    """Up-projection factor: the mLSTM runs at width ``proj_factor * embedding_dim``."""
    conv_kernel_size: int = 4
    """Causal depthwise convolution in front of q and k (1 disables mixing over time)."""
    qkv_proj_blocksize: int = 4
    """Channels per block of the block-diagonal q/k/v projections."""
    input_gate: str = "exp"
    """Input-gate activation: "exp" (the paper's exponential gate) or "sigmoid"."""
    chunk_size: int | None = None
    """Chunk length of the chunkwise kernel; None lets the backend choose (the Triton kernel takes 16, 32, 64,
    128 or 256; the PyTorch reference any length)."""
    backend: str | None = None
    """Kernel backend of the mLSTM layers ("auto", "torch", "triton"); None uses the stack's ``backend``."""

    def __post_init__(self) -> None:
        _require(
            self.backend is None or self.backend in BACKEND_NAMES,
            f"mlstm.backend must be None or one of {BACKEND_NAMES}, got {self.backend!r}",
        )
        _require(self.proj_factor > 0, f"mlstm.proj_factor must be > 0, got {self.proj_factor}")
        _require(self.conv_kernel_size >= 1, f"mlstm.conv_kernel_size must be >= 1, got {self.conv_kernel_size}")
        _require(self.qkv_proj_blocksize >= 1, f"mlstm.qkv_proj_blocksize must be >= 1, got {self.qkv_proj_blocksize}")
        _require(
            self.input_gate in INPUT_GATES, f"mlstm.input_gate must be one of {INPUT_GATES}, got {self.input_gate!r}"
        )
        _require(
            self.chunk_size is None or self.chunk_size >= 1,
            f"mlstm.chunk_size must be >= 1 or None, got {self.chunk_size}",
        )


@dataclass
class sLSTMLayerConfig(ConfigMixin):
    """The sLSTM layer inside the post-up-projection block (xLSTM paper, Fig. 9)."""

    num_heads: int | None = None
    """Heads of the block-diagonal recurrence; None uses the stack's ``num_heads``."""
    conv_kernel_size: int = 4
    """Causal depthwise convolution feeding the input and forget gates (1 disables it)."""
    ffn_proj_factor: float = 4.0 / 3.0
    """Hidden width of the gated MLP after the sLSTM, as a multiple of ``embedding_dim``."""
    backend: str | None = None
    """Kernel backend of the sLSTM layers ("auto", "torch", "cuda", "cpu"); None uses the stack's ``backend``."""

    def __post_init__(self) -> None:
        _require(
            self.backend is None or self.backend in BACKEND_NAMES,
            f"slstm.backend must be None or one of {BACKEND_NAMES}, got {self.backend!r}",
        )
        _require(self.num_heads is None or self.num_heads >= 1, f"slstm.num_heads must be >= 1, got {self.num_heads}")
        _require(self.conv_kernel_size >= 1, f"slstm.conv_kernel_size must be >= 1, got {self.conv_kernel_size}")
        _require(self.ffn_proj_factor > 0, f"slstm.ffn_proj_factor must be > 0, got {self.ffn_proj_factor}")


def parse_block_ratio(ratio: str) -> tuple[int, int]:
    """Parses "m:s" (mLSTM blocks per sLSTM blocks, e.g. "7:1"; brackets allowed) into two integers."""
    text = ratio.strip().strip("[]")
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"block_ratio must look like '7:1' (mLSTM:sLSTM), got {ratio!r}")
    num_m, num_s = (int(p) for p in parts)
    if num_m + num_s == 0:
        raise ConfigError(f"block_ratio needs at least one block, got {ratio!r}")
    return num_m, num_s


@dataclass
class xLSTMConfig(ConfigMixin):
    """An xLSTM stack: residual mLSTM and sLSTM blocks over a ``(B, T, E)`` sequence."""

    embedding_dim: int = 256
    """Model width E."""
    num_blocks: int = 8
    """Number of residual blocks."""
    num_heads: int = 4
    """Heads of the mLSTM (and of the sLSTM unless ``slstm.num_heads`` says otherwise)."""
    slstm_at: list[int] = field(default_factory=list)
    """Zero-based positions of sLSTM blocks; every other block is an mLSTM block."""
    block_ratio: str | None = None
    """Alternative to ``slstm_at``: "m:s" repeats m mLSTM blocks followed by s sLSTM blocks (e.g. "7:1", "1:1")."""
    backend: str = "auto"
    """Kernel backend of every layer: "auto", "torch", "triton" (mLSTM only), "cuda" or "cpu" (sLSTM only);
    ``mlstm.backend`` / ``slstm.backend`` override it per op, e.g. triton for mLSTM with cuda for sLSTM."""
    dropout: float = 0.0
    """Dropout on each block's residual branch."""
    bias: bool = False
    """Biases in the projections and norms."""
    add_post_blocks_norm: bool = True
    """A final LayerNorm after the last block."""
    mlstm: mLSTMLayerConfig = field(default_factory=mLSTMLayerConfig)
    """Settings of the mLSTM layers."""
    slstm: sLSTMLayerConfig = field(default_factory=sLSTMLayerConfig)
    """Settings of the sLSTM layers."""

    def __post_init__(self) -> None:
        _require(self.embedding_dim >= 1, f"embedding_dim must be >= 1, got {self.embedding_dim}")
        _require(self.num_blocks >= 1, f"num_blocks must be >= 1, got {self.num_blocks}")
        _require(self.num_heads >= 1, f"num_heads must be >= 1, got {self.num_heads}")
        _require(
            self.embedding_dim % self.num_heads == 0,
            f"embedding_dim ({self.embedding_dim}) must be divisible by num_heads ({self.num_heads})",
        )
        _require(self.backend in BACKEND_NAMES, f"backend must be one of {BACKEND_NAMES}, got {self.backend!r}")
        _require(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        self.slstm_at = list(self.slstm_at)
        for pos in self.slstm_at:
            _require(
                isinstance(pos, int) and 0 <= pos < self.num_blocks,
                f"slstm_at entries must be block positions in [0, {self.num_blocks - 1}], got {pos!r}",
            )
        _require(len(set(self.slstm_at)) == len(self.slstm_at), f"slstm_at has duplicates: {self.slstm_at}")
        if self.block_ratio is not None:
            _require(not self.slstm_at, "give either slstm_at or block_ratio, not both")
            num_m, num_s = parse_block_ratio(self.block_ratio)
            _require(
                self.num_blocks % (num_m + num_s) == 0,
                f"num_blocks ({self.num_blocks}) must be a multiple of {num_m + num_s} for block_ratio "
                f"{self.block_ratio!r}",
            )
        _require(
            self.mlstm_inner_dim % self.num_heads == 0,
            f"the mLSTM width proj_factor * embedding_dim = {self.mlstm_inner_dim} must be divisible by "
            f"num_heads ({self.num_heads})",
        )
        _require(
            self.mlstm_inner_dim % self.mlstm.qkv_proj_blocksize == 0,
            f"the mLSTM width {self.mlstm_inner_dim} must be divisible by mlstm.qkv_proj_blocksize "
            f"({self.mlstm.qkv_proj_blocksize})",
        )
        _require(
            self.embedding_dim % self.slstm_num_heads == 0,
            f"embedding_dim ({self.embedding_dim}) must be divisible by the sLSTM heads ({self.slstm_num_heads})",
        )
        # A backend with a kernel for one op only must not reach the other op's layers.
        num_slstm = len(self.slstm_block_ids)
        _require(
            not (self.mlstm_backend == "cuda" and num_slstm < self.num_blocks),
            "backend 'cuda' has no mLSTM kernel: set mlstm.backend ('auto', 'torch' or 'triton') or backend='auto'",
        )
        _require(
            not (self.mlstm_backend == "cpu" and num_slstm < self.num_blocks),
            "backend 'cpu' has no mLSTM kernel: set mlstm.backend ('auto', 'torch' or 'triton') or backend='auto'",
        )
        _require(
            not (self.slstm_backend == "triton" and num_slstm > 0),
            "backend 'triton' has no sLSTM kernel: set slstm.backend ('auto', 'torch', 'cuda' or 'cpu') or "
            "backend='auto'",
        )

    @property
    def mlstm_backend(self) -> str:
        """Backend the mLSTM layers use: ``mlstm.backend`` if set, else the stack's."""
        return self.mlstm.backend or self.backend

    @property
    def slstm_backend(self) -> str:
        """Backend the sLSTM layers use: ``slstm.backend`` if set, else the stack's."""
        return self.slstm.backend or self.backend

    @property
    def mlstm_inner_dim(self) -> int:
        """Width of the up-projected mLSTM branch: ``proj_factor * embedding_dim``, rounded."""
        return int(round(self.mlstm.proj_factor * self.embedding_dim))

    @property
    def slstm_num_heads(self) -> int:
        return self.slstm.num_heads or self.num_heads

    @property
    def slstm_block_ids(self) -> list[int]:
        """Resolved sorted positions of the sLSTM blocks."""
        if self.block_ratio is None:
            return sorted(self.slstm_at)
        num_m, num_s = parse_block_ratio(self.block_ratio)
        group = num_m + num_s
        return [i for i in range(self.num_blocks) if i % group >= num_m]
