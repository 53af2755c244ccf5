"""The command line that reproduces a parsed invocation: the benchmark files record it beside their numbers."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence


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
