"""The `xlstm-seq forecast` group: `benchmark` (long-horizon table), `m4` (M4 Hourly/Weekly), `airpassengers`
(side by side with neuralforecast and statsforecast) and `demo`.

Only argparse and the standard library are imported here; the forecasting package is imported inside the
handlers so that `xlstm-seq --help` stays fast. `benchmark`, `m4` and `airpassengers` run the benchmark suite
(xlstm_seq_bench.forecasting, the distribution in bench/), which the library itself never imports.
"""

from __future__ import annotations

import argparse

from xlstm_seq.cli.command_line import reproducing_command, require_bench

CONFIG_CLASSES = {
    "forecast benchmark": "xlstm_seq_bench.forecasting.long_horizon_config:LongHorizonConfig",
    "forecast demo": "xlstm_seq.forecasting.demo:ForecastDemoConfig",
    "forecast m4": "xlstm_seq_bench.forecasting.m4:M4Config",
    "forecast airpassengers": "xlstm_seq_bench.forecasting.air_passengers:AirPassengersConfig",
    "forecast auto": "xlstm_seq_bench.forecasting.auto_study:AutoStudyConfig",
    "forecast auto-earlier": "xlstm_seq_bench.forecasting.auto_earlier_check:EarlierCheckConfig",
    "forecast auto-summary": "xlstm_seq_bench.forecasting.auto_summary:AutoSummaryConfig",
    "forecast streaming": "xlstm_seq_bench.forecasting.streaming:StreamingConfig",
}


def _config(config_class: type, args: argparse.Namespace):
    """The command's config: the YAML (or the class defaults), then the dotted overrides, then --out if given."""
    from xlstm_seq.config_io import apply_overrides, load_yaml

    data = load_yaml(args.config) if args.config else config_class().to_dict()
    config = config_class.from_dict(apply_overrides(data, args.overrides))
    return config.replace(out=args.out) if getattr(args, "out", None) else config


def _benchmark(args: argparse.Namespace) -> int:
    require_bench("forecast benchmark")
    from xlstm_seq_bench.forecasting.long_horizon import run_benchmark
    from xlstm_seq_bench.forecasting.long_horizon_config import LongHorizonConfig

    run_benchmark(_config(LongHorizonConfig, args), track=not args.no_track, command=benchmark_command(args))
    return 0


def benchmark_command(args: argparse.Namespace) -> str:
    """The command line that reproduces ``args`` (written into the markdown), quoted for a POSIX shell."""
    return reproducing_command(["xlstm-seq", "forecast", "benchmark"], args, options=("out", "no_track"))


def _m4(args: argparse.Namespace) -> int:
    require_bench("forecast m4")
    from xlstm_seq_bench.forecasting.m4 import M4Config, run_m4

    run_m4(_config(M4Config, args), track=not args.no_track)
    return 0


def _air_passengers(args: argparse.Namespace) -> int:
    require_bench("forecast airpassengers")
    from xlstm_seq_bench.forecasting.air_passengers import AirPassengersConfig, run_air_passengers

    run_air_passengers(_config(AirPassengersConfig, args), track=not args.no_track)
    return 0


def _auto(args: argparse.Namespace) -> int:
    require_bench("forecast auto")
    from xlstm_seq_bench.forecasting.auto_study import AutoStudyConfig, run_auto_study

    command = reproducing_command(["xlstm-seq", "forecast", "auto"], args, options=("out", "no_track"))
    run_auto_study(_config(AutoStudyConfig, args), track=not args.no_track, command=command)
    return 0


def _auto_earlier(args: argparse.Namespace) -> int:
    require_bench("forecast auto-earlier")
    from xlstm_seq_bench.forecasting.auto_earlier_check import EarlierCheckConfig, run_earlier_check

    command = reproducing_command(["xlstm-seq", "forecast", "auto-earlier"], args, options=("out", "no_track"))
    run_earlier_check(_config(EarlierCheckConfig, args), track=not args.no_track, command=command)
    return 0


def _auto_summary(args: argparse.Namespace) -> int:
    require_bench("forecast auto-summary")
    from xlstm_seq_bench.forecasting.auto_summary import AutoSummaryConfig, write_summary

    command = reproducing_command(["xlstm-seq", "forecast", "auto-summary"], args, options=("out",))
    print(f"written {write_summary(_config(AutoSummaryConfig, args), command)}")
    return 0


def _streaming(args: argparse.Namespace) -> int:
    require_bench("forecast streaming")
    from xlstm_seq_bench.forecasting.streaming import StreamingConfig, run_streaming

    command = reproducing_command(["xlstm-seq", "forecast", "streaming"], args, options=("out", "no_track"))
    run_streaming(_config(StreamingConfig, args), track=not args.no_track, command=command)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from xlstm_seq.forecasting.demo import ForecastDemoConfig, forecast_demo

    forecast_demo(_config(ForecastDemoConfig, args), track=not args.no_track)
    return 0


def _add_config_command(sub, name: str, help: str, config: str, example: str, func, *, out: bool = True) -> None:
    """A subcommand that reads ``config`` (a YAML under configs/forecasting/), dotted overrides, --no-track and,
    for a command that writes a report, --out."""
    parser = sub.add_parser(name, help=help)
    parser.add_argument("--config", help=f"YAML file (see configs/forecasting/{config})")
    if out:
        parser.add_argument("--out", help="markdown file to write (overrides the config)")
    parser.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    parser.add_argument("overrides", nargs="*", help=f"dotted overrides such as {example}")
    parser.set_defaults(func=func)


def add_commands(groups) -> None:
    """Adds the `forecast` group to the top-level subparsers."""
    forecast = groups.add_parser(
        "forecast", help="xLSTM forecasters on pandas frames: benchmark, m4, airpassengers, demo"
    )
    sub = forecast.add_subparsers(dest="forecast_command", required=True, metavar="SUBCOMMAND")
    _add_config_command(sub, "benchmark", "long-horizon benchmark (ETTh1/2, ETTm1, Weather, ILI) -> markdown",
                        "long_horizon.yaml", "datasets=[etth1] xlstm.max_steps=200", _benchmark)  # fmt: skip
    _add_config_command(sub, "m4", "M4 Hourly/Weekly: a global model vs Naive2 (sMAPE, MASE, OWA) -> markdown",
                        "m4.yaml", "groups=[hourly] hourly.max_steps=100", _m4)  # fmt: skip
    _add_config_command(sub, "airpassengers", "AirPassengers: our backbones vs neuralforecast and statsforecast",
                        "air_passengers.yaml", "seeds=[1] peers=[nf_lstm]", _air_passengers)  # fmt: skip
    _add_config_command(sub, "auto", "auto mode vs the grid's defaults and hand-chosen cells; the guardrail study",
                        "auto.yaml", "cells=[[ili,24]] time_budget_s=300", _auto)  # fmt: skip
    _add_config_command(sub, "auto-earlier", "the earlier-period check on auto searches' choices (training data only)",
                        "auto_earlier_check.yaml", "out=benchmarks/forecasting/x.md", _auto_earlier)  # fmt: skip
    _add_config_command(sub, "auto-summary", "auto mode over every long-horizon cell on one page, from the auto pages",
                        "auto_all_cells.yaml", "out=benchmarks/forecasting/x.md", _auto_summary)  # fmt: skip
    _add_config_command(sub, "streaming", "the stateful forecaster streaming over the test split vs the windowed one",
                        "streaming.yaml", "cost_updates=50 seed=1", _streaming)  # fmt: skip
    _add_config_command(sub, "demo", "fit, predict and plot on AirPassengers, tracked in MLflow", "demo.yaml",
                        "max_steps=100", _demo, out=False)  # fmt: skip
