"""Small environments for the RL tests: any observation/action space, short episodes of varied length.

Imported as ``from rl_helpers import ...`` (pytest puts this folder on the path).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class SpacesEnv(gym.Env):
    """Random observations from ``observation_space``; reward 1 when the action's first entry is 0-ish.

    Episodes last 2..7 steps, so episode starts fall inside the training sequences.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space):
        self.observation_space = observation_space
        self.action_space = action_space
        self._t = 0
        self._length = 5

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(int(self.np_random.integers(2**31)))
        self._t = 0
        self._length = int(self.np_random.integers(2, 8))
        return self.observation_space.sample(), {}

    def step(self, action):
        self._t += 1
        reward = float(np.asarray(action, dtype=np.float64).reshape(-1)[0] <= 0.5)
        truncated = self._t >= self._length
        return self.observation_space.sample(), reward, False, truncated, {}


BOX_OBS = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
DICT_OBS = spaces.Dict({"vec": spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32), "tag": spaces.Discrete(3)})
IMAGE_OBS = spaces.Box(0, 255, shape=(36, 36, 3), dtype=np.uint8)
ACTIONS = {
    "discrete": spaces.Discrete(3),
    "multidiscrete": spaces.MultiDiscrete([2, 3]),
    "box": spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32),
    "multibinary": spaces.MultiBinary(2),
}
