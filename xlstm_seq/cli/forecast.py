"""The `xlstm-seq forecast` group: `benchmark` (long-horizon table) and `demo` (a short tracked fit).

Only argparse and the standard library are imported here; the forecasting package is imported inside the
handlers so that `xlstm-seq --help` stays fast.
"""

from __future__ import annotations

import argparse

CONFIG_CLASSES = {
    "forecast benchmark": "xlstm_seq.forecasting.benchmark:LongHorizonConfig",
    "forecast demo": "xlstm_seq.forecasting.demo:ForecastDemoConfig",
}


def _benchmark(args: argparse.Namespace) -> int:
    from xlstm_seq.config_io import apply_overrides, load_yaml
    from xlstm_seq.forecasting.benchmark import LongHorizonConfig, run_benchmark

    data = load_yaml(args.config) if args.config else LongHorizonConfig().to_dict()
    config = LongHorizonConfig.from_dict(apply_overrides(data, args.overrides))
    if args.out:
        config = config.replace(out=args.out)
    run_benchmark(config, track=not args.no_track)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from xlstm_seq.config_io import apply_overrides, load_yaml
    from xlstm_seq.forecasting.demo import ForecastDemoConfig, forecast_demo

    data = load_yaml(args.config) if args.config else ForecastDemoConfig().to_dict()
    forecast_demo(ForecastDemoConfig.from_dict(apply_overrides(data, args.overrides)), track=not args.no_track)
    return 0


def add_commands(groups) -> None:
    """Adds the `forecast` group to the top-level subparsers."""
    forecast = groups.add_parser("forecast", help="xLSTM forecasters on pandas frames: benchmark, demo")
    sub = forecast.add_subparsers(dest="forecast_command", required=True, metavar="SUBCOMMAND")

    bench = sub.add_parser("benchmark", help="long-horizon benchmark (ETTh1/2, ETTm1, Weather, ILI) -> markdown")
    bench.add_argument("--config", help="YAML file (see configs/forecasting/long_horizon.yaml)")
    bench.add_argument("--out", help="markdown file to write (overrides the config)")
    bench.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    bench.add_argument("overrides", nargs="*", help="dotted overrides such as datasets=[etth1] xlstm.max_steps=200")
    bench.set_defaults(func=_benchmark)

    demo = sub.add_parser("demo", help="fit, predict and plot on AirPassengers, tracked in MLflow")
    demo.add_argument("--config", help="YAML file (see configs/forecasting/demo.yaml)")
    demo.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    demo.add_argument("overrides", nargs="*", help="dotted overrides such as max_steps=100")
    demo.set_defaults(func=_demo)
