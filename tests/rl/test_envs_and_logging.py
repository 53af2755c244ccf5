"""POMDP ids, POPGym through make_env, and SB3's logger bridged to the MLflow tracker."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from rl_helpers import ACTIONS, BOX_OBS, SpacesEnv
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack

from xlstm_seq.config import xLSTMConfig
from xlstm_seq.rl import XLSTMPPO, tracked_logger
from xlstm_seq.rl.envs import MaskObservation, make_env, popgym_available
from xlstm_seq.tracking import NullTracker, create_tracker


@pytest.mark.parametrize(
    ("env_id", "base_id", "keep"),
    [
        ("CartPoleNoVel-v1", "CartPole-v1", [0, 2]),
        ("PendulumNoVel-v1", "Pendulum-v1", [0, 1]),
        ("LunarLanderNoVel-v3", "LunarLander-v3", [0, 1, 4, 6, 7]),
    ],
)
def test_velocity_free_envs_show_only_positions(env_id, base_id, keep):
    if env_id.startswith("LunarLander"):
        pytest.importorskip("Box2D", reason="LunarLander needs Box2D (the rl extra installs it)")
    env, base = gym.make(env_id), gym.make(base_id)
    obs, _ = env.reset(seed=3)
    full, _ = base.reset(seed=3)
    np.testing.assert_array_equal(obs, full[keep])
    assert env.observation_space.shape == (len(keep),)
    for _ in range(5):
        action = env.action_space.sample()
        obs, *_ = env.step(action)
        full, *_ = base.step(action)
        np.testing.assert_array_equal(obs, full[keep])


def test_lunar_lander_novel_is_registered_and_needs_box2d():
    assert "LunarLanderNoVel-v3" in gym.registry
    try:
        import Box2D  # noqa: F401
    except ImportError:
        with pytest.raises(gym.error.DependencyNotInstalled, match="Box2D"):
            gym.make("LunarLanderNoVel-v3")
    else:
        assert gym.make("LunarLanderNoVel-v3").observation_space.shape == (5,)


def test_mask_observation_rejects_bad_indices():
    with pytest.raises(ValueError, match=r"indices in \[0, 3\]"):
        MaskObservation(gym.make("CartPole-v1"), [4])
    with pytest.raises(TypeError, match="1-D Box"):
        MaskObservation(gym.make("FrozenLake-v1"), [0])


@pytest.mark.skipif(not popgym_available(), reason="popgym is not installed (pip install popgym==1.0.7)")
def test_popgym_envs_are_usable_through_make_env():
    env = make_env("popgym-AutoencodeEasy-v0")
    assert isinstance(env.observation_space, gym.spaces.Box)  # the Tuple observation is flattened (one-hot)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    model = XLSTMPPO(
        "MlpXLSTMPolicy", DummyVecEnv([lambda: make_env("popgym-RepeatPreviousEasy-v0")] * 2), n_steps=16,
        batch_size=16, n_epochs=1, device="cpu", policy_kwargs=dict(xlstm=xLSTMConfig(8, 1, 2, backend="torch")),
    )  # fmt: skip
    model.learn(32)
    # A Discrete observation is one-hot too, so the frame-stacking PPO baseline can stack it.
    repeat_previous = make_env("popgym-RepeatPreviousEasy-v0")
    assert isinstance(repeat_previous.observation_space, gym.spaces.Box)
    stacked = VecFrameStack(DummyVecEnv([lambda: make_env("popgym-RepeatPreviousEasy-v0")]), 4)
    assert stacked.reset().shape == (1, 4 * repeat_previous.observation_space.shape[0])


def test_sb3_logger_reaches_the_mlflow_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'bridge.db'}"
    env = DummyVecEnv([lambda: Monitor(SpacesEnv(BOX_OBS, ACTIONS["discrete"]))] * 2)
    model = XLSTMPPO(
        "MlpXLSTMPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu",
        policy_kwargs=dict(xlstm=xLSTMConfig(8, 1, 2, backend="torch")),
    )  # fmt: skip
    with create_tracker("rl-logger-test", tracking_uri=uri) as tracker:
        model.set_logger(tracked_logger(tracker, formats=("csv",), folder=str(tmp_path / "sb3")))
        model.learn(96)
        run_id = tracker.run_id
    client = MlflowClient(uri)
    history = client.get_metric_history(run_id, "train/value_loss")
    assert [m.step for m in history] == [64, 96]  # logged after each update but the first (SB3's order)
    assert all(np.isfinite(m.value) for m in history)
    assert client.get_metric_history(run_id, "rollout/ep_rew_mean")
    assert (tmp_path / "sb3" / "progress.csv").exists()  # SB3's own outputs keep working beside it


def test_tracked_logger_rejects_a_non_tracker():
    with pytest.raises(TypeError, match="Tracker"):
        tracked_logger(object())
    tracked_logger(NullTracker()).record("x", 1.0)
