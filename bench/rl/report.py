"""The RL benchmark's report: one result per run, the summary rows, the markdown table (under the run's
:class:`~xlstm_seq.tracking.provenance.Provenance`) and the learning curves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xlstm_seq.tracking.provenance import Provenance
from xlstm_seq_bench.rl.config import ALGORITHM_LABELS, ALGORITHMS, RLBenchmarkConfig
from xlstm_seq_bench.rl.suite import return_range, suite_lines, task_name, verdict

__all__ = ["RunResult", "plot_curves", "render_markdown", "summarise", "target_lines"]


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


def summarise(results: list[RunResult]) -> list[dict[str, Any]]:
    """One row per (environment, algorithm), environments in the order they ran: mean +- std over seeds of the
    final return and of steps/s."""
    rows = []
    env_order = list(dict.fromkeys(r.env_id for r in results))  # the config's order
    keys = sorted(
        {(r.env_id, r.algorithm) for r in results}, key=lambda k: (env_order.index(k[0]), ALGORITHMS.index(k[1]))
    )
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
    rows: list[dict[str, Any]],
    config: RLBenchmarkConfig,
    provenance: Provenance,
    not_run: dict[str, str] | None = None,
    random_returns: dict[str, float] | None = None,
) -> str:
    """The report: the provenance header (command, revision, device, versions, date, load), the table (with the
    random policy's return where measured), the suite view of the POPGym tasks (normalised returns, aggregate,
    verdicts), the targets checked on it, the models, the config's notes and what was configured but not run."""
    random_returns = random_returns or {}
    lines = [
        "# RL benchmark: XLSTMPPO vs RecurrentPPO vs PPO on memory tasks",
        "",
        *provenance.markdown(notes=[f"CPU only, torch threads {config.torch_threads}"]),
        "",
        "Final return: mean over seeds of the mean deterministic evaluation return of the final policy (± std over"
        " seeds). Throughput: environment steps per second of `learn` (rollouts and updates).",
        "",
        "| environment | algorithm | seeds | steps | final return (mean ± std) | per seed | env-steps/s (mean ± std) |",
        "|---|---|---|---|---|---|---|",
    ]
    budgets = {e.env_id: e.total_timesteps for e in config.envs}
    episodes = {e.env_id: e.eval_episodes for e in config.envs}
    for index, row in enumerate(rows):
        digits = 3 if max(abs(v) for v in row["per_seed"]) < 10 else 1  # POPGym returns lie in [-1, 1]
        per_seed = ", ".join(f"{v:.{digits}f}" for v in row["per_seed"])
        lines.append(
            f"| {row['env_id']} | {ALGORITHM_LABELS[row['algorithm']]} | {len(row['seeds'])} | "
            f"{budgets.get(row['env_id'], 0):,} | {row['return_mean']:.{digits}f} ± {row['return_std']:.{digits}f} | "
            f"{per_seed} | "
            f"{row['sps_mean']:.0f} ± {row['sps_std']:.0f} |"
        )
        last_of_env = index + 1 == len(rows) or rows[index + 1]["env_id"] != row["env_id"]
        if last_of_env and row["env_id"] in random_returns:
            lines.append(
                f"| {row['env_id']} | random policy ({episodes.get(row['env_id'], 0)} episodes) | - | 0 | "
                f"{random_returns[row['env_id']]:.{digits}f} | - | - |"
            )
    suite = suite_lines(rows, random_returns)
    lines += ["", *(suite + [""] if suite else []), *target_lines(rows), "", "Models: " + _models_text(config), ""]
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
    """The targets, checked on these rows (only those whose algorithms ran): CartPoleNoVel >= 450 on every seed and
    XLSTMPPO throughput >= 3x RecurrentPPO's; on a POPGym task outside the suite table (:func:`.suite.suite_lines`
    judges those inside), XLSTMPPO level with (within the seeds' spread) or ahead of RecurrentPPO."""
    by_key = {(r["env_id"], r["algorithm"]): r for r in rows}
    lines = []
    for env_id in dict.fromkeys(r["env_id"] for r in rows):
        ours, lstm = by_key.get((env_id, "xlstm_ppo")), by_key.get((env_id, "recurrent_ppo"))
        if ours is None:
            continue
        if env_id.startswith("CartPoleNoVel"):
            worst = min(ours["per_seed"])
            met = "met" if worst >= 450 else "NOT met"
            lines.append(f"- {env_id}: XLSTMPPO >= 450 on every seed: {met} (lowest seed {worst:.1f}).")
            if lstm is not None:
                ratio = ours["sps_mean"] / lstm["sps_mean"]
                met = "met" if ratio >= 3 else "NOT met"
                lines.append(f"- {env_id}: XLSTMPPO throughput >= 3x RecurrentPPO's: {met} ({ratio:.2f}x).")
        elif env_id.startswith("popgym-") and lstm is not None and return_range(env_id) is None:
            judged = verdict(ours, lstm) if "seeds" in ours and "seeds" in lstm else None
            if judged in (None, "one seed"):  # no spread to judge by: the plain comparison of means
                judged = "met" if ours["return_mean"] >= lstm["return_mean"] else "NOT met"
            else:
                judged = f"NOT met ({judged})" if judged == "behind" else f"met ({judged})"
            lines.append(
                f"- {env_id}: XLSTMPPO level with or ahead of RecurrentPPO: {judged} "
                f"({ours['return_mean']:.3f} vs {lstm['return_mean']:.3f}; throughput "
                f"{ours['sps_mean'] / lstm['sps_mean']:.2f}x)."
            )
    return ["Targets, checked on this table:", "", *lines] if lines else []


def _xlstm_text(config: RLBenchmarkConfig) -> str:
    x = config.xlstm
    actor_mlp = config.xlstm_actor_net_arch or "none"
    critic_mlp = config.xlstm_critic_net_arch or "none"
    return (
        f"{x.num_blocks} xLSTM block(s) (sLSTM at {x.slstm_block_ids or 'none'}), width {x.embedding_dim}, "
        f"{x.num_heads} heads, mLSTM convolution {x.mlstm.conv_kernel_size}, {config.critic_memory} critic memory, "
        f"actor MLP {actor_mlp}, critic MLP {critic_mlp}, compile={config.xlstm_compile!r}"
    )


def _models_text(config: RLBenchmarkConfig) -> str:
    return (
        f"XLSTMPPO: {_xlstm_text(config)}"
        f"; RecurrentPPO: LSTM {config.lstm_hidden_size} with a separate critic LSTM, critic MLP "
        f"{config.lstm_critic_net_arch}, no ortho init (sb3-contrib's test setup). PPO: MLP "
        f"{config.mlp_net_arch} on {config.frame_stack} stacked observations (ppo_framestack) or on the current "
        "observation alone (ppo_memoryless). Same PPO settings per environment "
        "(see the config)."
    )


def plot_curves(results: list[RunResult], path: Path, random_returns: dict[str, float] | None = None):
    """Mean training-episode return against env steps (min-max band over seeds), one panel per environment (five
    to a row), with the random policy's return as a dashed line where measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    random_returns = random_returns or {}
    env_ids = list(dict.fromkeys(r.env_id for r in results))
    columns = min(len(env_ids), 5)
    rows = -(-len(env_ids) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.8 * rows), squeeze=False)
    for ax in axes.flat[len(env_ids) :]:
        ax.set_visible(False)
    for ax, env_id in zip(axes.flat, env_ids, strict=False):  # spare panels hidden
        for algorithm in ALGORITHMS:
            runs = [r for r in results if r.env_id == env_id and r.algorithm == algorithm and r.curve]
            if not runs:
                continue
            grid = np.linspace(0, max(r.curve[-1][0] for r in runs), 50)
            ys = np.stack([np.interp(grid, [c[0] for c in r.curve], [c[1] for c in r.curve]) for r in runs])
            ax.plot(grid, ys.mean(0), label=f"{ALGORITHM_LABELS[algorithm]} ({len(runs)} seeds)")
            ax.fill_between(grid, ys.min(0), ys.max(0), alpha=0.2)
        if env_id in random_returns:
            ax.axhline(random_returns[env_id], color="grey", linestyle="--", label="random policy")
        ax.set(title=task_name(env_id), xlabel="environment steps", ylabel="training episode return (last 20)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return fig
