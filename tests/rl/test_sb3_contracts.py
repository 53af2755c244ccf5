"""SB3 contracts of XLSTMPPO: spaces, VecEnvs, callbacks, evaluate_policy, progress bar, save/load, predict."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from gymnasium import spaces
from rl_helpers import ACTIONS, BOX_OBS, DICT_OBS, IMAGE_OBS, SpacesEnv
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv

from xlstm_seq.config import xLSTMConfig
from xlstm_seq.rl import XLSTMPPO, MlpXLSTMPolicy
from xlstm_seq.state import xLSTMState

TINY = dict(embedding_dim=8, num_blocks=1, num_heads=2, backend="torch")


def _vec(obs_space, action_space, n_envs=2):
    return DummyVecEnv([lambda: SpacesEnv(obs_space, action_space) for _ in range(n_envs)])


def _model(env, policy="MlpXLSTMPolicy", **policy_kwargs):
    policy_kwargs.setdefault("xlstm", xLSTMConfig(**TINY))
    return XLSTMPPO(
        policy, env, n_steps=16, batch_size=16, sequence_length=8, n_epochs=2, seed=0, device="cpu",
        policy_kwargs=policy_kwargs,
    )  # fmt: skip


CASES = [
    ("box-discrete", "MlpXLSTMPolicy", BOX_OBS, "discrete", {}),
    ("box-multidiscrete", "MlpXLSTMPolicy", BOX_OBS, "multidiscrete", {}),
    ("box-box", "MlpXLSTMPolicy", BOX_OBS, "box", {}),
    ("box-multibinary", "MlpXLSTMPolicy", BOX_OBS, "multibinary", {}),
    ("dict-discrete", "MultiInputXLSTMPolicy", DICT_OBS, "discrete", {}),
    ("dict-box", "MultiInputXLSTMPolicy", DICT_OBS, "box", {"critic_memory": "shared"}),
    ("image-discrete", "CnnXLSTMPolicy", IMAGE_OBS, "discrete", {}),
    ("box-discrete-slstm", "MlpXLSTMPolicy", BOX_OBS, "discrete", {"xlstm": {**TINY, "slstm_at": [0]}}),
    (
        "box-box-mixed-mlp",
        "MlpXLSTMPolicy",
        BOX_OBS,
        "box",
        {"xlstm": {**TINY, "num_blocks": 2, "block_ratio": "1:1"}, "net_arch": [16]},
    ),
]


@pytest.mark.parametrize(("policy", "obs_space", "action", "kwargs"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_learn_64_smoke_matrix(policy, obs_space, action, kwargs):
    env = _vec(obs_space, ACTIONS[action])
    model = _model(env, policy, **kwargs).learn(64)
    assert model.num_timesteps == 64
    obs = env.reset()
    actions, state = model.predict(obs, deterministic=True)
    assert isinstance(state, xLSTMState) and state.batch_size == 2
    assert actions.shape == (2, *ACTIONS[action].shape)
    assert all(ACTIONS[action].contains(a.astype(ACTIONS[action].dtype)) for a in actions)
    for p in model.policy.parameters():
        assert torch.isfinite(p).all()


def test_training_changes_the_memory_weights_and_callbacks_run():
    class Counter(BaseCallback):
        def __init__(self):
            super().__init__()
            self.steps = self.rollouts = 0

        def _on_step(self) -> bool:
            self.steps += 1
            return True

        def _on_rollout_end(self) -> None:
            self.rollouts += 1

    model = _model(_vec(BOX_OBS, ACTIONS["discrete"], n_envs=4))
    before = {k: v.clone() for k, v in model.policy.actor_memory.state_dict().items()}
    counter = Counter()
    model.learn(128, callback=counter, progress_bar=True)
    assert (counter.steps, counter.rollouts) == (32, 2)
    changed = [k for k, v in model.policy.actor_memory.state_dict().items() if not torch.equal(v, before[k])]
    assert any("stack" in k for k in changed), "the xLSTM stack received no gradient"


def test_callback_can_stop_training():
    class StopAfter(BaseCallback):
        def _on_step(self) -> bool:
            return self.n_calls < 5

    model = _model(_vec(BOX_OBS, ACTIONS["discrete"]))
    model.learn(1000, callback=StopAfter())
    assert model.num_timesteps == 10


def test_evaluate_policy_runs_with_the_recurrent_state():
    env = _vec(BOX_OBS, ACTIONS["discrete"], n_envs=3)
    model = _model(env).learn(64)
    rewards, lengths = evaluate_policy(model, env, n_eval_episodes=6, return_episode_rewards=True)
    assert len(rewards) == 6 and all(2 <= n <= 7 for n in lengths)


def _rollout_actions(model, env, steps=20):
    obs, state, starts = env.reset(), None, np.ones(env.num_envs, dtype=bool)
    out = []
    for _ in range(steps):
        action, state = model.predict(obs, state, starts, deterministic=True)
        out.append(action)
        obs, _, starts, _ = env.step(action)
    return np.stack(out)


def test_save_load_round_trip_gives_identical_deterministic_actions(tmp_path):
    config = xLSTMConfig(embedding_dim=8, num_blocks=2, num_heads=2, slstm_at=[1], backend="torch")
    env = _vec(BOX_OBS, ACTIONS["box"])
    model = _model(env, xlstm=config, critic_memory="shared", net_arch=[8]).learn(64)
    model.save(tmp_path / "model.zip")
    env.seed(5)
    expected = _rollout_actions(model, env)

    loaded = XLSTMPPO.load(tmp_path / "model.zip", device="cpu")  # standalone: no env
    assert loaded.policy.xlstm_config == config and loaded.policy.critic_memory == "shared"
    assert loaded.sequence_length == 8 and loaded.batch_size == 16
    env.seed(5)
    np.testing.assert_array_equal(_rollout_actions(loaded, env), expected)

    # The policy alone also saves and loads with its constructor arguments (sb3-contrib's does not).
    model.policy.save(tmp_path / "policy.pt")
    policy = MlpXLSTMPolicy.load(tmp_path / "policy.pt", device="cpu")
    env.seed(5)
    np.testing.assert_array_equal(_rollout_actions(policy, env), expected)

    # Training goes on after a load with an env.
    loaded.set_env(env)
    loaded.learn(32, reset_num_timesteps=False)
    assert loaded.num_timesteps == 96


def test_predict_episode_start_resets_to_a_fresh_state():
    env = _vec(BOX_OBS, ACTIONS["discrete"])
    model = _model(env)
    obs = env.reset()
    _, state = model.predict(obs)
    for _ in range(3):
        _, state = model.predict(obs, state)
    _, fresh = model.predict(obs, None)
    _, carried = model.predict(obs, state, episode_start=np.array([False, False]))
    _, reset = model.predict(obs, state, episode_start=np.array([True, False]))
    for kept, ref, other in zip(reset.blocks, fresh.blocks, carried.blocks, strict=True):
        for t_reset, t_fresh, t_carried in zip(kept.tensors(), ref.tensors(), other.tensors(), strict=True):
            torch.testing.assert_close(t_reset[0], t_fresh[0])  # env 0: as if the episode had just begun
            torch.testing.assert_close(t_reset[1], t_carried[1])  # env 1: memory carried on
    assert not torch.allclose(carried.blocks[0].C[0], fresh.blocks[0].C[0]), "the carried state must differ"


def test_predict_single_observation_and_state_pickles():
    model = _model(_vec(BOX_OBS, ACTIONS["discrete"]))
    action, state = model.predict(BOX_OBS.sample())
    assert np.shape(action) == () and state.batch_size == 1
    state = pickle.loads(pickle.dumps(state))
    action, state = model.predict(BOX_OBS.sample(), state, np.array([False]))
    assert ACTIONS["discrete"].contains(int(action))


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda env: XLSTMPPO("MlpXLSTMPolicy", _vec(spaces.Tuple([BOX_OBS, BOX_OBS]), ACTIONS["discrete"])),
         TypeError, "observation spaces"),
        (lambda env: XLSTMPPO("MlpXLSTMPolicy", _vec(BOX_OBS, spaces.Tuple([ACTIONS["discrete"]] * 2))),
         TypeError, "action spaces"),
        (lambda env: XLSTMPPO("MlpXLSTMPolicy", env, n_steps=16, batch_size=12, sequence_length=8),
         ValueError, r"batch_size \(12\) must be a multiple of sequence_length \(8\)"),
        (lambda env: XLSTMPPO("MlpXLSTMPolicy", env, n_steps=16, sequence_length=5),
         ValueError, "divisor of n_steps"),
        (lambda env: XLSTMPPO("MlpXLSTMPolicy", env, n_steps=0), ValueError, "n_steps must be a positive integer"),
        (lambda env: XLSTMPPO("MlpXLSTMPolicy", env, policy_kwargs=dict(critic_memory="both")),
         ValueError, "critic_memory must be one of"),
        (lambda env: XLSTMPPO("MlpXLSTMPolicy", env, policy_kwargs=dict(xlstm=42)), TypeError, "xLSTMConfig"),
        (lambda env: XLSTMPPO("MlpXLSTMPolicy", env, policy_kwargs=dict(xlstm={"num_layers": 2})),
         ValueError, "num_layers"),
        (lambda env: XLSTMPPO("MlpXLSTMPolicy", env, policy_kwargs=dict(use_sde=True)), ValueError, "gSDE"),
        (lambda env: XLSTMPPO("MlpXLSTMPolicy", env, gamma=1.5), ValueError, "gamma must be in"),
    ],
    ids=["tuple-obs", "tuple-action", "batch-not-multiple", "seq-not-divisor", "n_steps-0", "critic-memory",
         "xlstm-type", "xlstm-unknown-key", "sde", "gamma"],
)  # fmt: skip
def test_bad_arguments_raise_clear_errors(make, error, match):
    with pytest.raises(error, match=match):
        make(_vec(BOX_OBS, ACTIONS["discrete"]))


def test_predict_rejects_a_state_of_the_wrong_size():
    model = _model(_vec(BOX_OBS, ACTIONS["discrete"]))
    _, state = model.predict(np.zeros((3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="state holds 3 environments but the observation has 2"):
        model.predict(np.zeros((2, 3), dtype=np.float32), state)
    with pytest.raises(TypeError, match="state must be None or the xLSTMState"):
        model.predict(np.zeros((2, 3), dtype=np.float32), (np.zeros(2), np.zeros(2)))
