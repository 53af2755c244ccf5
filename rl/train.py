"""`xlstm-seq rl train` and ``rl_demo``: train XLSTMPPO on one environment, tracked in MLflow, and save it.

from xlstm_seq.rl.train import rl_demo
rl_demo()                         # a few thousand steps on CartPoleNoVel-v1, tracked
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from xlstm_seq.config import ConfigMixin, xLSTMConfig


@dataclass
class EnvBudget(ConfigMixin):
    """One environment with its training budget and PPO settings (``rl train``'s ``env``; the benchmark's grid
    holds one per environment)."""

    env_id: str = "CartPoleNoVel-v1"
    """A gymnasium id (the NoVel ids of xlstm_seq.rl.envs, or POPGym's ``popgym-...-v0``)."""
    total_timesteps: int = 50_000
    """Training budget in environment steps."""
    n_envs: int = 8
    """Parallel environments (DummyVecEnv)."""
    normalize: bool = True
    """Wrap in VecNormalize (observations and rewards; evaluation uses the frozen observation statistics)."""
    n_steps: int = 128
    """Rollout steps per environment."""
    batch_size: int = 256
    """Minibatch size in environment steps."""
    n_epochs: int = 10
    learning_rate: float = 7e-4
    gamma: float = 0.99
    gae_lambda: float = 0.98
    ent_coef: float = 0.0
    max_grad_norm: float = 1.0
    eval_episodes: int = 20
    """Episodes of the final deterministic evaluation."""

    def __post_init__(self) -> None:
        for name in ("total_timesteps", "n_envs", "n_steps", "batch_size", "n_epochs", "eval_episodes"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"envs[{self.env_id}].{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"envs[{self.env_id}].learning_rate must be > 0, got {self.learning_rate}")


def _default_memory() -> xLSTMConfig:
    return xLSTMConfig(embedding_dim=64, num_blocks=1, num_heads=1)  # the CartPoleNoVel benchmark recipe


@dataclass
class RLTrainConfig(ConfigMixin):
    """One XLSTMPPO training run."""

    env: EnvBudget = field(default_factory=EnvBudget)
    """Environment, budget and PPO settings."""
    xlstm: xLSTMConfig = field(default_factory=_default_memory)
    """The memory stack."""
    critic_memory: str = "shared"
    """"shared" (the critic reads the actor's stack) or "separate" (its own stack)."""
    critic_net_arch: list[int] = field(default_factory=lambda: [64])
    """Critic MLP after the memory (default [64], the benchmark's recipe; [] puts the value head on the memory)."""
    seed: int = 0
    """Seed of the environments and the parameters."""
    torch_threads: int = 1
    """torch intra-op threads while training."""
    save_path: str | None = None
    """Where to save the model zip (VecNormalize statistics beside it); None: only as an MLflow artifact."""
    experiment: str = "xlstm-seq-rl"
    """MLflow experiment."""

    def __post_init__(self) -> None:
        if isinstance(self.env, dict):
            self.env = EnvBudget.from_dict(self.env)
        if isinstance(self.xlstm, dict):
            self.xlstm = xLSTMConfig.from_dict(self.xlstm)
        if self.critic_memory not in ("shared", "separate"):
            raise ValueError(f"critic_memory must be 'shared' or 'separate', got {self.critic_memory!r}")
        if self.torch_threads < 1:
            raise ValueError(f"torch_threads must be >= 1, got {self.torch_threads}")


def run_train(config: RLTrainConfig, *, track: bool = True, out: Callable[[str], None] = print) -> dict[str, float]:
    """Trains, evaluates and saves; returns the headline numbers (also logged)."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    from xlstm_seq.rl.envs import make_env
    from xlstm_seq.rl.logger import tracked_logger
    from xlstm_seq.rl.ppo import XLSTMPPO
    from xlstm_seq.tracking import create_tracker

    budget = config.env
    env = make_vec_env(lambda: make_env(budget.env_id), n_envs=budget.n_envs, seed=config.seed)
    eval_env = make_vec_env(lambda: make_env(budget.env_id), n_envs=1, seed=config.seed + 10_000)
    if budget.normalize:
        env = VecNormalize(env, gamma=budget.gamma)
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False, gamma=budget.gamma)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.torch_threads)
    try:
        model = XLSTMPPO(
            "MlpXLSTMPolicy", env, n_steps=budget.n_steps, batch_size=budget.batch_size, n_epochs=budget.n_epochs,
            learning_rate=budget.learning_rate, gamma=budget.gamma, gae_lambda=budget.gae_lambda,
            ent_coef=budget.ent_coef, max_grad_norm=budget.max_grad_norm, seed=config.seed, device="cpu",
            policy_kwargs=dict(xlstm=config.xlstm, critic_memory=config.critic_memory,
                               net_arch=dict(pi=[], vf=list(config.critic_net_arch))),
        )  # fmt: skip
        with create_tracker(config.experiment, run_name=f"xlstm_ppo-{budget.env_id}", enabled=track) as tracker:
            tracker.log_params(config.to_dict())
            tracker.log_text(config.to_yaml(), "config.yaml")
            model.set_logger(tracked_logger(tracker))
            started = time.perf_counter()
            model.learn(budget.total_timesteps, progress_bar=False)
            seconds = time.perf_counter() - started
            if budget.normalize:
                eval_env.obs_rms = env.obs_rms
            returns, _ = evaluate_policy(
                model, eval_env, n_eval_episodes=budget.eval_episodes, deterministic=True, return_episode_rewards=True
            )
            results = {
                "eval/mean_return": float(np.mean(returns)),
                "eval/std_return": float(np.std(returns)),
                "train/seconds": seconds,
                "train/env_steps_per_second": model.num_timesteps / seconds,
            }
            tracker.log_metrics(results)
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(config.save_path).parent if config.save_path else Path(tmp)
                folder.mkdir(parents=True, exist_ok=True)
                zip_path = Path(config.save_path) if config.save_path else folder / "model.zip"
                model.save(zip_path)
                tracker.log_artifact(zip_path.with_suffix(".zip"))
                if budget.normalize:
                    stats = zip_path.with_name(zip_path.stem + "_vecnormalize.pkl")
                    env.save(str(stats))
                    tracker.log_artifact(stats)
            run_id = tracker.run_id
    finally:
        torch.set_num_threads(threads)
        env.close()
        eval_env.close()
    out(
        f"XLSTMPPO on {budget.env_id}: {model.num_timesteps:,} steps in {seconds:.1f} s "
        f"({results['train/env_steps_per_second']:.0f} steps/s); deterministic evaluation over "
        f"{budget.eval_episodes} episodes: {results['eval/mean_return']:.1f} ± {results['eval/std_return']:.1f}"
    )
    if run_id:
        out(f"MLflow run {run_id} (experiment {config.experiment!r})")
    return results


def rl_demo(total_timesteps: int = 4096, *, track: bool = True, seed: int = 0, out=print) -> dict[str, float]:
    """The RL step of `xlstm-seq demo`: XLSTMPPO for a few thousand steps on CartPoleNoVel-v1, tracked.

    A short run only shows the machinery (training, evaluation, tracking, saving); the 50k-step results are in
    the RL benchmark's table (``xlstm-seq rl benchmark``; a memoryless policy scores about 50 on this task).
    """
    config = RLTrainConfig(env=EnvBudget(total_timesteps=total_timesteps, eval_episodes=10), seed=seed)
    return run_train(config, track=track, out=out)
