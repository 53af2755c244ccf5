"""The POPGym development suite: the config's defaults, ids from the command line, the normalised aggregate and the
noise-aware verdicts (no training here but one tiny CLI run)."""

from __future__ import annotations

import json

import pytest

from xlstm_seq.cli.main import build_parser, main
from xlstm_seq.cli.rl import benchmark_command, split_overrides
from xlstm_seq.config_io import load_yaml
from xlstm_seq.rl.policies import default_memory_config
from xlstm_seq_bench.rl.benchmark import random_policy_return, select_envs
from xlstm_seq_bench.rl.config import BenchmarkEnv, RLBenchmarkConfig
from xlstm_seq_bench.rl.suite import aggregate, normalised, return_range, suite_lines, task_name, verdict

SUITE = [
    "RepeatFirst", "RepeatPrevious", "Autoencode", "Concentration", "MultiarmedBandit", "PositionOnlyCartPole",
    "VelocityOnlyCartpole", "NoisyPositionOnlyCartPole", "PositionOnlyPendulum", "NoisyPositionOnlyPendulum",
]  # fmt: skip


def test_dev_suite_config_holds_the_ten_easy_tasks_from_its_defaults():
    config = RLBenchmarkConfig.from_dict(load_yaml("configs/rl/popgym_dev.yaml"))
    assert [e.env_id for e in config.envs] == [f"popgym-{name}Easy-v0" for name in SUITE]
    assert all(return_range(e.env_id) is not None for e in config.envs)
    assert config.xlstm == default_memory_config()  # the suite checks the policy's own default
    autoencode = config.envs[2]
    assert (autoencode.gamma, autoencode.gae_lambda, autoencode.learning_rate) == (0.0, 0.0, 0.0005)
    assert all(e.total_timesteps == config.defaults["total_timesteps"] and not e.overrides for e in config.envs)
    assert RLBenchmarkConfig.from_dict(config.to_dict()) == config


def test_defaults_fill_entries_and_reject_unknown_keys():
    config = RLBenchmarkConfig.from_dict(
        {"defaults": {"total_timesteps": 999, "gamma": 0.5}, "envs": [{"env_id": "CartPoleNoVel-v1", "gamma": 0.9}]}
    )
    assert (config.envs[0].total_timesteps, config.envs[0].gamma) == (999, 0.9)
    assert config.env_settings("PendulumNoVel-v1").total_timesteps == 999
    with pytest.raises(ValueError, match=r"defaults: unknown key\(s\) \['gama'\]"):
        RLBenchmarkConfig(defaults={"gama": 0.5})
    with pytest.raises(ValueError, match="needs an env_id"):
        RLBenchmarkConfig.from_dict({"defaults": {"gamma": 0.5}, "envs": [{"gamma": 0.5}]})


def test_envs_from_the_command_line_use_the_entry_or_the_defaults():
    config = RLBenchmarkConfig(
        defaults={"total_timesteps": 777},
        envs=[BenchmarkEnv(env_id="CartPoleNoVel-v1", total_timesteps=5, gamma=0.1)],
    )
    chosen, not_run = select_envs(config, ["CartPoleNoVel-v1", "PendulumNoVel-v1"])
    assert [(e.env_id, e.total_timesteps) for e in chosen.envs] == [("CartPoleNoVel-v1", 5), ("PendulumNoVel-v1", 777)]
    assert not_run == {}
    chosen, not_run = select_envs(config, ["popgym-RepeatFirstEasy-v0"])
    assert chosen.envs[0].total_timesteps == 777 and not_run == {"CartPoleNoVel-v1": "left out with --envs"}
    with pytest.raises(ValueError, match="cannot create environment 'popgym-NoSuchTaskEasy-v0'"):
        select_envs(config, ["popgym-NoSuchTaskEasy-v0"])


def test_overrides_after_list_options_stay_overrides():
    argv = ["rl", "benchmark", "--envs", "CartPoleNoVel-v1", "--seeds", "3", "4", "xlstm.num_blocks=2", "--out", "x.md"]
    args = build_parser().parse_args(argv)
    split_overrides(args)
    assert args.seeds == [3, 4] and args.overrides == ["xlstm.num_blocks=2"] and args.out == "x.md"
    assert args.envs == ["CartPoleNoVel-v1"]
    command = benchmark_command(args)
    assert command.index("xlstm.num_blocks=2") < command.index("--envs") and "--out x.md" in command
    again = build_parser().parse_args(command.split()[1:])
    split_overrides(again)
    assert (again.seeds, again.overrides, again.out) == ([3, 4], ["xlstm.num_blocks=2"], "x.md")
    bad = build_parser().parse_args(["rl", "benchmark", "--seeds", "one"])
    with pytest.raises(ValueError, match=r"--seeds takes integers, got \['one'\]"):
        split_overrides(bad)


def test_cli_runs_an_id_outside_the_config_and_writes_where_out_says(tmp_path):
    out = tmp_path / "one.md"
    main([
        "rl", "benchmark", "--config", "configs/rl/pomdp.yaml", "--envs", "popgym-RepeatFirstEasy-v0",
        "--seeds", "0", "+defaults.total_timesteps=64", "+defaults.n_envs=2", "+defaults.n_steps=32",
        "+defaults.batch_size=32", "+defaults.n_epochs=1", "+defaults.eval_episodes=1", "xlstm.embedding_dim=8",
        "--algorithms", "xlstm_ppo", "--out", str(out), "--no-track",
    ])  # fmt: skip
    markdown = out.read_text()
    assert "| popgym-RepeatFirstEasy-v0 | XLSTMPPO (xLSTM) | 1 | 64 |" in markdown
    assert "random policy (1 episodes)" in markdown and (tmp_path / "one_learning_curves.png").exists()
    data = json.loads((tmp_path / "one.json").read_text())
    assert [r["algorithm"] for r in data["results"]] == ["xlstm_ppo"]
    assert set(data["random_returns"]) == {"popgym-RepeatFirstEasy-v0"}


def test_random_policy_return_is_seeded_and_in_range():
    budget = BenchmarkEnv(env_id="popgym-RepeatFirstEasy-v0", eval_episodes=3)
    first = random_policy_return(budget)
    assert first == random_policy_return(budget) and -1.0 <= first <= 1.0


def test_return_ranges_and_normalisation():
    assert return_range("popgym-PositionOnlyCartPoleEasy-v0") == (0.0, 1.0)
    assert return_range("popgym-RepeatFirstHard-v0") == (-1.0, 1.0)
    assert return_range("CartPoleNoVel-v1") is None and return_range("popgym-LabyrinthEscapeEasy-v0") is None
    assert return_range("popgym-BattleshipEasy-v0") == (-64 / 52, 1.0)
    assert return_range("popgym-BattleshipHard-v0") == (-144 / 132, 1.0)
    assert task_name("popgym-VelocityOnlyCartpoleEasy-v0") == "VelocityOnlyCartpoleEasy"
    assert normalised(0.5, 0.0, 1.0) == 0.0 and normalised(1.0, 0.0, 1.0) == 1.0 and normalised(-1, -1, 1) == -1
    with pytest.raises(ValueError, match="high > low"):
        normalised(0.0, 1.0, 1.0)


def _row(env_id, algorithm, per_seed, sps=100.0, seeds=None):
    import numpy as np

    return dict(env_id=env_id, algorithm=algorithm, seeds=seeds or list(range(len(per_seed))), per_seed=per_seed,
                return_mean=float(np.mean(per_seed)), return_std=float(np.std(per_seed)), sps_mean=sps)  # fmt: skip


def test_aggregate_is_the_mean_of_normalised_returns_with_the_spread_over_seeds():
    rows = [
        _row("popgym-PositionOnlyCartPoleEasy-v0", "xlstm_ppo", [1.0, 0.5]),  # normalised 1.0, 0.0
        _row("popgym-RepeatFirstEasy-v0", "xlstm_ppo", [0.0, -0.5]),  # normalised as is
        _row("CartPoleNoVel-v1", "xlstm_ppo", [500.0, 20.0]),  # no known range: left out
        _row("popgym-RepeatFirstEasy-v0", "recurrent_ppo", [0.2, 0.2]),
    ]
    total = aggregate(rows, "xlstm_ppo")
    assert total["tasks"] == 2 and total["seeds"] == [0, 1]
    assert total["mean"] == pytest.approx((0.5 + -0.25) / 2)
    assert total["std"] == pytest.approx(0.375)  # per-seed aggregates 0.5 and -0.25
    assert aggregate(rows, "recurrent_ppo")["mean"] == pytest.approx(0.2)
    assert aggregate(rows, "ppo_memoryless") is None


def test_verdict_calls_differences_within_the_spread_a_tie():
    ours = _row("t", "xlstm_ppo", [0.5, 0.7])  # 0.6 ± 0.1
    assert verdict(ours, _row("t", "recurrent_ppo", [0.55, 0.55])) == "tie"
    assert verdict(ours, _row("t", "recurrent_ppo", [0.4, 0.4])) == "ahead"
    assert verdict(ours, _row("t", "recurrent_ppo", [0.8, 0.9])) == "behind"
    assert verdict(_row("t", "a", [1.0, 1.0]), _row("t", "b", [1.0, 1.0])) == "tie"
    assert verdict(_row("t", "a", [1.0]), _row("t", "b", [0.0])) == "one seed"


def test_the_aggregate_target_says_whether_the_difference_is_beyond_the_seeds_spread():
    task = "popgym-RepeatFirstEasy-v0"  # returns in [-1, 1]: normalised as they are

    def aggregate_line(ours, theirs):
        rows = [_row(task, "xlstm_ppo", ours), _row(task, "recurrent_ppo", theirs)]
        return next(line for line in suite_lines(rows) if "aggregate above" in line)

    assert aggregate_line([0.5, 0.8], [0.55, 0.55]).endswith(
        ": met (0.650 vs 0.550; a tie: the difference is within the seeds' spread of 0.150)."
    )
    assert aggregate_line([0.9, 1.0], [0.1, 0.2]).endswith(": met (0.950 vs 0.150; beyond the seeds' spread of 0.050).")
    assert aggregate_line([0.1, 0.2], [0.9, 1.0]).endswith(
        ": NOT met (0.150 vs 0.950; beyond the seeds' spread of 0.050)."
    )
    assert aggregate_line([0.9], [0.1]).endswith(": met (0.900 vs 0.100).")  # one seed: no spread to judge by


def test_suite_lines_judge_the_suite_targets():
    tasks = ["popgym-RepeatFirstEasy-v0", "popgym-AutoencodeEasy-v0", "popgym-PositionOnlyCartPoleEasy-v0"]
    rows = [
        _row(tasks[0], "xlstm_ppo", [0.9, 1.0], sps=900.0),
        _row(tasks[0], "recurrent_ppo", [0.1, 0.2], sps=300.0),
        _row(tasks[1], "xlstm_ppo", [-0.5, -0.4], sps=900.0),
        _row(tasks[1], "recurrent_ppo", [-0.45, -0.45], sps=200.0),
        _row(tasks[2], "xlstm_ppo", [0.55, 0.55], sps=900.0),
        _row(tasks[2], "recurrent_ppo", [1.0, 1.0], sps=100.0),
    ]  # fmt: skip
    text = "\n".join(suite_lines(rows, {tasks[0]: -0.5}))
    assert "| RepeatFirstEasy | 0.950 ± 0.050 | 0.150 ± 0.050 | -0.500 | ahead | 3.00x |" in text
    assert "| AutoencodeEasy | -0.450 ± 0.050 | -0.450 ± 0.000 | not run | tie | 4.50x |" in text
    assert "| PositionOnlyCartPoleEasy | 0.100 ± 0.000 | 1.000 ± 0.000 | not run | behind | 9.00x |" in text
    assert "aggregate above RecurrentPPO's: NOT met (0.200 vs 0.233" in text
    assert "level or ahead on every task: NOT met (1 behind of 3)" in text
    assert "ahead on at least half the tasks: NOT met (1 of 3)" in text
    assert "Throughput >= 3x RecurrentPPO's on every task: met (lowest 3.00x)" in text
    assert suite_lines([_row("CartPoleNoVel-v1", "xlstm_ppo", [500.0])]) == []


def test_parallel_jobs_give_every_run_in_grid_order(tmp_path, monkeypatch):
    from xlstm_seq.config import xLSTMConfig
    from xlstm_seq_bench.rl.benchmark import run_benchmark

    tiny = dict(total_timesteps=64, n_envs=2, n_steps=32, batch_size=32, n_epochs=1, eval_episodes=1)
    config = RLBenchmarkConfig(
        algorithms=["xlstm_ppo", "ppo_memoryless"],
        seeds=[0, 1],
        envs=[BenchmarkEnv(env_id="CartPoleNoVel-v1", **tiny)],
        xlstm=xLSTMConfig(embedding_dim=8, num_blocks=1, num_heads=2),
        jobs=2,
        out=str(tmp_path / "par.md"),
    )
    rows = run_benchmark(config, out=lambda line: None)
    assert [(r["algorithm"], r["seeds"]) for r in rows] == [("xlstm_ppo", [0, 1]), ("ppo_memoryless", [0, 1])]
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        RLBenchmarkConfig(jobs=0)


def test_compare_ranks_labels_by_their_aggregate(tmp_path):
    def results_file(name, seed, value):
        path = tmp_path / f"{name}_seed{seed}.json"
        run = dict(algorithm="xlstm_ppo", env_id="popgym-RepeatFirstEasy-v0", seed=seed, eval_mean=value, eval_std=0.0,
                   train_seconds=1.0, steps_per_second=100.0, curve=[[1, 0.0]], run_id=None)  # fmt: skip
        data = dict(results=[run], random_returns={"popgym-RepeatFirstEasy-v0": -0.5},
                    provenance=[f"Written by `{name} {seed}`."])  # fmt: skip
        path.write_text(json.dumps(data))
        return f"{name}={path}"

    sources = [results_file("low", 10, -0.5), results_file("high", 10, 0.5), results_file("high", 11, 0.7)]
    out = tmp_path / "cmp.md"
    main(["rl", "compare", *sources, "--out", str(out), "--title", "Candidates"])
    page = out.read_text()
    assert page.startswith("# Candidates") and "| RepeatFirstEasy | -0.500 | 0.600 | -0.500 |" in page
    assert page.index("| high | 0.600 ± 0.100 | 1 | 10, 11 | 0.600 ± 0.100 |") < page.index(
        "| low | -0.500 (one seed) |"
    )
    assert "- high: Written by `high 11`." in page  # no source report beside the JSON: no link
    (tmp_path / "high_seed11.md").write_text("# the source report\n")
    main(["rl", "compare", *sources, "--out", str(out), "--title", "Candidates"])
    assert "- high ([high_seed11.md](high_seed11.md)): Written by `high 11`." in out.read_text()
    with pytest.raises(ValueError, match="label=results.json"):
        main(["rl", "compare", str(tmp_path / "x.json"), "--out", str(out)])


def test_resume_takes_finished_runs_with_the_same_settings_only(tmp_path):
    from xlstm_seq.config import xLSTMConfig
    from xlstm_seq_bench.rl.benchmark import run_benchmark

    tiny = dict(total_timesteps=64, n_envs=2, n_steps=32, batch_size=32, n_epochs=1, eval_episodes=1)
    config = RLBenchmarkConfig(
        algorithms=["ppo_memoryless"], seeds=[0], envs=[BenchmarkEnv(env_id="CartPoleNoVel-v1", **tiny)],
        xlstm=xLSTMConfig(embedding_dim=8, num_blocks=1, num_heads=2), out=str(tmp_path / "r.md"),
    )  # fmt: skip
    run_benchmark(config, track=False, out=lambda line: None)
    first = json.loads((tmp_path / "r.json").read_text())["results"][0]
    lines: list[str] = []
    run_benchmark(config.replace(seeds=[0, 1]), track=False, out=lines.append, resume=True)
    assert "resuming: 1 of 2 runs taken from" in "\n".join(lines)
    data = json.loads((tmp_path / "r.json").read_text())
    assert [r["seed"] for r in data["results"]] == [0, 1] and data["results"][0] == first
    assert (
        "1 of 2 runs were taken, with the same settings, from the results of earlier runs"
        in (tmp_path / "r.md").read_text()
    )
    # another command's results (its own out) feed a third one
    elsewhere = config.replace(seeds=[2], out=str(tmp_path / "other.md"))
    run_benchmark(elsewhere, track=False, out=lambda line: None)
    lines.clear()
    merged = config.replace(seeds=[0, 1, 2], out=str(tmp_path / "merged.md"))
    run_benchmark(
        merged, track=False, out=lines.append, resume_from=[str(tmp_path / "r.json"), str(tmp_path / "other.json")]
    )
    assert "resuming: 3 of 3 runs taken from" in "\n".join(lines)
    assert [r["seed"] for r in json.loads((tmp_path / "merged.json").read_text())["results"]] == [0, 1, 2]
    with pytest.raises(FileNotFoundError, match="nope.json does not exist"):
        run_benchmark(merged, track=False, out=lines.append, resume_from=[str(tmp_path / "nope.json")])
    longer = config.replace(envs=[BenchmarkEnv(env_id="CartPoleNoVel-v1", **{**tiny, "total_timesteps": 96})])
    lines.clear()
    run_benchmark(longer, track=False, out=lines.append, resume=True)
    assert not any(line.startswith("resuming") for line in lines)  # other settings: trained again


@pytest.mark.parametrize(
    "env_id",
    ["popgym-CountRecallEasy-v0", "popgym-HigherLowerEasy-v0", "popgym-BattleshipEasy-v0",
     "popgym-MineSweeperEasy-v0"],
)  # fmt: skip
def test_return_ranges_of_the_tasks_kept_aside_hold_what_the_environments_pay(env_id):
    """Episodes of the random policy and of a policy repeating one action (the worst play of the square-picking
    tasks: one square shot or viewed again and again) return inside the table's range; repeating one Battleship
    square that misses returns its lowest value exactly."""
    import gymnasium as gym
    import numpy as np

    pytest.importorskip("popgym")
    from xlstm_seq.rl.envs import make_env

    low, high = return_range(env_id)
    env = make_env(env_id)
    returns = []
    for episode in range(6):
        _, _ = env.reset(seed=episode)
        repeat = episode % 2 == 1
        action = env.action_space.sample() if repeat else None
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(action if repeat else env.action_space.sample())
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    assert all(low - 1e-9 <= r <= high + 1e-9 for r in returns), (returns, (low, high))
    if "Battleship" in env_id:
        base = gym.make(env_id).unwrapped
        base.reset(seed=0)
        empty = np.argwhere(base.board == 0)[0]
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = base.step(empty)
            total, done = total + reward, terminated or truncated
        assert total == pytest.approx(low)
