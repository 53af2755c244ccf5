"""The suite view of the RL benchmark: POPGym returns normalised to [-1, 1], their mean over tasks (POPGym's
aggregate), and a verdict per task that calls a difference within the seeds' spread a tie.

Return ranges (popgym 1.0.7's reward definitions): the card and bandit tasks pay +-1/N per step over N scored steps,
so an episode returns between -1 and 1 (CountRecall likewise; HigherLower's 1/deck size over one guess fewer than
the deck, so within [-1, 1]); MineSweeper pays 1/safe squares per new square, and at worst -0.5 in all for repeated
squares plus -0.5 - 1/safe squares for the mine after one new square, so [-1, 1]; Battleship pays 1/hits needed per
hit and -1/(squares - hits needed) per miss over at most as many shots as squares, so an episode of misses returns
-squares/(squares - 12) (its ships have 12 squares): -64/52 on the Easy 8 x 8 board; the pendulums rescale each
step's reward to [-1, 1] / episode length, so again [-1, 1]; the cart-poles pay +1/episode length per step survived,
so [0, 1]. Tasks outside this table (any non-POPGym id) are reported in their own units and left out of the
aggregate.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

__all__ = [
    "RETURN_RANGES", "aggregate", "normalised", "return_range", "suite_lines", "task_name", "verdict",
]  # fmt: skip

#: Known (lowest, highest) episode return of a POPGym task family (any difficulty) or of one task (family + level).
RETURN_RANGES = {
    "RepeatFirst": (-1.0, 1.0),
    "RepeatPrevious": (-1.0, 1.0),
    "Autoencode": (-1.0, 1.0),
    "Concentration": (-1.0, 1.0),
    "MultiarmedBandit": (-1.0, 1.0),
    "PositionOnlyCartPole": (0.0, 1.0),
    "VelocityOnlyCartpole": (0.0, 1.0),
    "NoisyPositionOnlyCartPole": (0.0, 1.0),
    "PositionOnlyPendulum": (-1.0, 1.0),
    "NoisyPositionOnlyPendulum": (-1.0, 1.0),
    # Kept aside from the development suite for an independent check of its chosen default.
    "CountRecall": (-1.0, 1.0),
    "HigherLower": (-1.0, 1.0),
    "BattleshipEasy": (-64 / 52, 1.0),
    "BattleshipMedium": (-100 / 88, 1.0),
    "BattleshipHard": (-144 / 132, 1.0),
    "MineSweeper": (-1.0, 1.0),
}

_POPGYM_ID = re.compile(r"^popgym-(?P<family>[A-Za-z]+?)(?P<level>Easy|Medium|Hard)-v\d+$")


def task_name(env_id: str) -> str:
    """``popgym-RepeatFirstEasy-v0`` -> ``RepeatFirstEasy``; other ids unchanged."""
    match = _POPGYM_ID.match(env_id)
    return match["family"] + match["level"] if match else env_id


def return_range(env_id: str) -> tuple[float, float] | None:
    """The known (lowest, highest) episode return of ``env_id``; None when the table does not hold its task."""
    match = _POPGYM_ID.match(env_id)
    if not match:
        return None
    return RETURN_RANGES.get(match["family"] + match["level"], RETURN_RANGES.get(match["family"]))


def normalised(value: float, low: float, high: float) -> float:
    """``value`` mapped linearly from [low, high] onto [-1, 1]."""
    if not high > low:
        raise ValueError(f"return range must have high > low, got ({low}, {high})")
    return 2.0 * (value - low) / (high - low) - 1.0


def aggregate(rows: list[dict[str, Any]], algorithm: str) -> dict[str, Any] | None:
    """POPGym's aggregate of ``algorithm``: the mean over tasks of the normalised mean return, with its std over
    seeds (the aggregate of each seed's runs). Only tasks with a known return range count; None without any.

    Each row: ``env_id``, ``algorithm``, ``seeds``, ``per_seed`` (the final return of each seed).
    """
    per_task = {}
    for row in rows:
        bounds = return_range(row["env_id"])
        if row["algorithm"] == algorithm and bounds is not None:
            values = [normalised(v, *bounds) for v in row["per_seed"]]
            per_task[row["env_id"]] = dict(zip(row["seeds"], values, strict=True))
    if not per_task:
        return None
    common_seeds = sorted(set.intersection(*(set(runs) for runs in per_task.values())))
    per_seed = [float(np.mean([runs[s] for runs in per_task.values()])) for s in common_seeds]
    mean = float(np.mean([np.mean(list(runs.values())) for runs in per_task.values()]))
    return dict(mean=mean, std=float(np.std(per_seed)) if per_seed else float("nan"), tasks=len(per_task),
                seeds=common_seeds)  # fmt: skip


def verdict(ours: dict[str, Any], theirs: dict[str, Any]) -> str:
    """ "ahead", "behind" or "tie" for ``ours`` against ``theirs`` (rows with ``return_mean``, ``return_std``,
    ``seeds``): a difference of means no larger than the larger std over seeds is a tie; with one seed there is
    no spread to judge by, so "one seed"."""
    seeds = min(len(ours["seeds"]), len(theirs["seeds"]))
    return _judge(ours["return_mean"] - theirs["return_mean"], max(ours["return_std"], theirs["return_std"]), seeds)


def _judge(difference: float, spread: float, seeds: int) -> str:
    """The verdict rule of the suite, for a task or the aggregate: within the larger std over seeds is a tie."""
    if seeds < 2:
        return "one seed"
    if abs(difference) <= spread:
        return "tie"
    return "ahead" if difference > 0 else "behind"


def suite_lines(
    rows: list[dict[str, Any]], random_returns: dict[str, float] | None = None, ours: str = "xlstm_ppo",
    peer: str = "recurrent_ppo",
) -> list[str]:  # fmt: skip
    """The suite table (normalised returns per task and algorithm, the random policy, XLSTMPPO's verdict against
    RecurrentPPO and its throughput ratio), the aggregates and the suite targets, as markdown lines."""
    from xlstm_seq_bench.rl.config import ALGORITHM_LABELS, ALGORITHMS

    random_returns = random_returns or {}
    by_key = {(r["env_id"], r["algorithm"]): r for r in rows}
    algorithms = [a for a in ALGORITHMS if any(r["algorithm"] == a for r in rows)]
    env_ids = [e for e in dict.fromkeys(r["env_id"] for r in rows) if return_range(e) is not None]
    if not env_ids:
        return []
    compare = ours in algorithms and peer in algorithms
    header = ["task", *[ALGORITHM_LABELS[a] for a in algorithms], "random policy"]
    header += ["verdict (XLSTMPPO vs RecurrentPPO)", "throughput ratio"] if compare else []
    by_range: dict[tuple[float, float], list[str]] = {}
    for env_id in env_ids:
        by_range.setdefault(return_range(env_id), []).append(task_name(env_id))
    ranges_text = "; ".join(f"[{low:.3g}, {high:.3g}] for {', '.join(names)}" for (low, high), names
                            in by_range.items() if (low, high) != (-1.0, 1.0))  # fmt: skip
    lines = [
        "Normalised returns: each task's return mapped from its known range (popgym's reward definitions: "
        f"{ranges_text + '; ' if ranges_text else ''}[-1, 1] for the others) onto [-1, 1]; mean ± std over seeds. "
        "Verdict: a difference of means no larger than the larger std over seeds is a tie.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    verdicts, ratios = [], []
    for env_id in env_ids:
        low, high = return_range(env_id)
        cells = [task_name(env_id)]
        for algorithm in algorithms:
            row = by_key.get((env_id, algorithm))
            if row is None:
                cells.append("not run")
                continue
            values = [normalised(v, low, high) for v in row["per_seed"]]
            cells.append(f"{np.mean(values):.3f} ± {np.std(values):.3f}")
        random = random_returns.get(env_id)
        cells.append(f"{normalised(random, low, high):.3f}" if random is not None else "not run")
        if compare and (env_id, ours) in by_key and (env_id, peer) in by_key:
            a, b = by_key[(env_id, ours)], by_key[(env_id, peer)]
            verdicts.append(verdict(a, b))
            ratios.append(a["sps_mean"] / b["sps_mean"])
            cells += [verdicts[-1], f"{ratios[-1]:.2f}x"]
        elif compare:
            cells += ["not run", "not run"]
        lines.append("| " + " | ".join(cells) + " |")
    totals = {a: aggregate(rows, a) for a in algorithms}
    lines += ["", "Aggregate (mean over tasks of the normalised return; ± std over seeds of each seed's mean):", ""]
    for algorithm, total in totals.items():
        spread = f" ± {total['std']:.3f}" if len(total["seeds"]) > 1 else " (one seed)"
        lines.append(f"- {ALGORITHM_LABELS[algorithm]}: {total['mean']:.3f}{spread} over {total['tasks']} tasks")
    if compare and verdicts:
        lines += ["", *_target_lines(totals[ours], totals[peer], verdicts, ratios, len(env_ids))]
    return lines


def _target_lines(ours, peer, verdicts: list[str], ratios: list[float], tasks: int) -> list[str]:
    ahead, behind = verdicts.count("ahead"), verdicts.count("behind")
    judged = "one seed" not in verdicts
    yes = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    lines = ["Suite targets, checked on this table:", ""]
    spread = max(ours["std"], peer["std"])
    aggregate_verdict = _judge(ours["mean"] - peer["mean"], spread, min(len(ours["seeds"]), len(peer["seeds"])))
    noise = ""
    if aggregate_verdict == "tie":
        noise = f"; a tie: the difference is within the seeds' spread of {spread:.3f}"
    elif aggregate_verdict != "one seed":
        noise = f"; beyond the seeds' spread of {spread:.3f}"
    lines.append(f"- XLSTMPPO's aggregate above RecurrentPPO's: {yes(ours['mean'] > peer['mean'])} "
                 f"({ours['mean']:.3f} vs {peer['mean']:.3f}{noise}).")  # fmt: skip
    if judged:
        lines.append(
            f"- XLSTMPPO level or ahead on every task: {yes(behind == 0)} ({behind} behind of {len(verdicts)})."
        )
        lines.append(f"- XLSTMPPO ahead on at least half the tasks: {yes(2 * ahead >= tasks)} ({ahead} of {tasks}).")
    else:
        lines.append("- Per-task verdicts need at least two seeds: not judged.")
    lines.append(
        f"- Throughput >= 3x RecurrentPPO's on every task: {yes(min(ratios) >= 3)} (lowest {min(ratios):.2f}x)."
    )
    return lines
