"""Rollout buffers that keep the recurrent state only where a training sequence starts.

The rollout of ``n_steps`` per environment is cut into sequences of ``sequence_length`` steps; the policy state
is stored once per sequence (at its first step, before any reset), not once per step. A training batch is a
set of whole sequences: the observations etc. as (S, L, ...) plus the S start states and the (S, L) resets
(the episode starts), which the policy runs in one parallel pass.

Sequence ``s = c * n_envs + e`` is steps ``[c * L, (c + 1) * L)`` of environment ``e``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from torch import Tensor

from xlstm_seq.rl.policies import XLSTMPolicyState


class SequenceBatch(NamedTuple):
    """A minibatch of S whole sequences of length L; step tensors are flattened sequence-major to S * L rows."""

    observations: Tensor | dict[str, Tensor]  # (S * L, *obs_shape)
    actions: Tensor  # (S * L, action_dim)
    old_values: Tensor  # (S * L,)
    old_log_prob: Tensor  # (S * L,)
    advantages: Tensor  # (S * L,)
    returns: Tensor  # (S * L,)
    resets: Tensor  # (S, L) bool, True where an episode starts
    start_states: XLSTMPolicyState  # batch S


class _SequenceStorage:
    """Adds start-state storage and sequence batches to SB3's (Dict)RolloutBuffer."""

    buffer_size: int
    n_envs: int
    device: torch.device

    def _init_sequences(self, sequence_length: int) -> None:
        if sequence_length < 1 or self.buffer_size % sequence_length != 0:
            raise ValueError(
                f"sequence_length must be >= 1 and divide n_steps = {self.buffer_size}, got {sequence_length}"
            )
        self.sequence_length = sequence_length
        self.num_chunks = self.buffer_size // sequence_length
        self.start_states: list[XLSTMPolicyState | None] = [None] * self.num_chunks

    @property
    def num_sequences(self) -> int:
        return self.num_chunks * self.n_envs

    def add_start_state(self, state: XLSTMPolicyState) -> None:
        """Stores the state of all envs at the current position, which must be a sequence start."""
        pos = self.pos  # type: ignore[attr-defined]
        if pos % self.sequence_length != 0:
            raise ValueError(f"step {pos} is not a sequence start (sequence_length {self.sequence_length})")
        if state.batch_size != self.n_envs:
            raise ValueError(f"state holds {state.batch_size} environments, the buffer {self.n_envs}")
        self.start_states[pos // self.sequence_length] = state.detach()

    def _to_sequences(self, array: np.ndarray) -> np.ndarray:
        """(n_steps, n_envs, ...) -> (num_chunks * n_envs, L, ...) in sequence order c * n_envs + e."""
        rest = array.shape[2:]
        chunks = array.reshape(self.num_chunks, self.sequence_length, self.n_envs, *rest)
        return np.swapaxes(chunks, 1, 2).reshape(self.num_sequences, self.sequence_length, *rest)

    def sequence_batches(self, sequences_per_batch: int, shuffle: bool = True) -> Generator[SequenceBatch, None, None]:
        """Yields minibatches of whole sequences covering the rollout once (the last one may be smaller)."""
        if not self.full:  # type: ignore[attr-defined]
            raise RuntimeError("the rollout buffer is not full; collect a rollout first")
        if any(state is None for state in self.start_states):
            raise RuntimeError("a sequence start state is missing; call add_start_state at every sequence start")
        all_states = XLSTMPolicyState.cat(self.start_states)  # batch num_sequences, order c * n_envs + e
        obs = self.observations  # type: ignore[attr-defined]
        if isinstance(obs, dict):
            seq_obs: Any = {key: self._to_sequences(value) for key, value in obs.items()}
        else:
            seq_obs = self._to_sequences(obs)
        fields = {
            name: self._to_sequences(getattr(self, name))
            for name in ("actions", "values", "log_probs", "advantages", "returns", "episode_starts")
        }
        order = np.random.permutation(self.num_sequences) if shuffle else np.arange(self.num_sequences)
        for begin in range(0, self.num_sequences, sequences_per_batch):
            idx = order[begin : begin + sequences_per_batch]
            yield self._batch(idx, seq_obs, fields, all_states)

    def _batch(
        self, idx: np.ndarray, seq_obs: Any, fields: dict[str, np.ndarray], all_states: XLSTMPolicyState
    ) -> SequenceBatch:
        def flat(array: np.ndarray) -> Tensor:
            picked = array[idx]  # (S, L, ...)
            return torch.as_tensor(
                picked.reshape(len(idx) * self.sequence_length, *picked.shape[2:]), device=self.device
            )

        observations = {k: flat(v) for k, v in seq_obs.items()} if isinstance(seq_obs, dict) else flat(seq_obs)
        resets = torch.as_tensor(fields["episode_starts"][idx] > 0.5, device=self.device)  # (S, L)
        index = torch.as_tensor(idx, device=all_states.actor.device)
        return SequenceBatch(
            observations=observations,
            actions=flat(fields["actions"].astype(np.float32, copy=False)),
            old_values=flat(fields["values"]),
            old_log_prob=flat(fields["log_probs"]),
            advantages=flat(fields["advantages"]),
            returns=flat(fields["returns"]),
            resets=resets,
            start_states=all_states.select(index).to(self.device),
        )


class XLSTMRolloutBuffer(_SequenceStorage, RolloutBuffer):
    """RolloutBuffer for Box/Discrete/MultiDiscrete/MultiBinary observations, with per-sequence start states."""

    def __init__(self, *args: Any, sequence_length: int, **kwargs: Any):
        RolloutBuffer.__init__(self, *args, **kwargs)
        self._init_sequences(sequence_length)

    def reset(self) -> None:
        super().reset()
        if hasattr(self, "num_chunks"):
            self.start_states = [None] * self.num_chunks


class XLSTMDictRolloutBuffer(_SequenceStorage, DictRolloutBuffer):
    """DictRolloutBuffer with per-sequence start states."""

    def __init__(self, *args: Any, sequence_length: int, **kwargs: Any):
        DictRolloutBuffer.__init__(self, *args, **kwargs)
        self._init_sequences(sequence_length)

    def reset(self) -> None:
        super().reset()
        if hasattr(self, "num_chunks"):
            self.start_states = [None] * self.num_chunks


def make_rollout_buffer(observation_space: spaces.Space, **kwargs: Any) -> XLSTMRolloutBuffer | XLSTMDictRolloutBuffer:
    cls = XLSTMDictRolloutBuffer if isinstance(observation_space, spaces.Dict) else XLSTMRolloutBuffer
    return cls(observation_space=observation_space, **kwargs)
