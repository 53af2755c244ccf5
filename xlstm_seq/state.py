"""The recurrent state of an xLSTM stack: typed, batch-first containers of tensors.

Every tensor in a state has the batch on dimension 0, so ``select``, ``reset`` and ``cat`` work on all of them
alike. States are plain dataclasses of tensors: they pickle, deepcopy and move between devices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor

S = TypeVar("S", bound="TensorState")
BatchIndex = int | slice | Sequence[int] | Tensor


def _as_batch_index(idx: BatchIndex) -> slice | Tensor | list[int]:
    # An int would drop the batch dimension; keep it so a selected state is still batch-first.
    return [idx] if isinstance(idx, int) else idx


class TensorState:
    """Shared behaviour of the per-block states: every field is a batch-first tensor."""

    def _map(self: S, fn: Callable[[Tensor], Tensor]) -> S:
        return type(self)(**{f.name: fn(getattr(self, f.name)) for f in dataclasses.fields(self)})

    def tensors(self) -> list[Tensor]:
        return [getattr(self, f.name) for f in dataclasses.fields(self)]

    def detach(self: S) -> S:
        return self._map(Tensor.detach)

    def to(self: S, *args: Any, **kwargs: Any) -> S:
        """Moves every tensor (``state.to("cuda")``); floating states stay float32 unless a dtype is given."""
        return self._map(lambda t: t.to(*args, **kwargs))

    def select(self: S, idx: BatchIndex) -> S:
        index = _as_batch_index(idx)
        return self._map(lambda t: t[index])

    def reset(self: S, mask: Tensor) -> S:
        """Zeroes the entries whose ``mask`` (B,) is True: the memory of those batch rows starts afresh."""
        keep = ~mask.to(dtype=torch.bool)

        def zero_masked(t: Tensor) -> Tensor:
            return t * keep.view(-1, *([1] * (t.dim() - 1))).to(t.dtype)

        return self._map(zero_masked)

    #: What each field's dimensions are, for error messages (one entry per field).
    SHAPES: ClassVar[dict[str, str]] = {}

    @property
    def batch_size(self) -> int:
        return self.tensors()[0].shape[0]

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Each field's shape without the batch dimension."""
        return {f.name: tuple(getattr(self, f.name).shape[1:]) for f in dataclasses.fields(self)}


@dataclass
class mLSTMBlockState(TensorState):
    """State of one mLSTM block."""

    conv: Tensor  # (B, K-1, inner) the last K-1 inputs of the causal convolution
    C: Tensor  # (B, H, DK, DV) matrix memory
    n: Tensor  # (B, H, DK) normaliser
    m: Tensor  # (B, H) stabiliser (log scale of C and n)

    SHAPES: ClassVar[dict[str, str]] = {
        "conv": "(B, conv_kernel_size - 1, mLSTM width)",
        "C": "(B, heads, head dim, head dim)",
        "n": "(B, heads, head dim)",
        "m": "(B, heads)",
    }


@dataclass
class sLSTMBlockState(TensorState):
    """State of one sLSTM block."""

    conv: Tensor  # (B, K-1, E) the last K-1 inputs of the causal convolution
    c: Tensor  # (B, H, D) cell
    n: Tensor  # (B, H, D) normaliser
    m: Tensor  # (B, H, D) stabiliser
    h: Tensor  # (B, H, D) hidden state fed back through the recurrent weights

    SHAPES: ClassVar[dict[str, str]] = {
        "conv": "(B, conv_kernel_size - 1, embedding_dim)",
        **{name: "(B, heads, head dim)" for name in ("c", "n", "m", "h")},
    }


BlockState = mLSTMBlockState | sLSTMBlockState


@dataclass
class xLSTMState:
    """State of a whole stack: one entry per block, in block order."""

    blocks: list[BlockState]

    def _map(self, fn: Callable[[BlockState], BlockState]) -> xLSTMState:
        return xLSTMState([fn(block) for block in self.blocks])

    def detach(self) -> xLSTMState:
        """Cuts the autograd history (truncated backpropagation through time)."""
        return self._map(lambda b: b.detach())

    def to(self, *args: Any, **kwargs: Any) -> xLSTMState:
        return self._map(lambda b: b.to(*args, **kwargs))

    def select(self, idx: BatchIndex) -> xLSTMState:
        """The state of some batch rows (int, slice, list or index tensor); the batch dimension is kept."""
        return self._map(lambda b: b.select(idx))

    def reset(self, mask: Tensor) -> xLSTMState:
        """A new state whose rows with ``mask`` (B,) True are the zero state (e.g. where an episode ended)."""
        mask = torch.as_tensor(mask)
        if mask.dim() != 1 or mask.shape[0] != self.batch_size:
            raise ValueError(f"reset mask must have shape (B,) = ({self.batch_size},), got {tuple(mask.shape)}")
        return self._map(lambda b: b.reset(mask.to(b.tensors()[0].device)))

    @staticmethod
    def cat(states: Sequence[xLSTMState]) -> xLSTMState:
        """Concatenates states along the batch dimension."""
        if not states:
            raise ValueError("cat needs at least one state")
        merged = []
        for per_block in zip(*(s.blocks for s in states), strict=True):
            cls = type(per_block[0])
            merged.append(
                cls(**{f.name: torch.cat([getattr(b, f.name) for b in per_block]) for f in dataclasses.fields(cls)})
            )
        return xLSTMState(merged)

    @property
    def batch_size(self) -> int:
        return self.blocks[0].batch_size

    @property
    def device(self) -> torch.device:
        return self.blocks[0].tensors()[0].device

    def __len__(self) -> int:
        return len(self.blocks)
