"""`xlstm-seq synthetic ...`: the synthetic-task benchmark. Only argparse at import time; the commands run the
benchmark suite (xlstm_seq_bench.synthetic), which the library itself never imports."""

from __future__ import annotations

import argparse

from xlstm_seq.cli.command_line import reproducing_command, require_bench

CONFIG_CLASSES = {
    "synthetic benchmark": "xlstm_seq_bench.synthetic.benchmark:SyntheticBenchmarkConfig",
    "synthetic report": "xlstm_seq_bench.synthetic.benchmark:SyntheticBenchmarkConfig",
}


def _benchmark(args: argparse.Namespace) -> int:
    require_bench("synthetic benchmark")
    from xlstm_seq.config_io import apply_overrides, load_yaml
    from xlstm_seq_bench.synthetic.benchmark import SyntheticBenchmarkConfig, run_benchmark

    data = load_yaml(args.config) if args.config else SyntheticBenchmarkConfig().to_dict()
    config = SyntheticBenchmarkConfig.from_dict(apply_overrides(data, args.overrides))
    changes = {k: v for k, v in (("out", args.out), ("plot", args.plot), ("workers", args.workers)) if v is not None}
    if changes:
        config = config.replace(**changes)
    options = ("out", "plot", "workers", "no_track")
    command = reproducing_command(["xlstm-seq", "synthetic", "benchmark"], args, options=options)
    run_benchmark(config, track=not args.no_track, command=command)
    return 0


def _report(args: argparse.Namespace) -> int:
    require_bench("synthetic report")
    from xlstm_seq.config_io import apply_overrides, load_yaml
    from xlstm_seq_bench.synthetic.benchmark import SyntheticBenchmarkConfig, render_report

    data = load_yaml(args.config) if args.config else SyntheticBenchmarkConfig().to_dict()
    config = SyntheticBenchmarkConfig.from_dict(apply_overrides(data, args.overrides))
    changes = {k: v for k, v in (("out", args.out), ("plot", args.plot)) if v is not None}
    if changes:
        config = config.replace(**changes)
    command = reproducing_command(["xlstm-seq", "synthetic", "report"], args, options=("out", "plot", "tracking_uri"))
    render_report(config, tracking_uri=args.tracking_uri, command=command)
    return 0


def add_commands(groups) -> None:
    """Adds the `synthetic` group to the top-level subparsers."""
    synthetic = groups.add_parser(
        "synthetic", help="synthetic tasks: parity, modular arithmetic, MQAR, nearest-neighbour search"
    ).add_subparsers(dest="synthetic_command", required=True, metavar="SUBCOMMAND")
    bench = synthetic.add_parser(
        "benchmark",
        help="train every model on every task and seed, test at longer lengths; writes markdown, a plot and MLflow",
    )
    bench.add_argument("--config", help="YAML file (default: built-in settings, see configs/synthetic/default.yaml)")
    bench.add_argument("--out", help="markdown file to write (overrides the config's out)")
    bench.add_argument("--plot", help="PNG plot to write (overrides the config's plot)")
    bench.add_argument("--workers", type=int, help="worker processes (overrides the config)")
    bench.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    bench.add_argument("overrides", nargs="*", help="dotted overrides such as train.steps=200 seeds=[0]")
    bench.set_defaults(func=_benchmark)

    report = synthetic.add_parser(
        "report", help="write the markdown and plot again from the benchmark's MLflow runs (no training)"
    )
    report.add_argument("--config", help="the YAML the benchmark ran with")
    report.add_argument("--out", help="markdown file to write (overrides the config's out)")
    report.add_argument("--plot", help="PNG plot to write (overrides the config's plot)")
    report.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, else ./mlflow.db)")
    report.add_argument("overrides", nargs="*", help="dotted overrides the benchmark ran with")
    report.set_defaults(func=_report)
