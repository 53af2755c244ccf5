"""XLSTMPPO's training pass over whole sequences equals the rollout recorded step by step."""

from __future__ import annotations

import pytest
import torch
from rl_helpers import ACTIONS, BOX_OBS, SpacesEnv
from stable_baselines3.common.vec_env import DummyVecEnv

from xlstm_seq.config import xLSTMConfig
from xlstm_seq.rl import XLSTMPPO

MIXED = xLSTMConfig(embedding_dim=16, num_blocks=2, num_heads=2, slstm_at=[1], backend="torch")
MLSTM = xLSTMConfig(embedding_dim=16, num_blocks=1, num_heads=2, backend="torch")


def _collect(config: xLSTMConfig, critic_memory: str, action: str, seed: int = 0) -> XLSTMPPO:
    env = DummyVecEnv([lambda: SpacesEnv(BOX_OBS, ACTIONS[action]) for _ in range(3)])
    model = XLSTMPPO(
        "MlpXLSTMPolicy", env, n_steps=12, batch_size=8, sequence_length=4, seed=seed, device="cpu",
        policy_kwargs=dict(xlstm=config, critic_memory=critic_memory),
    )  # fmt: skip
    _, callback = model._setup_learn(total_timesteps=36, callback=None)
    # Two rollouts, so the second starts from a non-zero carried state.
    for _ in range(2):
        assert model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
    return model


def _assert_states_close(a, b, atol):
    for block_a, block_b in zip(a.blocks, b.blocks, strict=True):
        for ta, tb in zip(block_a.tensors(), block_b.tensors(), strict=True):
            torch.testing.assert_close(ta, tb, atol=atol, rtol=1e-5)


@pytest.mark.parametrize(
    ("config", "critic_memory", "action"),
    [(MIXED, "separate", "discrete"), (MLSTM, "shared", "box"), (MIXED, "shared", "multidiscrete")],
    ids=["mixed-separate-discrete", "mlstm-shared-box", "mixed-shared-multidiscrete"],
)
def test_one_parallel_pass_equals_the_step_by_step_rollout(config, critic_memory, action):
    model = _collect(config, critic_memory, action)
    buffer = model.rollout_buffer
    assert buffer.episode_starts[1:].any(), "the test needs episode starts inside the sequences"
    # Only one state per sequence is stored: n_steps / L per environment.
    assert len(buffer.start_states) == buffer.num_chunks == 3

    batch = next(buffer.sequence_batches(buffer.num_sequences, shuffle=False))
    assert batch.resets.shape == (9, 4)
    assert batch.resets[:, 1:].any(), "resets must fall inside a sequence, not only at its first step"
    actions = batch.actions.long().flatten() if action == "discrete" else batch.actions
    with torch.no_grad():
        values, log_prob, _, final = model.policy.evaluate_sequences(
            batch.observations, actions, batch.start_states, batch.resets
        )
    # Outputs: values and log-probs of the parallel pass equal those recorded during the rollout.
    torch.testing.assert_close(values.flatten(), batch.old_values, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(log_prob, batch.old_log_prob, atol=1e-5, rtol=1e-5)
    # States: each sequence ends in the state the next one started from, and the last ones in the
    # state the rollout carried on with.
    n_envs = model.n_envs
    for chunk in range(buffer.num_chunks - 1):
        rows = list(range(chunk * n_envs, (chunk + 1) * n_envs))
        _assert_states_close(final.actor.select(rows), buffer.start_states[chunk + 1].actor, 1e-5)
        if critic_memory == "separate":
            _assert_states_close(final.critic.select(rows), buffer.start_states[chunk + 1].critic, 1e-5)
    last = list(range((buffer.num_chunks - 1) * n_envs, buffer.num_chunks * n_envs))
    _assert_states_close(final.actor.select(last), model._last_policy_state.actor, 1e-5)


def test_a_wrong_start_state_is_detected():
    """The equality above is not vacuous: starting the sequences from zero states changes the outputs."""
    model = _collect(MLSTM, "separate", "discrete")
    buffer = model.rollout_buffer
    batch = next(buffer.sequence_batches(buffer.num_sequences, shuffle=False))
    zero = model.policy.initial_state(buffer.num_sequences)
    with torch.no_grad():
        values, _, _, _ = model.policy.evaluate_sequences(
            batch.observations, batch.actions.long().flatten(), zero, batch.resets
        )
    assert (values.flatten() - batch.old_values).abs().max() > 1e-4
