"""`xlstm-seq rl benchmark`: XLSTMPPO vs RecurrentPPO (LSTM) vs PPO (MLP on stacked frames) on memory tasks.

For every environment x seed x algorithm: train with the same PPO settings (from the environment's entry in
the config), then evaluate the final policy deterministically. Reported per algorithm and environment: mean
+- std over seeds of the final evaluation return, and training throughput (env steps per second of ``learn``,
rollouts and updates together). Every run is one MLflow run (SB3's logger bridged to it); the table goes to
markdown and the learning curves (mean training-episode return against env steps) to a PNG.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xlstm_seq.config import ConfigMixin, xLSTMConfig
from xlstm_seq.tracking.provenance import cpu_model, git_revision

log = logging.getLogger(__name__)

ALGORITHMS = ("xlstm_ppo", "recurrent_ppo", "ppo_framestack")
ALGORITHM_LABELS = {
    "xlstm_ppo": "XLSTMPPO (xLSTM)",
    "recurrent_ppo": "RecurrentPPO (LSTM)",
    "ppo_framestack": "PPO (MLP, stacked frames)",
}


# RLBenchmarkConfig fields that an environment entry may change for itself (EnvBudget.overrides).
MODEL_KEYS = (
    "xlstm", "critic_memory", "xlstm_actor_net_arch", "xlstm_critic_net_arch", "xlstm_sequence_length",
    "lstm_hidden_size", "lstm_critic_net_arch", "frame_stack", "mlp_net_arch",
)  # fmt: skip


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """base with changes applied; nested mappings are merged key by key."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@dataclass
class EnvBudget(ConfigMixin):
    """One environment of the benchmark with its budget and the PPO settings shared by all algorithms."""

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
    overrides: dict[str, Any] = field(default_factory=dict)
    """Model settings of the benchmark changed for this environment only, e.g. ``{critic_memory: separate, xlstm:
    {mlstm: {conv_kernel_size: 8}}}``; keys from MODEL_KEYS, ``xlstm`` merged field by field."""

    def __post_init__(self) -> None:
        if not isinstance(self.overrides, dict):
            raise TypeError(f"envs[{self.env_id}].overrides must be a mapping, got {type(self.overrides).__name__}")
        unknown = sorted(set(self.overrides) - set(MODEL_KEYS))
        if unknown:
            raise ValueError(f"envs[{self.env_id}].overrides: unknown key(s) {unknown}; valid keys: {list(MODEL_KEYS)}")
        for name in ("total_timesteps", "n_envs", "n_steps", "batch_size", "n_epochs", "eval_episodes"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"envs[{self.env_id}].{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"envs[{self.env_id}].learning_rate must be > 0, got {self.learning_rate}")


def _default_envs() -> list[EnvBudget]:
    return [EnvBudget()]


def _default_memory() -> xLSTMConfig:
    return xLSTMConfig(embedding_dim=64, num_blocks=1, num_heads=4)


@dataclass
class RLBenchmarkConfig(ConfigMixin):
    """The grid of the RL benchmark and the model of each algorithm."""

    algorithms: list[str] = field(default_factory=lambda: list(ALGORITHMS))
    """Which of xlstm_ppo, recurrent_ppo, ppo_framestack run."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Seeds; every algorithm runs every seed on every environment."""
    envs: list[EnvBudget] = field(default_factory=_default_envs)
    """Environments with their budgets and PPO settings."""
    xlstm: xLSTMConfig = field(default_factory=_default_memory)
    """XLSTMPPO's memory stack."""
    critic_memory: str = "shared"
    """XLSTMPPO: the critic reads the actor's stack ("shared") or has its own ("separate")."""
    xlstm_actor_net_arch: list[int] = field(default_factory=list)
    """XLSTMPPO's actor MLP after the memory (default none: the action head sits on the memory output)."""
    xlstm_critic_net_arch: list[int] = field(default_factory=lambda: [64])
    """XLSTMPPO's critic MLP after the memory (default [64], as RecurrentPPO's; [] puts the value head on the memory
    output; with a shared memory the extra layer keeps the value fit from dominating the memory's features)."""
    xlstm_sequence_length: int | None = None
    """XLSTMPPO's training sequence length (must divide n_steps and batch_size); None: min(n_steps, batch_size)."""
    lstm_hidden_size: int = 64
    """RecurrentPPO's LSTM width (separate critic LSTM, as its default)."""
    frame_stack: int = 4
    """PPO's stacked observations."""
    lstm_critic_net_arch: list[int] = field(default_factory=lambda: [64])
    """RecurrentPPO's critic MLP after the LSTM (sb3-contrib's CartPoleNoVel test setup, no ortho init)."""
    mlp_net_arch: list[int] = field(default_factory=lambda: [64, 64])
    """PPO's MLP for actor and critic."""
    torch_threads: int = 1
    """torch intra-op threads for every run (tiny per-step tensors are fastest, and fairest, on one)."""
    out: str = "benchmarks/rl.md"
    """Markdown table written at the end."""
    figure: str | None = None
    """Learning-curve PNG written at the end; None: beside ``out`` as ``<out stem>_learning_curves.png`` (so
    per-environment runs with their own ``out`` do not overwrite each other's figure)."""
    experiment: str = "xlstm-seq-rl-benchmark"
    """MLflow experiment of the runs."""
    notes: list[str] = field(default_factory=list)
    """Lines written under the table as they are (e.g. how the recipe was chosen, and on which seeds)."""

    def __post_init__(self) -> None:
        if isinstance(self.xlstm, dict):
            self.xlstm = xLSTMConfig.from_dict(self.xlstm)
        self.envs = [EnvBudget.from_dict(e) if isinstance(e, dict) else e for e in self.envs]
        if not self.envs or not all(isinstance(e, EnvBudget) for e in self.envs):
            raise ValueError("envs must be a non-empty list of environment entries (env_id, total_timesteps, ...)")
        unknown = sorted(set(self.algorithms) - set(ALGORITHMS))
        if unknown or not self.algorithms:
            raise ValueError(f"algorithms must be a non-empty subset of {list(ALGORITHMS)}, got {self.algorithms}")
        if not isinstance(self.notes, list) or not all(isinstance(n, str) for n in self.notes):
            raise TypeError(f"notes must be a list of strings, got {self.notes!r}")
        if not self.seeds or not all(isinstance(s, int) for s in self.seeds):
            raise ValueError(f"seeds must be a non-empty list of integers, got {self.seeds}")
        if self.critic_memory not in ("shared", "separate"):
            raise ValueError(f"critic_memory must be 'shared' or 'separate', got {self.critic_memory!r}")
        for name in ("lstm_hidden_size", "frame_stack", "torch_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for budget in self.envs:
            self.for_env(budget)  # every override builds valid settings, or fails here naming the environment

    def for_env(self, budget: EnvBudget) -> RLBenchmarkConfig:
        """This config with ``budget.overrides`` applied (itself when there are none)."""
        if not budget.overrides:
            return self
        data = self.to_dict()  # nested plain dicts, xlstm included
        try:
            resolved = {**budget.to_dict(), "overrides": {}}  # applied here, so the result holds none
            return RLBenchmarkConfig.from_dict({**_merged(data, budget.overrides), "envs": [resolved]})
        except (TypeError, ValueError) as err:
            raise ValueError(f"envs[{budget.env_id}].overrides: {err}") from err

    @property
    def figure_path(self) -> Path:
        """The learning-curve PNG: ``figure`` if set, else ``<out without .md>_learning_curves.png``."""
        if self.figure:
            return Path(self.figure)
        out = Path(self.out)
        return out.with_name(f"{out.stem}_learning_curves.png")


@dataclass
class RunResult:
    """One training run."""

    algorithm: str
    env_id: str
    seed: int
    eval_mean: float
    eval_std: float
    train_seconds: float
    steps_per_second: float
    curve: list[tuple[int, float]]
    run_id: str | None = None


# ----------------------------------------------------------------------------------------------- runs


def _make_vec_env(budget: EnvBudget, seed: int, n_envs: int, frame_stack: int | None):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecFrameStack

    from xlstm_seq.rl.envs import make_env

    env = make_vec_env(lambda: make_env(budget.env_id), n_envs=n_envs, seed=seed)
    return VecFrameStack(env, frame_stack) if frame_stack else env


def _build_model(algorithm: str, config: RLBenchmarkConfig, budget: EnvBudget, env, seed: int):
    common = dict(
        n_steps=budget.n_steps, batch_size=budget.batch_size, n_epochs=budget.n_epochs,
        learning_rate=budget.learning_rate, gamma=budget.gamma, gae_lambda=budget.gae_lambda,
        ent_coef=budget.ent_coef, max_grad_norm=budget.max_grad_norm, seed=seed, device="cpu", verbose=0,
    )  # fmt: skip
    if algorithm == "xlstm_ppo":
        from xlstm_seq.rl.ppo import XLSTMPPO

        policy = "MultiInputXLSTMPolicy" if _is_dict(env) else "MlpXLSTMPolicy"
        heads = dict(pi=list(config.xlstm_actor_net_arch), vf=list(config.xlstm_critic_net_arch))
        kwargs = dict(xlstm=config.xlstm, critic_memory=config.critic_memory, net_arch=heads)
        return XLSTMPPO(policy, env, policy_kwargs=kwargs, sequence_length=config.xlstm_sequence_length, **common)
    if algorithm == "recurrent_ppo":
        from sb3_contrib import RecurrentPPO

        policy = "MultiInputLstmPolicy" if _is_dict(env) else "MlpLstmPolicy"
        heads = dict(pi=[], vf=list(config.lstm_critic_net_arch))
        kwargs = dict(lstm_hidden_size=config.lstm_hidden_size, net_arch=heads, ortho_init=False)
        return RecurrentPPO(policy, env, policy_kwargs=kwargs, **common)
    from stable_baselines3 import PPO

    policy = "MultiInputPolicy" if _is_dict(env) else "MlpPolicy"
    kwargs = dict(net_arch=dict(pi=list(config.mlp_net_arch), vf=list(config.mlp_net_arch)))
    return PPO(policy, env, policy_kwargs=kwargs, **common)


def _is_dict(env) -> bool:
    from gymnasium import spaces

    return isinstance(env.observation_space, spaces.Dict)


def _curve_callback(curve: list[tuple[int, float]]):
    from stable_baselines3.common.callbacks import BaseCallback

    class EpisodeReturns(BaseCallback):
        """Records (env steps, mean return of the last 20 training episodes) at every rollout end."""

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            episodes = list(self.model.ep_info_buffer)[-20:]
            if episodes:
                curve.append((self.num_timesteps, float(np.mean([e["r"] for e in episodes]))))

    return EpisodeReturns()


def run_one(
    algorithm: str, config: RLBenchmarkConfig, budget: EnvBudget, seed: int, *, track: bool = True
) -> RunResult:
    """Trains and evaluates one (algorithm, environment, seed), tracked as one MLflow run."""
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    from xlstm_seq.rl.logger import tracked_logger
    from xlstm_seq.tracking import create_tracker

    config = config.for_env(budget)
    frames = config.frame_stack if algorithm == "ppo_framestack" else None
    env = _make_vec_env(budget, seed, budget.n_envs, frames)
    eval_env = _make_vec_env(budget, seed + 10_000, 1, frames)
    if budget.normalize:
        env = VecNormalize(env, gamma=budget.gamma)
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False, gamma=budget.gamma)
    torch.manual_seed(seed)
    model = _build_model(algorithm, config, budget, env, seed)
    curve: list[tuple[int, float]] = []
    name = f"{algorithm}-{budget.env_id}-seed{seed}"
    with create_tracker(config.experiment, run_name=name, enabled=track) as tracker:
        tracker.log_params(
            {"algorithm": algorithm, "seed": seed, "env": budget.to_dict(), "benchmark": _params(config)}
        )
        model.set_logger(tracked_logger(tracker, formats=()))
        started = time.perf_counter()
        model.learn(budget.total_timesteps, callback=_curve_callback(curve))
        seconds = time.perf_counter() - started
        if budget.normalize:
            eval_env.obs_rms = env.obs_rms
        returns, _ = evaluate_policy(
            model, eval_env, n_eval_episodes=budget.eval_episodes, deterministic=True, return_episode_rewards=True
        )
        result = RunResult(
            algorithm, budget.env_id, seed, float(np.mean(returns)), float(np.std(returns)), seconds,
            model.num_timesteps / seconds, curve, tracker.run_id,
        )  # fmt: skip
        tracker.log_metrics(
            {"eval/mean_return": result.eval_mean, "eval/std_return": result.eval_std,
             "train/seconds": seconds, "train/env_steps_per_second": result.steps_per_second}
        )  # fmt: skip
    env.close()
    eval_env.close()
    return result


def _params(config: RLBenchmarkConfig) -> dict[str, Any]:
    data = config.to_dict()
    data.pop("envs")
    return data


# ----------------------------------------------------------------------------------------------- report


def summarise(results: list[RunResult]) -> list[dict[str, Any]]:
    """One row per (environment, algorithm): mean +- std over seeds of the final return and of steps/s."""
    rows = []
    keys = sorted({(r.env_id, r.algorithm) for r in results}, key=lambda k: (k[0], ALGORITHMS.index(k[1])))
    for env_id, algorithm in keys:
        runs = [r for r in results if (r.env_id, r.algorithm) == (env_id, algorithm)]
        finals = np.array([r.eval_mean for r in runs])
        speeds = np.array([r.steps_per_second for r in runs])
        rows.append(
            dict(env_id=env_id, algorithm=algorithm, seeds=[r.seed for r in runs],
                 return_mean=float(finals.mean()), return_std=float(finals.std()), per_seed=finals.tolist(),
                 sps_mean=float(speeds.mean()), sps_std=float(speeds.std()),
                 seconds=float(np.mean([r.train_seconds for r in runs])))
        )  # fmt: skip
    return rows


def render_markdown(
    rows: list[dict[str, Any]], config: RLBenchmarkConfig, command: str, not_run: dict[str, str] | None = None
) -> str:
    import gymnasium
    import sb3_contrib
    import stable_baselines3

    lines = [
        "# RL benchmark: XLSTMPPO vs RecurrentPPO vs PPO on memory tasks",
        "",
        f"Written by `{command}` on {date.today().isoformat()}, git {git_revision()}.",
        f"Device: {cpu_model()}, torch threads {config.torch_threads} (the machine's {os.cpu_count()} cores were"
        " shared with other jobs while it ran), CPU only.",
        f"Versions: torch {torch.__version__}, stable-baselines3 {stable_baselines3.__version__}, sb3-contrib "
        f"{sb3_contrib.__version__}, gymnasium {gymnasium.__version__}, Python {platform.python_version()}.",
        "",
        "Final return: mean over seeds of the mean deterministic evaluation return of the final policy (± std over"
        " seeds). Throughput: environment steps per second of `learn` (rollouts and updates).",
        "",
        "| environment | algorithm | seeds | steps | final return (mean ± std) | per seed | env-steps/s (mean ± std) |",
        "|---|---|---|---|---|---|---|",
    ]
    budgets = {e.env_id: e.total_timesteps for e in config.envs}
    for row in rows:
        digits = 3 if max(abs(v) for v in row["per_seed"]) < 10 else 1  # POPGym returns lie in [-1, 1]
        per_seed = ", ".join(f"{v:.{digits}f}" for v in row["per_seed"])
        lines.append(
            f"| {row['env_id']} | {ALGORITHM_LABELS[row['algorithm']]} | {len(row['seeds'])} | "
            f"{budgets.get(row['env_id'], 0):,} | {row['return_mean']:.{digits}f} ± {row['return_std']:.{digits}f} | "
            f"{per_seed} | "
            f"{row['sps_mean']:.0f} ± {row['sps_std']:.0f} |"
        )
    lines += ["", *target_lines(rows), "", "Models: " + _models_text(config), ""]
    changed = [e for e in config.envs if e.overrides and e.env_id in {r["env_id"] for r in rows}]
    if changed:
        lines += ["Per-environment model changes (`overrides` in the config):", ""]
        lines += [f"- {e.env_id}: {e.overrides}; XLSTMPPO there: {_xlstm_text(config.for_env(e))}" for e in changed]
        lines.append("")
    if config.notes:
        lines += ["Notes (from the config):", "", *[f"- {note}" for note in config.notes], ""]
    lines += [f"Learning curves: `{config.figure_path.as_posix()}`.", ""]
    if not_run:
        lines += ["Configured in the YAML but not run by this command:", ""]
        lines += [f"- {env_id}: {reason}" for env_id, reason in not_run.items()]
        lines.append("")
    return "\n".join(lines)


def target_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The issue's targets, checked on these rows (only those whose algorithms ran): CartPoleNoVel >= 450 on every
    seed and XLSTMPPO throughput >= 3x RecurrentPPO's; on POPGym, XLSTMPPO's mean return >= RecurrentPPO's."""
    by_key = {(r["env_id"], r["algorithm"]): r for r in rows}
    lines = []
    for env_id in dict.fromkeys(r["env_id"] for r in rows):
        ours, lstm = by_key.get((env_id, "xlstm_ppo")), by_key.get((env_id, "recurrent_ppo"))
        if ours is None:
            continue
        if env_id.startswith("CartPoleNoVel"):
            worst = min(ours["per_seed"])
            verdict = "met" if worst >= 450 else "NOT met"
            lines.append(f"- {env_id}: XLSTMPPO >= 450 on every seed: {verdict} (lowest seed {worst:.1f}).")
            if lstm is not None:
                ratio = ours["sps_mean"] / lstm["sps_mean"]
                verdict = "met" if ratio >= 3 else "NOT met"
                lines.append(f"- {env_id}: XLSTMPPO throughput >= 3x RecurrentPPO's: {verdict} ({ratio:.2f}x).")
        elif env_id.startswith("popgym-") and lstm is not None:
            verdict = "met" if ours["return_mean"] >= lstm["return_mean"] else "NOT met"
            lines.append(
                f"- {env_id}: XLSTMPPO mean return >= RecurrentPPO's: {verdict} "
                f"({ours['return_mean']:.3f} vs {lstm['return_mean']:.3f}; throughput "
                f"{ours['sps_mean'] / lstm['sps_mean']:.2f}x)."
            )
    return ["Targets of the issue, checked on this table:", "", *lines] if lines else []


def _xlstm_text(config: RLBenchmarkConfig) -> str:
    x = config.xlstm
    actor_mlp = config.xlstm_actor_net_arch or "none"
    critic_mlp = config.xlstm_critic_net_arch or "none"
    return (
        f"{x.num_blocks} xLSTM block(s) (sLSTM at {x.slstm_block_ids or 'none'}), width {x.embedding_dim}, "
        f"{x.num_heads} heads, mLSTM convolution {x.mlstm.conv_kernel_size}, {config.critic_memory} critic memory, "
        f"actor MLP {actor_mlp}, critic MLP {critic_mlp}"
    )


def _models_text(config: RLBenchmarkConfig) -> str:
    return (
        f"XLSTMPPO: {_xlstm_text(config)}"
        f"; RecurrentPPO: LSTM {config.lstm_hidden_size} with a separate critic LSTM, critic MLP "
        f"{config.lstm_critic_net_arch}, no ortho init (sb3-contrib's test setup). PPO: MLP "
        f"{config.mlp_net_arch} on {config.frame_stack} stacked observations. Same PPO settings per environment "
        "(see the config)."
    )


def plot_curves(results: list[RunResult], path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env_ids = list(dict.fromkeys(r.env_id for r in results))
    fig, axes = plt.subplots(1, len(env_ids), figsize=(5 * len(env_ids), 3.8), squeeze=False)
    for ax, env_id in zip(axes[0], env_ids, strict=True):
        for algorithm in ALGORITHMS:
            runs = [r for r in results if r.env_id == env_id and r.algorithm == algorithm and r.curve]
            if not runs:
                continue
            grid = np.linspace(0, max(r.curve[-1][0] for r in runs), 50)
            ys = np.stack([np.interp(grid, [c[0] for c in r.curve], [c[1] for c in r.curve]) for r in runs])
            ax.plot(grid, ys.mean(0), label=f"{ALGORITHM_LABELS[algorithm]} ({len(runs)} seeds)")
            ax.fill_between(grid, ys.min(0), ys.max(0), alpha=0.2)
        ax.set(title=env_id, xlabel="environment steps", ylabel="training episode return (last 20)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return fig


def run_benchmark(
    config: RLBenchmarkConfig,
    *,
    track: bool = True,
    command: str = "xlstm-seq rl benchmark --config configs/rl/pomdp.yaml",
    out: Callable[[str], None] = print,
    not_run: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Runs the whole grid of ``config``; writes the markdown and PNG; returns the summary rows.

    ``not_run`` names environments of the YAML left out by the caller (env id -> reason) for the report;
    environments whose optional dependency is missing are added to it here.
    """
    not_run = dict(not_run or {})
    from xlstm_seq.rl.envs import make_env

    threads = torch.get_num_threads()
    torch.set_num_threads(config.torch_threads)
    results: list[RunResult] = []
    try:
        for budget in config.envs:
            try:
                make_env(budget.env_id).close()
            except Exception as error:  # a missing optional dependency (Box2D, popgym) skips the environment
                out(f"skipping {budget.env_id}: {type(error).__name__}: {error}")
                not_run[budget.env_id] = f"could not be created ({type(error).__name__}: {error})"
                continue
            for seed in config.seeds:
                for algorithm in config.algorithms:
                    result = run_one(algorithm, config, budget, seed, track=track)
                    results.append(result)
                    out(
                        f"{budget.env_id} {algorithm} seed {seed}: return {result.eval_mean:.1f} ± "
                        f"{result.eval_std:.1f}, {result.steps_per_second:.0f} steps/s ({result.train_seconds:.0f} s)"
                    )
    finally:
        torch.set_num_threads(threads)
    if not results:
        raise RuntimeError("no environment of the config could be created; nothing ran")
    rows = summarise(results)
    markdown = render_markdown(rows, config, command, not_run)
    Path(config.out).parent.mkdir(parents=True, exist_ok=True)
    Path(config.out).write_text(markdown)
    fig = plot_curves(results, config.figure_path)
    from xlstm_seq.tracking import create_tracker

    with create_tracker(config.experiment, run_name="summary", enabled=track) as tracker:
        tracker.log_params(_params(config))
        tracker.log_text(config.to_yaml(), "config.yaml")
        tracker.log_text(markdown, "rl.md")
        tracker.log_figure(fig, config.figure_path.name)
        tracker.log_dict({"rows": rows}, "summary.json")
    out(markdown)
    return rows
