"""Recurrent actor-critic policies whose memory is an xLSTM stack, for stable-baselines3.

    features extractor (Flatten / NatureCNN / Combined) -> Linear -> xLSTMStack -> MlpExtractor -> action/value heads

The critic either reads the actor's memory (``critic_memory="shared"``) or has a stack of its own
(``"separate"``, the default, as sb3-contrib's RecurrentPPO). Two ways to run the memory, with equal results:

* step mode (rollouts, ``predict``): one ``xLSTMStack.step`` per environment step, rows reset where an
  episode starts;
* sequence mode (training): a batch of whole sequences in ONE ``xLSTMStack.forward`` pass from the state
  stored at each sequence start, with ``resets`` at the episode starts inside the sequences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import Tensor, nn

from xlstm_seq.config import xLSTMConfig
from xlstm_seq.stack import xLSTMStack
from xlstm_seq.state import xLSTMState

CRITIC_MEMORIES = ("shared", "separate")
SUPPORTED_ACTION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
SUPPORTED_OBS_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


def default_memory_config() -> xLSTMConfig:
    """A small one-block mLSTM memory (E = 64, 4 heads): enough for the classic POMDPs, cheap on a CPU.

    Kept as the default on the POPGym development suite (configs/rl/popgym_dev.yaml, development seeds): its suite
    aggregate was above one sLSTM block's, at about five times the sLSTM's env-steps/s on a CPU (the sLSTM's
    recurrence runs step by step in training too). The sLSTM did solve RepeatFirst, where this one does not. An
    mLSTM block followed by an sLSTM block tied with this one on the suite's aggregate (within the seeds' spread)
    at about a third of its env-steps/s; it learns RepeatFirst and is the memory to try on such recall tasks.
    """
    return xLSTMConfig(embedding_dim=64, num_blocks=1, num_heads=4, backend="auto")


def check_spaces(observation_space: spaces.Space, action_space: spaces.Space) -> None:
    """Raises TypeError naming the space when the policy cannot handle it."""
    if not isinstance(action_space, SUPPORTED_ACTION_SPACES):
        names = ", ".join(s.__name__ for s in SUPPORTED_ACTION_SPACES)
        raise TypeError(f"xLSTM policies support action spaces {names}; got {action_space}")
    if isinstance(observation_space, spaces.Dict):
        for key, sub in observation_space.spaces.items():
            if not isinstance(sub, SUPPORTED_OBS_SPACES):
                names = ", ".join(s.__name__ for s in SUPPORTED_OBS_SPACES)
                raise TypeError(f"observation space Dict entry {key!r} must be one of {names}; got {sub}")
    elif not isinstance(observation_space, SUPPORTED_OBS_SPACES):
        names = ", ".join(s.__name__ for s in (*SUPPORTED_OBS_SPACES, spaces.Dict))
        raise TypeError(
            f"xLSTM policies support observation spaces {names}; got {observation_space} "
            "(flatten Tuple spaces first, e.g. with gymnasium.wrappers.FlattenObservation)"
        )


@dataclass
class XLSTMPolicyState:
    """The policy's recurrent state: the actor's stack state and, with a separate critic memory, the critic's."""

    actor: xLSTMState
    critic: xLSTMState | None = None

    def _map(self, fn) -> XLSTMPolicyState:
        return XLSTMPolicyState(fn(self.actor), None if self.critic is None else fn(self.critic))

    def detach(self) -> XLSTMPolicyState:
        return self._map(lambda s: s.detach())

    def to(self, *args: Any, **kwargs: Any) -> XLSTMPolicyState:
        return self._map(lambda s: s.to(*args, **kwargs))

    def select(self, idx) -> XLSTMPolicyState:
        """The state of some batch rows (environments or sequences); the batch dimension is kept."""
        return self._map(lambda s: s.select(idx))

    def reset(self, mask: Tensor) -> XLSTMPolicyState:
        """Rows where ``mask`` (B,) is True become the zero state."""
        return self._map(lambda s: s.reset(mask))

    @staticmethod
    def cat(states: Sequence[XLSTMPolicyState]) -> XLSTMPolicyState:
        actor = xLSTMState.cat([s.actor for s in states])
        critic = None if states[0].critic is None else xLSTMState.cat([s.critic for s in states])
        return XLSTMPolicyState(actor, critic)

    @property
    def batch_size(self) -> int:
        return self.actor.batch_size


class XLSTMMemory(nn.Module):
    """Linear projection of the features to width E, then an xLSTM stack."""

    def __init__(self, features_dim: int, config: xLSTMConfig):
        super().__init__()
        self.proj = nn.Linear(features_dim, config.embedding_dim)
        self.stack = xLSTMStack(config)

    def init_state(self, batch_size: int, device: torch.device | str) -> xLSTMState:
        return self.stack.init_state(batch_size, device)

    def step(self, features: Tensor, state: xLSTMState, episode_starts: Tensor) -> tuple[Tensor, xLSTMState]:
        """features (B, F), episode_starts (B,) bool -> latent (B, E), next state (rows reset first)."""
        state = state.reset(episode_starts)
        return self.stack.step(self.proj(features), state)

    def sequence(self, features: Tensor, state: xLSTMState, resets: Tensor) -> tuple[Tensor, xLSTMState]:
        """features (S, L, F), resets (S, L) bool -> latents (S, L, E), state after the last step; one pass."""
        return self.stack(self.proj(features), state, resets)


class XLSTMActorCriticPolicy(ActorCriticPolicy):
    """Recurrent actor-critic policy with xLSTM memory (see the module docstring).

    Args:
        observation_space: as in SB3's ``ActorCriticPolicy``.
        action_space: as in SB3's ``ActorCriticPolicy``.
        lr_schedule: as in SB3's ``ActorCriticPolicy``.
        xlstm: the memory stack (an ``xLSTMConfig`` or its dict); default: one mLSTM block of width 64.
        critic_memory: "separate" (default; the critic has its own stack) or "shared" (the critic reads the
            actor's memory and its loss trains it too).
        net_arch: MLP layers after the memory; default none (heads directly on the memory output).
        **kwargs: the other ``ActorCriticPolicy`` arguments (activation_fn, ortho_init, features_extractor_class,
            optimizer_class, ...). gSDE is not supported.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        xlstm: xLSTMConfig | dict[str, Any] | None = None,
        critic_memory: str = "separate",
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        ortho_init: bool = True,
        use_sde: bool = False,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        **kwargs: Any,
    ):
        check_spaces(observation_space, action_space)
        if use_sde:
            raise ValueError("xLSTM policies do not support gSDE (use_sde=True); use the default Gaussian noise")
        if critic_memory not in CRITIC_MEMORIES:
            raise ValueError(f"critic_memory must be one of {CRITIC_MEMORIES}, got {critic_memory!r}")
        if xlstm is None:
            xlstm = default_memory_config()
        elif isinstance(xlstm, dict):
            xlstm = xLSTMConfig.from_dict(xlstm)
        elif not isinstance(xlstm, xLSTMConfig):
            raise TypeError(f"xlstm must be an xLSTMConfig, a dict of its fields or None, got {type(xlstm).__name__}")
        if critic_memory == "shared" and kwargs.get("share_features_extractor") is False:
            raise ValueError("critic_memory='shared' needs share_features_extractor=True (one input for one memory)")
        self.xlstm_config = xlstm
        self.critic_memory = critic_memory
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=[] if net_arch is None else net_arch,
            activation_fn=activation_fn,
            ortho_init=ortho_init,
            use_sde=False,
            features_extractor_class=features_extractor_class,
            **kwargs,
        )

    def _build_mlp_extractor(self) -> None:
        # The memories are built here so that they exist before the optimizer is created in _build, and
        # are not in the ortho-init gains table (they keep the xLSTM paper's initialisation).
        self.actor_memory = XLSTMMemory(self.features_dim, self.xlstm_config)
        self.critic_memory_net = (
            XLSTMMemory(self.features_dim, self.xlstm_config) if self.critic_memory == "separate" else None
        )
        features_dim, self.features_dim = self.features_dim, self.xlstm_config.embedding_dim
        super()._build_mlp_extractor()
        self.features_dim = features_dim

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        for key in ("use_sde", "squash_output", "full_std", "use_expln"):
            data.pop(key, None)
        data.update(
            xlstm=self.xlstm_config.to_dict(),
            critic_memory=self.critic_memory,
            share_features_extractor=self.share_features_extractor,
            normalize_images=self.normalize_images,
        )
        return data

    # ------------------------------------------------------------------ state

    def initial_state(self, n_envs: int) -> XLSTMPolicyState:
        """The zero state for ``n_envs`` environments."""
        critic = None
        if self.critic_memory_net is not None:
            critic = self.critic_memory_net.init_state(n_envs, self.device)
        return XLSTMPolicyState(self.actor_memory.init_state(n_envs, self.device), critic)

    def _features(self, obs: PyTorchObs) -> tuple[Tensor, Tensor]:
        features = self.extract_features(obs)
        return (features, features) if self.share_features_extractor else features

    # ------------------------------------------------------------------ step mode

    def _step_latents(
        self, obs: PyTorchObs, state: XLSTMPolicyState, episode_starts: Tensor
    ) -> tuple[Tensor, Tensor, XLSTMPolicyState]:
        """obs (B, ...) -> latent_pi (B, E), latent_vf (B, E), next state."""
        pi_features, vf_features = self._features(obs)
        episode_starts = episode_starts.to(dtype=torch.bool, device=pi_features.device).reshape(-1)
        latent_pi, actor_state = self.actor_memory.step(pi_features, state.actor, episode_starts)
        critic_state = None
        if self.critic_memory_net is None:
            latent_vf = latent_pi
        else:
            latent_vf, critic_state = self.critic_memory_net.step(vf_features, state.critic, episode_starts)
        return latent_pi, latent_vf, XLSTMPolicyState(actor_state, critic_state)

    def forward(  # type: ignore[override]
        self,
        obs: PyTorchObs,
        state: XLSTMPolicyState,
        episode_starts: Tensor,
        deterministic: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor, XLSTMPolicyState]:
        """One environment step for every env: actions, values (B, 1), log-probs (B,), next state."""
        latent_pi, latent_vf, state = self._step_latents(obs, state, episode_starts)
        latent_pi, latent_vf = self.mlp_extractor.forward_actor(latent_pi), self.mlp_extractor.forward_critic(latent_vf)
        values = self.value_net(latent_vf)
        distribution = self._get_action_dist_from_latent(latent_pi)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        return actions.reshape((-1, *self.action_space.shape)), values, log_prob, state

    def get_distribution(  # type: ignore[override]
        self, obs: PyTorchObs, state: XLSTMPolicyState, episode_starts: Tensor
    ) -> tuple[Distribution, XLSTMPolicyState]:
        """The action distribution for one step, and the next state."""
        pi_features, _ = self._features(obs)
        episode_starts = episode_starts.to(dtype=torch.bool, device=pi_features.device).reshape(-1)
        latent_pi, actor_state = self.actor_memory.step(pi_features, state.actor, episode_starts)
        distribution = self._get_action_dist_from_latent(self.mlp_extractor.forward_actor(latent_pi))
        return distribution, XLSTMPolicyState(actor_state, state.critic)

    def predict_values(  # type: ignore[override]
        self, obs: PyTorchObs, state: XLSTMPolicyState, episode_starts: Tensor
    ) -> Tensor:
        """Values (B, 1) of one step from ``state`` (the state itself is not advanced)."""
        _, latent_vf, _ = self._step_latents(obs, state, episode_starts)
        return self.value_net(self.mlp_extractor.forward_critic(latent_vf))

    # ------------------------------------------------------------------ sequence mode

    def evaluate_sequences(
        self, obs: PyTorchObs, actions: Tensor, state: XLSTMPolicyState, resets: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None, XLSTMPolicyState]:
        """Whole sequences in one parallel pass through each memory.

        Args:
            obs: (S * L, ...) observations, sequence-major (row s * L + t is step t of sequence s).
            actions: (S * L, ...) actions taken.
            state: the state at the start of the S sequences (batch S).
            resets: (S, L) bool, True where an episode starts (memory cleared before that step).

        Returns:
            values (S * L, 1), log-probs (S * L,), entropy (S * L,) or None, the state after the last step.
        """
        S, L = resets.shape
        pi_features, vf_features = self._features(obs)  # (S * L, F) each
        pi_features = pi_features.reshape(S, L, -1)  # (S, L, F)
        latent_pi, actor_state = self.actor_memory.sequence(pi_features, state.actor, resets)  # (S, L, E)
        critic_state = None
        if self.critic_memory_net is None:
            latent_vf = latent_pi
        else:
            vf_features = vf_features.reshape(S, L, -1)
            latent_vf, critic_state = self.critic_memory_net.sequence(vf_features, state.critic, resets)
        latent_pi = self.mlp_extractor.forward_actor(latent_pi.reshape(S * L, -1))
        latent_vf = self.mlp_extractor.forward_critic(latent_vf.reshape(S * L, -1))
        distribution = self._get_action_dist_from_latent(latent_pi)
        log_prob = distribution.log_prob(actions)
        values = self.value_net(latent_vf)
        return values, log_prob, distribution.entropy(), XLSTMPolicyState(actor_state, critic_state)

    def evaluate_actions(  # type: ignore[override]
        self, obs: PyTorchObs, actions: Tensor, state: XLSTMPolicyState, resets: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """``evaluate_sequences`` without the final state (PPO's loss needs only these three)."""
        values, log_prob, entropy, _ = self.evaluate_sequences(obs, actions, state, resets)
        return values, log_prob, entropy

    # ------------------------------------------------------------------ SB3's predict contract

    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: xLSTMState | XLSTMPolicyState | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, xLSTMState]:
        """Actions for a (batch of) observation(s) and the new actor state.

        Args:
            observation: one observation or a batch (n_envs, ...) from a VecEnv.
            state: the state returned by the previous call (None: the zero state).
            episode_start: (n_envs,) bool, True where an episode starts (that row's memory is cleared).
            deterministic: the most likely action instead of a sample.

        Returns:
            actions as numpy (batch dimension dropped for a single observation) and the new state
            (an ``xLSTMState`` of the actor's stack; it pickles).
        """
        self.set_training_mode(False)
        obs_tensor, vectorized = self.obs_to_tensor(observation)
        n_envs = (next(iter(obs_tensor.values())) if isinstance(obs_tensor, dict) else obs_tensor).shape[0]
        if state is None:
            actor_state = self.actor_memory.init_state(n_envs, self.device)
        elif isinstance(state, XLSTMPolicyState):
            actor_state = state.actor
        elif isinstance(state, xLSTMState):
            actor_state = state
        else:
            raise TypeError(
                f"state must be None or the xLSTMState returned by an earlier predict, got {type(state).__name__}"
            )
        if actor_state.batch_size != n_envs:
            raise ValueError(f"state holds {actor_state.batch_size} environments but the observation has {n_envs}")
        actor_state = actor_state.to(self.device)
        starts = np.zeros(n_envs, dtype=bool) if episode_start is None else np.asarray(episode_start, dtype=bool)
        if starts.shape != (n_envs,):
            starts = starts.reshape(-1)
            if starts.shape != (n_envs,):
                raise ValueError(f"episode_start must have shape ({n_envs},), got {np.shape(episode_start)}")
        with torch.no_grad():
            distribution, new_state = self.get_distribution(
                obs_tensor, XLSTMPolicyState(actor_state), torch.as_tensor(starts, device=self.device)
            )
            actions = distribution.get_actions(deterministic=deterministic)
        actions = actions.cpu().numpy().reshape((-1, *self.action_space.shape))
        if isinstance(self.action_space, spaces.Box):
            actions = np.clip(actions, self.action_space.low, self.action_space.high)
        if not vectorized:
            actions = actions.squeeze(axis=0)
        return actions, new_state.actor


class MlpXLSTMPolicy(XLSTMActorCriticPolicy):
    """Vector observations: flatten -> xLSTM memory -> heads."""


class CnnXLSTMPolicy(XLSTMActorCriticPolicy):
    """Image observations: NatureCNN -> xLSTM memory -> heads."""

    def __init__(self, *args: Any, features_extractor_class: type[BaseFeaturesExtractor] = NatureCNN, **kwargs: Any):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)


class MultiInputXLSTMPolicy(XLSTMActorCriticPolicy):
    """Dict observations: CombinedExtractor -> xLSTM memory -> heads."""

    def __init__(
        self, *args: Any, features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor, **kwargs: Any
    ):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)


__all__ = [
    "CnnXLSTMPolicy",
    "MlpXLSTMPolicy",
    "MultiInputXLSTMPolicy",
    "XLSTMActorCriticPolicy",
    "XLSTMMemory",
    "XLSTMPolicyState",
    "check_spaces",
    "default_memory_config",
]
