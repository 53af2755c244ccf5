"""The command line each benchmark records beside its numbers must read back to the arguments it ran with."""

from __future__ import annotations

import shlex

import pytest

from xlstm_seq.cli import forecast, rl
from xlstm_seq.cli.command_line import reproducing_command
from xlstm_seq.cli.main import build_parser

# argv of each benchmark command with every option it records, values that need quoting included.
INVOCATIONS = {
    "forecast": (forecast.benchmark_command, ["forecast", "benchmark", "--config", "c.yaml", "--out", "my file.md",
                                              "--no-track", "datasets=[etth1]", "xlstm.ema_decay=0.99"]),
    "rl": (rl.benchmark_command, ["rl", "benchmark", "--config", "c.yaml", "--seeds", "3", "4", "--algorithms",
                                  "xlstm_ppo", "--no-track", "--", "out=benchmarks/x y.md", "xlstm.num_blocks=2"]),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(INVOCATIONS))
def test_recorded_benchmark_command_parses_back_to_the_same_arguments(name):
    command_of, argv = INVOCATIONS[name]
    parser = build_parser()
    command = command_of(parser.parse_args(argv))
    words = shlex.split(command)
    assert words[:3] == ["xlstm-seq", *argv[:2]]
    assert vars(parser.parse_args(words[1:])) == vars(parser.parse_args(argv))


@pytest.mark.parametrize(
    "argv, options",
    [
        (["lm", "benchmark", "--config", "c.yaml", "--no-track", "rows=[a b]"], ("no_track",)),
        (["synthetic", "benchmark", "--workers", "2", "--plot", "p.png", "seeds=[0,1]"],
         ("out", "plot", "workers", "no_track")),
        (["synthetic", "report", "--config", "c.yaml", "--tracking-uri", "sqlite:///m.db", "seeds=[0]"],
         ("out", "plot", "tracking_uri")),
    ],
)  # fmt: skip
def test_reproducing_command_keeps_options_overrides_and_quoting(argv, options):
    parser = build_parser()
    args = parser.parse_args(argv)
    words = shlex.split(reproducing_command(["xlstm-seq", *argv[:2]], args, options=options))
    assert vars(parser.parse_args(words[1:])) == vars(args)


def test_the_forecast_benchmark_records_its_command_in_this_order():
    argv = ["forecast", "benchmark", "--config", "c.yaml", "--out", "my file.md", "--no-track", "datasets=[etth1]"]
    assert forecast.benchmark_command(build_parser().parse_args(argv)) == (
        "xlstm-seq forecast benchmark --config c.yaml 'datasets=[etth1]' --out 'my file.md' --no-track"
    )


def test_reproducing_command_leaves_out_options_not_given():
    args = build_parser().parse_args(["synthetic", "benchmark"])
    assert reproducing_command(["xlstm-seq", "synthetic", "benchmark"], args, ("out", "workers", "no_track")) == (
        "xlstm-seq synthetic benchmark"
    )


# Each benchmark command, with arguments that would run it; without the suite it must stop before anything runs.
BENCH_COMMANDS = (
    ["kernels", "bench", "--quick", "--no-track"],
    ["rl", "benchmark", "--no-track"],
    ["lm", "benchmark", "--no-track"],
    ["synthetic", "benchmark", "--no-track"],
    ["synthetic", "report"],
)


def test_benchmark_commands_without_the_suite_say_what_to_install():
    """Where xlstm_seq_bench is not installed (a library install without bench/), every benchmark command exits
    with one line naming the distribution and how to install it, not a traceback; the library commands still parse.
    """
    import subprocess
    import sys

    # sys.modules[name] = None makes `import xlstm_seq_bench` fail and find_spec return None, as when absent.
    code = (
        "import sys\n"
        "sys.modules['xlstm_seq_bench'] = None\n"
        "from xlstm_seq.cli.main import console\n"
        "sys.exit(console(sys.argv[1:]))\n"
    )
    for argv in BENCH_COMMANDS:
        proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, (argv, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr, (argv, proc.stderr)
        line = proc.stderr.strip()
        assert line == (
            f"xlstm-seq {' '.join(argv[:2])}: needs the benchmark suite (xlstm-seq-bench), which is not installed; "
            "from a checkout of the repository: pip install -e ./bench"
        ), (argv, line)
    help_proc = subprocess.run([sys.executable, "-c", code, "rl", "train", "--help"], capture_output=True, text=True)
    assert help_proc.returncode == 0 and "--config" in help_proc.stdout


def test_config_classes_of_benchmark_commands_live_in_the_suite():
    from xlstm_seq.cli.main import _all_config_classes, config_class_for_command

    table = _all_config_classes()
    for command in ("rl benchmark", "lm benchmark", "synthetic benchmark", "synthetic report"):
        assert table[command].startswith("xlstm_seq_bench."), command
        assert config_class_for_command(command).__module__.startswith("xlstm_seq_bench."), command
    for command in ("rl train", "lm prepare", "lm train", "lm eval"):
        assert table[command].startswith("xlstm_seq."), command
