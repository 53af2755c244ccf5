"""XLSTMPPO: PPO's clipped objective for a recurrent xLSTM actor-critic, as an SB3 on-policy algorithm.

Rollouts advance the memory one ``step`` per environment step. Training sees whole sequences of
``sequence_length`` steps: each minibatch runs its sequences through the stack in one parallel pass from the
states stored at the sequence starts, with ``resets`` where episodes start (no Python loop over time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule, explained_variance, obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv
from torch.nn import functional as F

from xlstm_seq.compiled import CompileSetting, check_compile_setting, configure_stacks
from xlstm_seq.rl.agent_file import load_agent, save_agent
from xlstm_seq.rl.buffers import make_rollout_buffer
from xlstm_seq.rl.policies import (
    SUPPORTED_ACTION_SPACES,
    CnnXLSTMPolicy,
    MlpXLSTMPolicy,
    MultiInputXLSTMPolicy,
    XLSTMActorCriticPolicy,
    XLSTMPolicyState,
    check_spaces,
)

SelfXLSTMPPO = TypeVar("SelfXLSTMPPO", bound="XLSTMPPO")


def _positive(name: str, value: float, allow_zero: bool = False) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")


class XLSTMPPO(OnPolicyAlgorithm):
    """Proximal Policy Optimization with an xLSTM memory (policies: "MlpXLSTMPolicy", "CnnXLSTMPolicy",
    "MultiInputXLSTMPolicy").

    Args:
        policy: a policy class or alias.
        env: a gymnasium env, a VecEnv or an env id.
        learning_rate: float or schedule of the remaining progress (1 -> 0). Default 3e-4.
        n_steps: steps per environment per rollout. Default 128.
        batch_size: environment steps per minibatch; a minibatch holds ``batch_size // sequence_length``
            whole sequences. Default 256.
        n_epochs: passes over each rollout. Default 10.
        gamma: discount. Default 0.99.
        gae_lambda: GAE lambda. Default 0.95.
        clip_range: PPO's ratio clip (float or schedule). Default 0.2.
        clip_range_vf: clip of the value update around the old values; None (default) does not clip.
        normalize_advantage: normalise advantages per minibatch. Default True.
        ent_coef: weight of the entropy bonus. Default 0.0.
        vf_coef: weight of the value loss. Default 0.5.
        max_grad_norm: gradient clip. Default 0.5.
        target_kl: stop an update's epochs early once the approximate KL exceeds 1.5 * target_kl. Default None.
        sequence_length: length L of the training sequences; must divide n_steps and batch_size.
            Default: ``min(n_steps, batch_size)``.
        compile: torch.compile the memory's rollout ``step`` and training pass on a CPU (:mod:`xlstm_seq.compiled`):
            True, False, or "auto" (default), which compiles each once ``learn`` plans enough calls to repay the
            first compile (a rollout step per environment step and env; a training pass per minibatch).

    The other arguments are SB3's PPO's (stats_window_size, tensorboard_log, policy_kwargs, verbose, seed, device).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpXLSTMPolicy": MlpXLSTMPolicy,
        "CnnXLSTMPolicy": CnnXLSTMPolicy,
        "MultiInputXLSTMPolicy": MultiInputXLSTMPolicy,
    }
    policy: XLSTMActorCriticPolicy

    def __init__(
        self,
        policy: str | type[XLSTMActorCriticPolicy],
        env: GymEnv | str | None,
        learning_rate: float | Schedule = 3e-4,
        n_steps: int = 128,
        batch_size: int = 256,
        n_epochs: int = 10,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        target_kl: float | None = None,
        sequence_length: int | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        compile: CompileSetting = "auto",
        _init_setup_model: bool = True,
    ):
        check_compile_setting(compile)
        for name, value in (("n_steps", n_steps), ("batch_size", batch_size), ("n_epochs", n_epochs)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        sequence_length = min(n_steps, batch_size) if sequence_length is None else sequence_length
        if not isinstance(sequence_length, (int, np.integer)) or sequence_length < 1 or n_steps % sequence_length:
            raise ValueError(
                f"sequence_length must be a positive divisor of n_steps ({n_steps}), got {sequence_length}"
            )
        if batch_size % sequence_length:
            raise ValueError(
                f"batch_size ({batch_size}) must be a multiple of sequence_length ({sequence_length}): "
                "a minibatch holds whole sequences"
            )
        for name, value in (("gamma", gamma), ("gae_lambda", gae_lambda)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        _positive("ent_coef", ent_coef, allow_zero=True)
        _positive("vf_coef", vf_coef, allow_zero=True)
        _positive("max_grad_norm", max_grad_norm)
        if isinstance(clip_range, (int, float)):
            _positive("clip_range", clip_range)
        if target_kl is not None:
            _positive("target_kl", target_kl)
        if policy_kwargs and policy_kwargs.get("use_sde"):
            raise ValueError("XLSTMPPO does not support gSDE (use_sde=True)")
        if env is not None and not isinstance(env, str):
            check_spaces(env.observation_space, env.action_space)

        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=False,
            sde_sample_freq=-1,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
            supported_action_spaces=SUPPORTED_ACTION_SPACES,
        )
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.clip_range = clip_range
        self.clip_range_vf = clip_range_vf
        self.normalize_advantage = normalize_advantage
        self.target_kl = target_kl
        self.sequence_length = sequence_length
        self.compile = compile
        self._last_policy_state: XLSTMPolicyState | None = None
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        check_spaces(self.observation_space, self.action_space)
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, **self.policy_kwargs
        )
        if not isinstance(self.policy, XLSTMActorCriticPolicy):
            raise TypeError(f"XLSTMPPO needs an XLSTMActorCriticPolicy, got {type(self.policy).__name__}")
        self.policy = self.policy.to(self.device)
        configure_stacks(self.policy, getattr(self, "compile", "auto"))
        self.rollout_buffer = make_rollout_buffer(
            self.observation_space,
            buffer_size=self.n_steps,
            action_space=self.action_space,
            device=self.device,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            n_envs=self.n_envs,
            sequence_length=self.sequence_length,
        )
        self.clip_range = FloatSchedule(self.clip_range)
        if self.clip_range_vf is not None:
            if isinstance(self.clip_range_vf, (float, int)):
                _positive("clip_range_vf", self.clip_range_vf)
            self.clip_range_vf = FloatSchedule(self.clip_range_vf)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_last_policy_state"]

    # ------------------------------------------------------------------ safe files

    def save_safetensors(self, path: str | Path) -> Path:
        """Writes the agent as one safetensors file that loads without unpickling: the policy's weights as
        tensors, the constructor arguments, the policy config and the spaces as JSON in its header.

        The safe way to share an agent (:meth:`save` writes SB3's zip, whose load unpickles with cloudpickle). The
        optimizer state and the rollout state are not kept: a loaded agent predicts the same actions and trains on
        with a fresh optimizer. Schedules are kept when they are numbers or SB3's Constant/LinearSchedule.

        Args:
            path: File to write; ``.safetensors`` is appended when it has another suffix.

        Returns:
            The path written.

        Raises:
            ValueError: a setting JSON cannot hold (a custom policy or features extractor class, a hand-written
                schedule), named in the message.
        """
        return save_agent(self, path)

    @classmethod
    def load_safetensors(
        cls, path: str | Path, env: GymEnv | None = None, device: torch.device | str = "auto"
    ) -> XLSTMPPO:
        """Restores an agent written by :meth:`save_safetensors`; nothing in the file is unpickled or run.

        Args:
            path: The file (``.safetensors`` may be left out).
            env: Environment to continue training in (its spaces must be the saved ones); None: predict only
                (``set_env`` later with one environment).
            device: Where the policy runs. Default "auto".

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: not such a file, or a damaged one; the message names the file.
        """
        return load_agent(cls, path, env=env, device=device)

    # ------------------------------------------------------------------ rollouts

    def collect_rollouts(
        self, env: VecEnv, callback: BaseCallback, rollout_buffer: RolloutBuffer, n_rollout_steps: int
    ) -> bool:
        """Fills the buffer with ``n_rollout_steps`` steps per env, storing the state at each sequence start."""
        assert self._last_obs is not None, "no previous observation: call learn(), which resets the env"
        self.policy.set_training_mode(False)
        rollout_buffer.reset()
        state = self._last_policy_state
        if state is None or state.batch_size != env.num_envs:
            state = self.policy.initial_state(env.num_envs)
        callback.on_rollout_start()
        new_obs, dones = self._last_obs, self._last_episode_starts
        for n_steps in range(n_rollout_steps):
            if n_steps % self.sequence_length == 0:
                rollout_buffer.add_start_state(state)  # type: ignore[attr-defined]
            with torch.no_grad():
                obs_tensor = obs_as_tensor(self._last_obs, self.device)  # type: ignore[arg-type]
                starts = torch.as_tensor(self._last_episode_starts, dtype=torch.bool, device=self.device)
                actions, values, log_probs, state = self.policy(obs_tensor, state, starts)
            actions = actions.cpu().numpy()
            clipped = actions
            if isinstance(self.action_space, spaces.Box):
                clipped = np.clip(actions, self.action_space.low, self.action_space.high)
            new_obs, rewards, dones, infos = env.step(clipped)
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                self._last_policy_state = state
                return False
            self._update_info_buffer(infos, dones)
            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.reshape(-1, 1)
            rewards = self._bootstrap_timeouts(rewards, dones, infos, state)
            rollout_buffer.add(self._last_obs, actions, rewards, self._last_episode_starts, values, log_probs)  # type: ignore[arg-type]
            self._last_obs, self._last_episode_starts = new_obs, dones  # type: ignore[assignment]
        self._last_policy_state = state
        with torch.no_grad():
            starts = torch.as_tensor(dones, dtype=torch.bool, device=self.device)
            last_values = self.policy.predict_values(obs_as_tensor(new_obs, self.device), state, starts)  # type: ignore[arg-type]
        rollout_buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _bootstrap_timeouts(
        self, rewards: np.ndarray, dones: np.ndarray, infos: list[dict], state: XLSTMPolicyState
    ) -> np.ndarray:
        """Adds gamma * V(terminal observation) to the reward of episodes cut by a time limit."""
        for idx, done in enumerate(dones):
            info = infos[idx]
            if done and info.get("terminal_observation") is not None and info.get("TimeLimit.truncated", False):
                terminal_obs = self.policy.obs_to_tensor(info["terminal_observation"])[0]
                with torch.no_grad():
                    no_reset = torch.zeros(1, dtype=torch.bool, device=self.device)
                    value = self.policy.predict_values(terminal_obs, state.select([idx]), no_reset)[0]
                rewards[idx] += self.gamma * value.item()
        return rewards

    # ------------------------------------------------------------------ training

    def train(self) -> None:
        """PPO epochs over the rollout; each minibatch is whole sequences in one parallel pass."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        clip_range_vf = None
        if self.clip_range_vf is not None:
            clip_range_vf = self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]
        sequences_per_batch = self.batch_size // self.sequence_length
        entropy_losses, pg_losses, value_losses, clip_fractions = [], [], [], []
        approx_kl_divs: list[float] = []
        continue_training = True
        loss = torch.zeros(())
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            for batch in self.rollout_buffer.sequence_batches(sequences_per_batch):  # type: ignore[attr-defined]
                actions = batch.actions
                if isinstance(self.action_space, spaces.Discrete):
                    actions = actions.long().flatten()
                values, log_prob, entropy = self.policy.evaluate_actions(
                    batch.observations, actions, batch.start_states, batch.resets
                )
                values = values.flatten()  # (S * L,)
                advantages = batch.advantages
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                ratio = torch.exp(log_prob - batch.old_log_prob)
                policy_loss = -torch.min(
                    advantages * ratio, advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
                ).mean()
                pg_losses.append(policy_loss.item())
                clip_fractions.append(torch.mean((torch.abs(ratio - 1) > clip_range).float()).item())
                if clip_range_vf is not None:
                    values = batch.old_values + torch.clamp(values - batch.old_values, -clip_range_vf, clip_range_vf)
                value_loss = F.mse_loss(batch.returns, values)
                value_losses.append(value_loss.item())
                entropy_loss = -torch.mean(-log_prob) if entropy is None else -torch.mean(entropy)
                entropy_losses.append(entropy_loss.item())
                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss

                with torch.no_grad():
                    log_ratio = log_prob - batch.old_log_prob
                    approx_kl = torch.mean((torch.exp(log_ratio) - 1) - log_ratio).item()
                    approx_kl_divs.append(approx_kl)
                if self.target_kl is not None and approx_kl > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at epoch {epoch} because the approximate KL reached {approx_kl:.3f}")
                    break
                self.policy.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
            self._n_updates += 1
            if not continue_training:
                break

        explained_var = explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten())
        self.logger.record("train/entropy_loss", np.mean(entropy_losses))
        self.logger.record("train/policy_gradient_loss", np.mean(pg_losses))
        self.logger.record("train/value_loss", np.mean(value_losses))
        self.logger.record("train/approx_kl", np.mean(approx_kl_divs) if approx_kl_divs else float("nan"))
        self.logger.record("train/clip_fraction", np.mean(clip_fractions))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance", explained_var)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", torch.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)

    def learn(
        self: SelfXLSTMPPO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "XLSTMPPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfXLSTMPPO:
        if reset_num_timesteps:
            self._last_policy_state = None
        # The plan, for compile="auto": one step per env step and env; one training pass per minibatch.
        rollouts = -(-total_timesteps // (self.n_steps * self.n_envs))
        passes = rollouts * self.n_epochs * -(-self.n_steps * self.n_envs // self.batch_size)
        configure_stacks(self.policy, self.compile, step_calls=total_timesteps // self.n_envs, forward_calls=passes)
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """Actions and the new memory state; see ``XLSTMActorCriticPolicy.predict``."""
        return self.policy.predict(observation, state, episode_start, deterministic)
