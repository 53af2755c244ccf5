"""The `xlstm-seq rl` command group: `benchmark`, `compare` and `train`. Only argparse at import time; the RL code
(stable-baselines3, gymnasium) is imported inside the handlers, and `benchmark` runs the benchmark suite
(xlstm_seq_bench.rl), which the library itself never imports."""

from __future__ import annotations

import argparse

from xlstm_seq.cli.command_line import add_resume_options, reproducing_command, require_bench

CONFIG_CLASSES = {
    "rl benchmark": "xlstm_seq_bench.rl.config:RLBenchmarkConfig",
    "rl train": "xlstm_seq.rl.train:RLTrainConfig",
}


def _load(config_class, path: str | None, overrides: list[str]):
    from xlstm_seq.config_io import apply_overrides, load_yaml

    data = load_yaml(path) if path else config_class().to_dict()
    return config_class.from_dict(apply_overrides(data, overrides))


def split_overrides(
    args: argparse.Namespace, options: tuple[str, ...] = ("envs", "seeds", "algorithms", "resume_from")
) -> None:
    """Moves the dotted overrides (``key=value``) that argparse read as values of a list option (they came after
    ``--seeds 1 2``, say) to ``args.overrides``, in place; then reads the seeds as integers."""
    moved: list[str] = []
    for name in options:
        values = getattr(args, name)
        if values:
            moved += [v for v in values if "=" in v]
            setattr(args, name, [v for v in values if "=" not in v] or None)
    args.overrides = [*moved, *args.overrides]
    if args.seeds:
        bad = [s for s in args.seeds if not s.lstrip("-").isdigit()]
        if bad:
            raise ValueError(f"--seeds takes integers, got {bad}")
        args.seeds = [int(s) for s in args.seeds]


def _benchmark(args: argparse.Namespace) -> int:
    require_bench("rl benchmark")
    from xlstm_seq_bench.rl.benchmark import RLBenchmarkConfig, run_benchmark, select_envs

    split_overrides(args)
    config = _load(RLBenchmarkConfig, args.config, args.overrides)
    not_run = {}
    if args.envs:
        config, not_run = select_envs(config, args.envs)
    if args.seeds:
        config = config.replace(seeds=args.seeds)
    if args.algorithms:
        config = config.replace(algorithms=args.algorithms)  # the config checks the names
    if args.out:
        config = config.replace(out=args.out)
    command = benchmark_command(args)
    run_benchmark(
        config, track=not args.no_track, command=command, not_run=not_run, resume=args.resume,
        resume_from=args.resume_from,
    )  # fmt: skip
    return 0


def benchmark_command(args: argparse.Namespace) -> str:
    """The command line that reproduces ``args`` (written into the markdown), quoted for a POSIX shell."""
    options = ("envs", "seeds", "algorithms", "out", "resume", "resume_from", "no_track")
    return reproducing_command(["xlstm-seq", "rl", "benchmark"], args, options=options)


def _compare(args: argparse.Namespace) -> int:
    require_bench("rl compare")
    from xlstm_seq_bench.rl.compare import run_compare

    command = reproducing_command(["xlstm-seq", "rl", "compare"], args, options=("out", "title"))
    command = " ".join([command, *args.sources])
    print(run_compare(args.sources, args.out, args.title, command))
    return 0


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
    bench = rl.add_parser("benchmark", help="XLSTMPPO vs RecurrentPPO vs PPO on POMDPs; writes the config's out")
    bench.add_argument("--config", default="configs/rl/pomdp.yaml", help="YAML file (default: %(default)s)")
    bench.add_argument(
        "--envs", nargs="+", help="run these ids: the config's entry if it has one, else the config's defaults "
        "(any gymnasium or POPGym id)"
    )  # fmt: skip
    bench.add_argument("--seeds", nargs="+", help="run these seeds (integers)")
    bench.add_argument(
        "--algorithms", nargs="+", help="xlstm_ppo, recurrent_ppo, ppo_framestack and/or ppo_memoryless"
    )  # fmt: skip
    bench.add_argument("--out", help="markdown report to write (the PNG and the results JSON go beside it)")
    add_resume_options(bench, "beside --out")
    bench.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    bench.add_argument("overrides", nargs="*", help="dotted overrides such as xlstm.num_blocks=2")
    bench.set_defaults(func=_benchmark)

    compare = rl.add_parser("compare", help="one page comparing several benchmark runs (their results JSON)")
    compare.add_argument("sources", nargs="+", help="label=results.json pairs; a label named twice merges its files")
    compare.add_argument("--out", required=True, help="markdown page to write")
    compare.add_argument("--title", default="RL benchmark runs compared", help="the page's heading")
    compare.set_defaults(func=_compare)

    train = rl.add_parser("train", help="train XLSTMPPO on one environment, tracked; saves the model")
    train.add_argument("--config", default="configs/rl/train_cartpole.yaml", help="YAML file (default: %(default)s)")
    train.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    train.add_argument("overrides", nargs="*", help="dotted overrides such as total_timesteps=10000")
    train.set_defaults(func=_train)
