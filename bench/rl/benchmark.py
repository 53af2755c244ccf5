"""`xlstm-seq rl benchmark`: XLSTMPPO vs RecurrentPPO (LSTM) vs PPO (MLP on stacked frames, or on the current
observation alone: the memoryless reference) on memory tasks.

For every environment x seed x algorithm: train with the same PPO settings (from the environment's entry in
the config), then evaluate the final policy deterministically. Reported per algorithm and environment: mean
+- std over seeds of the final evaluation return, and training throughput (env steps per second of ``learn``,
rollouts and updates together). Every run is one MLflow run (SB3's logger bridged to it); the table goes to
markdown and the learning curves (mean training-episode return against env steps) to a PNG.

The settings live in :mod:`.config`, the table and figure in :mod:`.report`; RecurrentPPO (sb3-contrib) is the
peer, imported here only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xlstm_seq.tracking.provenance import Provenance, cpu_model, visible_cores
from xlstm_seq_bench.rl.config import ALGORITHMS, BenchmarkEnv, RLBenchmarkConfig
from xlstm_seq_bench.rl.report import RunResult, plot_curves, render_markdown, summarise

__all__ = [
    "ALGORITHMS", "BenchmarkEnv", "RLBenchmarkConfig", "random_policy_return", "run_benchmark", "run_one",
    "select_envs", "write_results",
]  # fmt: skip

#: Versions the report names beside the core ones.
PACKAGES = ("stable-baselines3", "sb3-contrib", "gymnasium")

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- runs


def select_envs(config: RLBenchmarkConfig, env_ids: list[str]) -> tuple[RLBenchmarkConfig, dict[str, str]]:
    """``config`` running ``env_ids`` only, and the config's environments left out (id -> reason, for the report).

    An id the config holds keeps its entry; any other gymnasium or POPGym id gets the config's ``defaults``. Each
    new id must name an environment that can be created: else a ValueError naming it.
    """
    from xlstm_seq.rl.envs import make_env

    entries = {e.env_id: e for e in config.envs}
    chosen = []
    for env_id in dict.fromkeys(env_ids):
        if env_id not in entries:
            try:
                make_env(env_id).close()
            except Exception as error:  # gymnasium's NameNotFound, a missing optional dependency, ...
                raise ValueError(
                    f"--envs: cannot create environment {env_id!r}: {type(error).__name__}: {error}"
                ) from error
        chosen.append(entries.get(env_id) or config.env_settings(env_id))
    not_run = {e: "left out with --envs" for e in entries if e not in env_ids}
    return config.replace(envs=chosen), not_run


def _make_vec_env(budget: BenchmarkEnv, seed: int, n_envs: int, frame_stack: int | None):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecFrameStack

    from xlstm_seq.rl.envs import make_env

    env = make_vec_env(lambda: make_env(budget.env_id), n_envs=n_envs, seed=seed)
    return VecFrameStack(env, frame_stack) if frame_stack else env


def _build_model(algorithm: str, config: RLBenchmarkConfig, budget: BenchmarkEnv, env, seed: int):
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
        return XLSTMPPO(policy, env, policy_kwargs=kwargs, sequence_length=config.xlstm_sequence_length,
                        compile=config.xlstm_compile, **common)  # fmt: skip
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
    algorithm: str, config: RLBenchmarkConfig, budget: BenchmarkEnv, seed: int, *, track: bool = True
) -> RunResult:
    """Trains and evaluates one (algorithm, environment, seed), tracked as one MLflow run."""
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    from xlstm_seq.rl.logger import tracked_logger
    from xlstm_seq.tracking import create_tracker

    config = config.for_env(budget)
    frames = config.frame_stack if algorithm == "ppo_framestack" else None  # ppo_memoryless: the observation alone
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


def random_policy_return(budget: BenchmarkEnv, seed: int = 10_000) -> float:
    """Mean return of uniformly random actions over ``budget.eval_episodes`` episodes (the report's floor)."""
    from xlstm_seq.rl.envs import make_env

    env = make_env(budget.env_id)
    env.action_space.seed(seed)
    returns = []
    for episode in range(budget.eval_episodes):
        env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def _params(config: RLBenchmarkConfig) -> dict[str, Any]:
    data = config.to_dict()
    data.pop("envs")
    return data


def _report(out: Callable[[str], None], result: RunResult) -> None:
    out(
        f"{result.env_id} {result.algorithm} seed {result.seed}: return {result.eval_mean:.3f} ± "
        f"{result.eval_std:.3f}, {result.steps_per_second:.0f} steps/s ({result.train_seconds:.0f} s)"
    )


def _run_grid(grid: list, config: RLBenchmarkConfig, track: bool, done: Callable[[int, RunResult], None]) -> None:
    """Trains every (algorithm, environment, seed) of ``grid``, ``config.jobs`` at a time, calling ``done(index,
    result)`` as each finishes."""
    if config.jobs == 1:
        for index, (algorithm, budget, seed) in enumerate(grid):
            done(index, run_one(algorithm, config, budget, seed, track=track))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    _import_trainers()  # before the fork: the children share these modules instead of reading them again
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=config.jobs, mp_context=context) as pool:
        futures = {pool.submit(_run_in_child, a, config, b, s, track): i for i, (a, b, s) in enumerate(grid)}
        for future in as_completed(futures):
            done(futures[future], future.result())


def _run_in_child(algorithm: str, config: RLBenchmarkConfig, budget: BenchmarkEnv, seed: int, track: bool):
    torch.set_num_threads(config.torch_threads)
    return run_one(algorithm, config, budget, seed, track=track)


def _import_trainers() -> None:
    import sb3_contrib  # noqa: F401
    import stable_baselines3.common.evaluation  # noqa: F401

    import xlstm_seq.rl.logger  # noqa: F401
    import xlstm_seq.rl.ppo  # noqa: F401
    import xlstm_seq.tracking  # noqa: F401


def run_settings(algorithm: str, config: RLBenchmarkConfig, budget: BenchmarkEnv) -> dict[str, Any]:
    """What decides a run's outcome besides its seed: the environment's settings and the algorithm's model."""
    own = config.for_env(budget).to_dict()
    keys = {
        "xlstm_ppo": (
            "xlstm",
            "critic_memory",
            "xlstm_actor_net_arch",
            "xlstm_critic_net_arch",
            "xlstm_sequence_length",
        ),
        "recurrent_ppo": ("lstm_hidden_size", "lstm_critic_net_arch"),
        "ppo_framestack": ("frame_stack", "mlp_net_arch"),
        "ppo_memoryless": ("mlp_net_arch",),
    }[algorithm]
    model = {k: own[k] for k in keys}
    if algorithm == "xlstm_ppo" and config.xlstm_compile != "auto":
        # Compiling changes the speed, and float rounding only; kept apart from "auto" runs all the same.
        # (Results recorded before the switch existed ran with "auto" and hold no such key.)
        model["xlstm_compile"] = config.xlstm_compile
    return dict(algorithm=algorithm, env=budget.to_dict(), torch_threads=config.torch_threads, model=model)


def _run_key(result_or_item) -> str:
    if isinstance(result_or_item, RunResult):
        return f"{result_or_item.algorithm}|{result_or_item.env_id}|{result_or_item.seed}"
    algorithm, budget, seed = result_or_item
    return f"{algorithm}|{budget.env_id}|{seed}"


def write_results(
    path: Path,
    results: list[RunResult],
    random_returns: dict[str, float],
    config: RLBenchmarkConfig,
    provenance: Provenance,
    settings: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Every run's result (curves included), its settings (:func:`run_settings`, by ``algorithm|env|seed``), the
    random-policy returns, the config and the provenance, as JSON beside the markdown: what a later comparison of
    several benchmark runs reads, and what ``resume`` takes finished runs from. Written after every run."""
    import json
    from dataclasses import asdict

    data = dict(
        config=config.to_dict(), provenance=provenance.markdown(), random_returns=random_returns,
        results=[asdict(r) for r in results], settings=settings or {},
    )  # fmt: skip
    path.write_text(json.dumps(data, indent=1))


def _finished_runs(path: Path, grid: list, config: RLBenchmarkConfig) -> dict[int, RunResult]:
    """The runs of ``grid`` that ``path`` (an earlier results JSON) holds with the same settings, by grid index."""
    import json

    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    earlier = {_run_key(RunResult(**r)): RunResult(**r) for r in data.get("results", [])}
    settings = data.get("settings", {})
    found = {}
    for index, item in enumerate(grid):
        key = _run_key(item)
        if key in earlier and settings.get(key) == run_settings(item[0], config, item[1]):
            found[index] = earlier[key]
    return found


def _provenance(command: str, threads: int) -> Provenance:
    """The report's provenance, taken as the grid starts; every run trains on the CPU, whatever else the machine has."""
    device = f"{cpu_model()} (CPU, {visible_cores()} cores visible, {threads} torch thread{'s' if threads > 1 else ''})"
    return Provenance.capture(command, packages=PACKAGES, threads=threads, device=device)


def run_benchmark(
    config: RLBenchmarkConfig,
    *,
    track: bool = True,
    command: str = "xlstm-seq rl benchmark --config configs/rl/pomdp.yaml",
    out: Callable[[str], None] = print,
    not_run: dict[str, str] | None = None,
    resume: bool = False,
    resume_from: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Runs the whole grid of ``config``; writes the markdown and PNG; returns the summary rows.

    ``not_run`` names environments of the YAML left out by the caller (env id -> reason) for the report;
    environments whose optional dependency is missing are added to it here. The results JSON beside ``out`` is
    rewritten after every run; with ``resume``, the runs it already holds with the same settings
    (:func:`run_settings`) are taken from it instead of trained again (an interrupted grid goes on), and the report
    says how many. ``resume_from`` names more results files to take runs from (e.g. one algorithm's runs made by a
    separate command with another ``out``); the first file holding a run gives it.
    """
    not_run = dict(not_run or {})
    from xlstm_seq.rl.envs import make_env

    provenance = _provenance(command, config.torch_threads)
    random_returns: dict[str, float] = {}
    grid = []
    for budget in config.envs:
        try:
            make_env(budget.env_id).close()
        except Exception as error:  # a missing optional dependency (Box2D, popgym) skips the environment
            out(f"skipping {budget.env_id}: {type(error).__name__}: {error}")
            not_run[budget.env_id] = f"could not be created ({type(error).__name__}: {error})"
            continue
        random_returns[budget.env_id] = random_policy_return(budget)
        grid += [(algorithm, budget, seed) for seed in config.seeds for algorithm in config.algorithms]
    if not grid:
        raise RuntimeError("no environment of the config could be created; nothing ran")
    results_path = Path(config.out).with_suffix(".json")
    sources = ([results_path] if resume else []) + [Path(p) for p in resume_from or []]
    for source in sources[1 if resume else 0 :]:
        if not source.is_file():
            raise FileNotFoundError(f"resume_from: results file {source} does not exist")
    finished: dict[int, RunResult] = {}
    for source in reversed(sources):  # the first file holding a run gives it
        finished.update(_finished_runs(source, grid, config))
    slots: list[RunResult | None] = [finished.get(i) for i in range(len(grid))]
    settings = {_run_key(item): run_settings(item[0], config, item[1]) for item in grid}
    results_path.parent.mkdir(parents=True, exist_ok=True)

    def done(index: int, result: RunResult) -> None:
        slots[index] = result
        _report(out, result)
        kept = [r for r in slots if r is not None]
        write_results(results_path, kept, random_returns, config, provenance, settings)

    if finished:
        out(f"resuming: {len(finished)} of {len(grid)} runs taken from {', '.join(map(str, sources))}")
    todo = [item for i, item in enumerate(grid) if i not in finished]
    positions = [i for i in range(len(grid)) if i not in finished]
    threads = torch.get_num_threads()
    torch.set_num_threads(config.torch_threads)
    try:
        _run_grid(todo, config, track, lambda i, result: done(positions[i], result))
    finally:
        torch.set_num_threads(threads)
    results = [r for r in slots if r is not None]
    if finished:
        config = config.replace(
            notes=[*config.notes, f"{len(finished)} of {len(grid)} runs were taken, with the same settings, from the "
                   f"results of earlier runs ({', '.join(p.as_posix() for p in sources)}); the rest ran here."]
        )  # fmt: skip
    rows = summarise(results)
    provenance = provenance.finish()
    markdown = render_markdown(rows, config, provenance, not_run, random_returns)
    Path(config.out).parent.mkdir(parents=True, exist_ok=True)
    Path(config.out).write_text(markdown)
    write_results(results_path, results, random_returns, config, provenance, settings)
    fig = plot_curves(results, config.figure_path, random_returns)
    from xlstm_seq.tracking import create_tracker

    with create_tracker(config.experiment, run_name="summary", enabled=track, tags=provenance.tags()) as tracker:
        tracker.log_params(_params(config))
        tracker.log_text(config.to_yaml(), "config.yaml")
        tracker.log_text(markdown, "rl.md")
        tracker.log_figure(fig, config.figure_path.name)
        tracker.log_dict({"rows": rows}, "summary.json")
    out(markdown)
    return rows
