"""Batches of (input, target) token windows from token shards, with a resumable position.

Each optimiser micro-step reads one global window of ``world_size * batch_size * seq_len + 1`` contiguous
tokens; rank r takes rows ``r * batch_size ... (r + 1) * batch_size`` of it. So 2 ranks with batch B see
exactly the rows one process with batch 2B sees. The windows tile every shard; they are visited in order
or, with ``shuffle``, in a seeded permutation per epoch (the same on every rank). The position is a
cursor and an epoch, saved as plain JSON: checkpoints never pickle a loader.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor


class TokenBatches:
    """(B, T) input/target windows over a list of 1-D token arrays (memmaps or in-memory)."""

    def __init__(
        self,
        shards: Sequence[np.ndarray],
        batch_size: int,
        seq_len: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = False,
        seed: int = 0,
    ):
        if batch_size < 1 or seq_len < 1:
            raise ValueError(f"batch_size and seq_len must be >= 1, got {batch_size} and {seq_len}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size = {world_size}), got {rank}")
        self.batch_size, self.seq_len, self.rank, self.world_size = batch_size, seq_len, rank, world_size
        self.shuffle, self.seed = shuffle, seed
        self.window = world_size * batch_size * seq_len + 1
        step = self.window - 1
        self.shards = [s for s in shards if len(s) >= self.window]
        if not self.shards:
            longest = max((len(s) for s in shards), default=0)
            raise ValueError(
                f"no shard holds one global window of world_size * batch_size * seq_len + 1 = {self.window} tokens "
                f"(longest shard: {longest}); use smaller batches or more data"
            )
        counts = np.array([(len(s) - 1) // step for s in self.shards], dtype=np.int64)  # windows per shard
        self._first = np.concatenate([[0], np.cumsum(counts)])  # (num_shards + 1,) global index of each shard
        self.num_windows = int(self._first[-1])
        self.cursor, self.epoch = 0, 0
        self._order = self._make_order(0)

    def _make_order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_windows)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_windows)

    def next_batch(self) -> tuple[Tensor, Tensor]:
        """This rank's inputs x (B, T) and targets y (B, T) int64, then advances the position."""
        g = int(self._order[self.cursor])
        shard = int(np.searchsorted(self._first, g, side="right")) - 1
        offset = (g - int(self._first[shard])) * (self.window - 1)
        window = np.asarray(self.shards[shard][offset : offset + self.window], dtype=np.int64)  # (W * B * T + 1,)
        rows = self.batch_size * self.seq_len
        start = self.rank * rows
        x = torch.from_numpy(window[start : start + rows].copy()).view(self.batch_size, self.seq_len)
        y = torch.from_numpy(window[start + 1 : start + rows + 1].copy()).view(self.batch_size, self.seq_len)
        self.cursor += 1
        if self.cursor == self.num_windows:
            self.cursor, self.epoch = 0, self.epoch + 1
            self._order = self._make_order(self.epoch)
        return x, y

    def state_dict(self) -> dict[str, Any]:
        """The position as plain JSON-able numbers (plus the settings it belongs to)."""
        return {
            "cursor": self.cursor,
            "epoch": self.epoch,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "world_size": self.world_size,
            "shuffle": self.shuffle,
            "seed": self.seed,
            "num_windows": self.num_windows,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores a position saved by ``state_dict`` by a loader with the same settings and data."""
        keys = ("batch_size", "seq_len", "world_size", "shuffle", "seed", "num_windows")
        saved = {k: state.get(k) for k in keys}
        mine = {k: getattr(self, k) for k in keys}
        if saved != mine:
            raise ValueError(f"loader position was saved for {saved} but this loader has {mine}")
        self.cursor, self.epoch = int(state["cursor"]), int(state["epoch"])
        self._order = self._make_order(self.epoch)


def fixed_batches(
    shards: Sequence[np.ndarray], batch_size: int, seq_len: int, num_batches: int, seed: int = 1234
) -> list[tuple[Tensor, Tensor]]:
    """Up to ``num_batches`` (x, y) pairs of (B, T) drawn by a fixed seed across the whole split: the same set
    in every run, spread over all documents rather than the first few."""
    loader = TokenBatches(shards, batch_size, seq_len, shuffle=True, seed=seed)
    return [loader.next_batch() for _ in range(min(num_batches, loader.num_windows))]
