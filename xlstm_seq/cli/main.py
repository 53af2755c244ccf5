"""The `xlstm-seq` command: one entry point, a subcommand group per part.

Applications are imported lazily inside their commands, so `xlstm-seq --help` stays fast and the core
never imports an application at import time. A group is listed only once it does something real.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from pathlib import Path

from xlstm_seq.config_io import ConfigError

# Which config dataclass each command reads with --config; every YAML under configs/ names its command
# in its first line, and a test loads each file through this table.
CONFIG_CLASSES = {
    "demo": "xlstm_seq.demo:DemoConfig",
}

# Each application adds its group from its own small module here (argparse only at import time; the
# application itself is imported inside the command). A module exposes `add_commands(groups)` and
# `CONFIG_CLASSES` ({"rl train": "xlstm_seq.rl.train:RLTrainConfig", ...}; a benchmark command's class lives in
# the benchmark suite, xlstm_seq_bench). A part whose module does not exist yet is simply not listed.
GROUP_MODULES = (
    "xlstm_seq.cli.forecast",
    "xlstm_seq.cli.rl",
    "xlstm_seq.cli.synthetic",
    "xlstm_seq.cli.lm",
)


def _group_modules() -> list:
    return [importlib.import_module(name) for name in GROUP_MODULES if importlib.util.find_spec(name) is not None]


def _all_config_classes() -> dict[str, str]:
    table = dict(CONFIG_CLASSES)
    for module in _group_modules():
        table.update(module.CONFIG_CLASSES)
    return table


def config_class_for_command(command: str) -> type:
    """The config dataclass read by ``xlstm-seq <command> --config``.

    Raises:
        ValueError: no command of that name reads a config.
        SystemExit: the class belongs to the benchmark suite, which is not installed (the message says what to
            install).
    """
    table = _all_config_classes()
    if command not in table:
        raise ValueError(f"no command {command!r} reads a config; known: {sorted(table)}")
    module, _, name = table[command].partition(":")
    if module.startswith("xlstm_seq_bench."):
        from xlstm_seq.cli.command_line import require_bench

        require_bench(command)
    return getattr(importlib.import_module(module), name)


# The steps of `xlstm-seq demo` after the core tour: (name, module, function), each run with track= and out=.
DEMO_STEPS = {
    "forecast": ("xlstm_seq.forecasting.demo", "forecast_demo"),
    "rl": ("xlstm_seq.rl.train", "rl_demo"),
}


def available_demo_parts() -> list[str]:
    """ "core" plus every application whose demo module is installed."""
    parts = ["core"]
    for name, (module, _) in DEMO_STEPS.items():
        if importlib.util.find_spec(module) is not None:
            parts.append(name)
    return parts


def _demo(args: argparse.Namespace) -> int:
    from xlstm_seq.config_io import apply_overrides, load_yaml
    from xlstm_seq.demo import DemoConfig, run_demo

    known = available_demo_parts()
    parts = known if args.parts is None else [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(known))
    if unknown:
        raise SystemExit(f"demo --parts: unknown part(s) {unknown}; available: {','.join(known)}")
    if "core" not in parts and (args.config or args.steps is not None or args.overrides):
        # They set the core step alone; silently running the other parts on their defaults would mislead.
        raise SystemExit(
            f"demo: --config, --steps and key=value overrides set the core step, which --parts {','.join(parts)} "
            f"leaves out; the forecasting step takes its own: xlstm-seq forecast demo --config ... key=value"
        )
    if "core" in parts:
        data = load_yaml(args.config) if args.config else DemoConfig().to_dict()
        config = DemoConfig.from_dict(apply_overrides(data, args.overrides))
        if args.steps is not None:
            config = config.replace(steps=args.steps)
        print("== core: an xLSTM stack on ETTh1 ==")
        run_demo(config, track=not args.no_track)
    for name in parts:
        if name == "core":
            continue
        module, function = DEMO_STEPS[name]
        print(f"\n== {name} ==")
        getattr(importlib.import_module(module), function)(track=not args.no_track)
    return 0


def _kernels_bench(args: argparse.Namespace) -> int:
    from xlstm_seq.cli.command_line import reproducing_command, require_bench

    require_bench("kernels bench")
    options = ("op", "device", "out", "chunk_sizes", "providers", "quick", "no_track")
    command = reproducing_command(["xlstm-seq", "kernels", "bench"], args, options)
    if args.op == "core":
        if args.device != "cpu":
            raise ConfigError(
                f"kernels bench --op core --device {args.device}: the core benchmark measures the CPU reference; "
                "use --op mlstm or --op slstm for the GPU kernels"
            )
        from xlstm_seq_bench.kernels.core_cpu import DEFAULT_OUT, run_core_cpu_benchmark

        out = Path(args.out) if args.out else DEFAULT_OUT
        print(run_core_cpu_benchmark(out, quick=args.quick, track=not args.no_track, threads=args.threads))
        return 0
    if args.op == "core_profile":
        if args.device != "cpu":
            raise ConfigError(f"kernels bench --op core_profile --device {args.device}: the profile is of the CPU path")
        from xlstm_seq_bench.kernels.core_cpu_profile import DEFAULT_OUT as PROFILE_OUT
        from xlstm_seq_bench.kernels.core_cpu_profile import run_core_cpu_profile

        out = Path(args.out) if args.out else PROFILE_OUT
        print(run_core_cpu_profile(out, quick=args.quick, threads=args.threads or 1, track=not args.no_track))
        return 0
    if args.op == "mlstm":
        from xlstm_seq_bench.kernels.mlstm_gpu import DEFAULT_OUT, PROVIDER_KEYS, run_mlstm_benchmark

        chunks = tuple(int(c) for c in args.chunk_sizes.split(",")) if args.chunk_sizes else (64, 128)
        text = run_mlstm_benchmark(
            Path(args.out) if args.out else DEFAULT_OUT,
            device=args.device,
            quick=args.quick,
            chunk_sizes=chunks,
            command=command,
            providers=tuple(args.providers.split(",")) if args.providers else PROVIDER_KEYS,
            track=not args.no_track,
        )
    else:
        from xlstm_seq_bench.kernels.slstm_gpu import DEFAULT_OUT, run_slstm_benchmark

        text = run_slstm_benchmark(
            Path(args.out) if args.out else DEFAULT_OUT,
            device=args.device,
            quick=args.quick,
            command=command,
            track=not args.no_track,
        )
    print(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xlstm-seq", description="xLSTM for time series, RL and language modelling.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    groups = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = groups.add_parser("demo", help="a short tour of the core on a real series, tracked in MLflow")
    demo.add_argument("--config", help="YAML file (default: built-in settings, see configs/demo.yaml)")
    demo.add_argument("--steps", type=int, help="training steps (overrides the config)")
    demo.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    demo.add_argument(
        "--parts", help="comma-separated steps to run: core (the stack on ETTh1), forecast, rl (default: all)"
    )
    demo.add_argument("overrides", nargs="*", help="dotted overrides such as model.num_blocks=4")
    demo.set_defaults(func=_demo)

    kernels = groups.add_parser("kernels", help="kernel benchmarks").add_subparsers(
        dest="kernels_command", required=True, metavar="SUBCOMMAND"
    )
    bench = kernels.add_parser("bench", help="benchmark the kernels and the stack; writes a markdown table")
    bench.add_argument(
        "--op",
        choices=["core", "core_profile", "mlstm", "slstm"],
        default="core",
        help="core: the CPU reference kernels and the stack (default); core_profile: where the CPU stack's "
        "forward+backward spends its time (benchmarks/kernels/core_cpu_profile.md); mlstm / slstm: the GPU kernels "
        "against their peers (benchmarks/kernels/mlstm_gpu.md, slstm_gpu.md)",
    )
    bench.add_argument("--device", default="cpu", help="device to benchmark (default: cpu; cuda for --op mlstm/slstm)")
    bench.add_argument(
        "--out", help="markdown file to write (default: benchmarks/kernels/core_cpu.md, mlstm_gpu.md or slstm_gpu.md)"
    )
    bench.add_argument(
        "--providers",
        help="--op mlstm: comma-separated subset of ours,reference,sdpa,xl_chunk_siging,limit_chunk,xl_chunk",
    )
    bench.add_argument("--chunk-sizes", help="--op mlstm: comma-separated Triton chunk sizes (default: 64,128)")
    bench.add_argument(
        "--threads", type=int, help="--op core: torch threads (default: the visible cores; 1 on a shared machine)"
    )
    bench.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run, not for reporting)")
    bench.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    bench.set_defaults(func=_kernels_bench)

    for module in _group_modules():
        module.add_commands(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    return args.func(args)


# The library's user errors: a bad setting or value (ConfigError, a ValueError, and the ValueErrors the library's
# checks raise with the reason), a config file that is not valid YAML (ConfigError, naming file and line), a missing
# file (FileNotFoundError, naming it). Anything else is a fault of the program and keeps its traceback.
USER_ERRORS = (ConfigError, ValueError, FileNotFoundError)


def console(argv: list[str] | None = None) -> int:
    """The installed `xlstm-seq` command: :func:`main`, with bad settings, bad config files and missing files
    reported as one line on stderr (exit status 2, as argparse does for bad arguments) instead of a traceback;
    ``--verbose`` keeps the traceback."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        return main(argv)
    except USER_ERRORS as err:
        if "-v" in argv or "--verbose" in argv:
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"xlstm-seq: error: {message} (run with --verbose for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(console())
