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
