"""Partially observable environments: classic control with the velocities removed, and POPGym.

Importing this module registers, as gymnasium ids:

* ``CartPoleNoVel-v1``: CartPole-v1 observing cart position and pole angle only (no velocities);
* ``PendulumNoVel-v1``: Pendulum-v1 observing cos and sin of the angle only (no angular velocity);
* ``LunarLanderNoVel-v3``: LunarLander-v3 without the linear and angular velocities (needs Box2D and
  pygame, both in the ``rl`` extra; ``gym.make`` says so when they are missing).

POPGym (``pip install "xlstm-seq[rl]"`` plus ``popgym``) registers its own ids (``popgym-RepeatPreviousEasy-v0``
...); ``make_env`` imports it on demand and flattens its Tuple observations into one-hot vectors so that SB3
policies can read them. The task often named "StatelessCartPoleEasy" is ``PositionOnlyCartPoleEasy`` in popgym 1.0.7
(id ``popgym-PositionOnlyCartPoleEasy-v0``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

POMDP_IDS = ("CartPoleNoVel-v1", "PendulumNoVel-v1", "LunarLanderNoVel-v3")


class MaskObservation(gym.ObservationWrapper):
    """Keeps the entries ``keep`` of a 1-D Box observation (the rest is hidden from the agent)."""

    def __init__(self, env: gym.Env, keep: Sequence[int]):
        super().__init__(env)
        box = env.observation_space
        if not isinstance(box, spaces.Box) or len(box.shape) != 1:
            raise TypeError(f"MaskObservation needs a 1-D Box observation space, got {box}")
        keep = list(keep)
        if not keep or any(not 0 <= i < box.shape[0] for i in keep):
            raise ValueError(f"keep must be non-empty indices in [0, {box.shape[0] - 1}], got {keep}")
        self.keep = np.asarray(keep, dtype=np.int64)
        self.observation_space = spaces.Box(box.low[self.keep], box.high[self.keep], dtype=box.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[self.keep]


def make_masked(base_id: str, keep: Sequence[int], **kwargs: Any) -> gym.Env:
    """``base_id`` with only the observation entries ``keep`` visible (the registered entry point)."""
    return MaskObservation(gym.make(base_id, **kwargs), keep)


# Index sets of what stays observable (the velocities are dropped).
_POMDPS = {
    "CartPoleNoVel-v1": ("CartPole-v1", (0, 2), 500, 475.0),  # x, x_dot, theta, theta_dot
    "PendulumNoVel-v1": ("Pendulum-v1", (0, 1), 200, None),  # cos, sin, theta_dot
    "LunarLanderNoVel-v3": ("LunarLander-v3", (0, 1, 4, 6, 7), 1000, 200.0),  # x, y, vx, vy, angle, omega, legs
}


def register_pomdp_envs() -> None:
    """Registers the velocity-free ids (idempotent)."""
    for env_id, (base_id, keep, max_steps, threshold) in _POMDPS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="xlstm_seq.rl.envs:make_masked",
                kwargs={"base_id": base_id, "keep": list(keep)},
                max_episode_steps=max_steps,
                reward_threshold=threshold,
            )


def popgym_available() -> bool:
    try:
        import popgym  # noqa: F401
    except ImportError:
        return False
    return True


def _one_hot_flatten(env: gym.Env) -> gym.Env:
    # Tuple, Discrete and MultiDiscrete observations become one flat Box (one-hot for the discrete parts):
    # the same input SB3's policies build internally, and one VecFrameStack (the PPO baseline) accepts.
    if isinstance(env.observation_space, (spaces.Tuple, spaces.Discrete, spaces.MultiDiscrete)):
        return gym.wrappers.FlattenObservation(env)
    return env


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` that knows the ids above and POPGym's (``popgym-...``), with Tuple observations flattened."""
    register_pomdp_envs()
    if env_id.startswith("popgym-"):
        if not popgym_available():
            raise ImportError(f"{env_id} needs POPGym: pip install popgym==1.0.7 (see the rl extra)")
        import popgym  # noqa: F401  (registers the popgym-* ids)
    return _one_hot_flatten(gym.make(env_id, **kwargs))


register_pomdp_envs()
