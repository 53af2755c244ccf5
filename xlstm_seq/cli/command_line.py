"""Helpers of the command handlers: the command line that reproduces a parsed invocation (the benchmark files
record it beside their numbers), the options of commands that keep their runs in a results JSON, and the check that
the benchmark suite is installed before a benchmark command imports it."""

from __future__ import annotations

import argparse
import importlib.util
import shlex
from collections.abc import Sequence

#: The distribution that holds the benchmark runners and report writers (import root ``xlstm_seq_bench``).
BENCH_DISTRIBUTION = "xlstm-seq-bench"
#: How to install it from a checkout of the repository.
BENCH_INSTALL = "pip install -e ./bench"


def require_bench(command: str) -> None:
    """Exits with what to install when the benchmark suite (``xlstm_seq_bench``) is absent.

    The library never installs its benchmarks; a benchmark command calls this before its lazy import, so that a
    user without the suite reads one line naming the package instead of a traceback.

    Args:
        command: The command as typed after ``xlstm-seq`` (e.g. ``"rl benchmark"``), for the message.

    Raises:
        SystemExit: ``xlstm_seq_bench`` cannot be imported.
    """
    if importlib.util.find_spec("xlstm_seq_bench") is None:
        raise SystemExit(
            f"xlstm-seq {command}: needs the benchmark suite ({BENCH_DISTRIBUTION}), which is not installed; "
            f"from a checkout of the repository: {BENCH_INSTALL}"
        )


def reproducing_command(words: Sequence[str], args: argparse.Namespace, options: Sequence[str] = ()) -> str:
    """``words`` (program and subcommand), ``--config`` and the overrides, then every option of ``options`` that
    was given (a list option's values after its flag; a switch such as ``no_track`` alone when on), quoted for a
    POSIX shell so that `shlex.split` and the parser read back the same arguments.

    The overrides come straight after ``--config``: after a list option (``nargs="+"``) argparse would read them
    as more of its values.
    """
    parts = [*words]
    if getattr(args, "config", None):
        parts += ["--config", args.config]
    parts += getattr(args, "overrides", [])
    for name in options:
        value = getattr(args, name)
        flag = "--" + name.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            parts.append(flag)
        elif isinstance(value, list):
            parts += [flag, *map(str, value)]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def add_resume_options(parser: argparse.ArgumentParser, results_file: str) -> None:
    """``--resume`` and ``--resume-from`` for a command that keeps every finished run in a results JSON.

    Args:
        parser: The command's parser.
        results_file: Where the command's own results JSON is, for the help text (e.g. "beside --out").
    """
    parser.add_argument(
        "--resume", action="store_true", help=f"take the runs that the results JSON {results_file} already holds "
        "with the same settings (an interrupted grid goes on)"
    )  # fmt: skip
    parser.add_argument(
        "--resume-from", nargs="+", help="more results JSON files to take finished runs from (same settings only), "
        "e.g. seeds run side by side by separate commands"
    )  # fmt: skip
