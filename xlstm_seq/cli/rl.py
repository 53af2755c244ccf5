"""The `xlstm-seq rl` command group: `benchmark` and `train`. Only argparse at import time; the RL code
(stable-baselines3, gymnasium) is imported inside the handlers, and `benchmark` runs the benchmark suite
(xlstm_seq_bench.rl), which the library itself never imports."""

from __future__ import annotations

import argparse

from xlstm_seq.cli.command_line import reproducing_command, require_bench

CONFIG_CLASSES = {
    "rl benchmark": "xlstm_seq_bench.rl.config:RLBenchmarkConfig",
    "rl train": "xlstm_seq.rl.train:RLTrainConfig",
}


def _load(config_class, path: str | None, overrides: list[str]):
    from xlstm_seq.config_io import apply_overrides, load_yaml

    data = load_yaml(path) if path else config_class().to_dict()
    return config_class.from_dict(apply_overrides(data, overrides))


def _benchmark(args: argparse.Namespace) -> int:
    require_bench("rl benchmark")
    from xlstm_seq_bench.rl.benchmark import RLBenchmarkConfig, run_benchmark

    config = _load(RLBenchmarkConfig, args.config, args.overrides)
    not_run = {}
    if args.envs:
        known = [e.env_id for e in config.envs]
        missing = sorted(set(args.envs) - set(known))
        if missing:
            raise SystemExit(f"--envs {missing} not in the config; it has {known}")
        not_run = {e: "left out with --envs" for e in known if e not in args.envs}
        config = config.replace(envs=[e for e in config.envs if e.env_id in args.envs])
    if args.seeds:
        config = config.replace(seeds=args.seeds)
    if args.algorithms:
        config = config.replace(algorithms=args.algorithms)
    command = benchmark_command(args)
    run_benchmark(config, track=not args.no_track, command=command, not_run=not_run)
    return 0


def benchmark_command(args: argparse.Namespace) -> str:
    """The command line that reproduces ``args`` (written into the markdown), quoted for a POSIX shell."""
    options = ("envs", "seeds", "algorithms", "no_track")
    return reproducing_command(["xlstm-seq", "rl", "benchmark"], args, options=options)


def _train(args: argparse.Namespace) -> int:
    from xlstm_seq.rl.train import RLTrainConfig, run_train

    config = _load(RLTrainConfig, args.config, args.overrides)
    run_train(config, track=not args.no_track)
    return 0


def add_commands(groups) -> None:
    """Adds the `rl` group to the top-level subparsers."""
    rl = groups.add_parser("rl", help="recurrent xLSTM agents for stable-baselines3").add_subparsers(
        dest="rl_command", required=True, metavar="SUBCOMMAND"
    )
    bench = rl.add_parser("benchmark", help="XLSTMPPO vs RecurrentPPO vs PPO on POMDPs; writes benchmarks/rl/pomdp.md")
    bench.add_argument("--config", default="configs/rl/pomdp.yaml", help="YAML file (default: %(default)s)")
    bench.add_argument("--envs", nargs="+", help="run only these env ids of the config")
    bench.add_argument("--seeds", nargs="+", type=int, help="run only these seeds")
    bench.add_argument("--algorithms", nargs="+", choices=["xlstm_ppo", "recurrent_ppo", "ppo_framestack"])
    bench.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    bench.add_argument("overrides", nargs="*", help="dotted overrides such as xlstm.num_blocks=2")
    bench.set_defaults(func=_benchmark)

    train = rl.add_parser("train", help="train XLSTMPPO on one environment, tracked; saves the model")
    train.add_argument("--config", default="configs/rl/train_cartpole.yaml", help="YAML file (default: %(default)s)")
    train.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    train.add_argument("overrides", nargs="*", help="dotted overrides such as total_timesteps=10000")
    train.set_defaults(func=_train)
