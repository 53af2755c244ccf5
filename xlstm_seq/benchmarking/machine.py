"""What the benchmark reports say about the machine they ran on: CPU model, visible cores, load average, the
versions of packages."""

from __future__ import annotations

import importlib.metadata
import os
import platform


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def visible_cores() -> int:
    """Cores this process may run on (its affinity mask), which can be fewer than the machine has."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average(sep: str = "/", digits: int = 2) -> str:
    """The 1/5/15-minute load averages, or "n/a" where the OS has none."""
    try:
        return sep.join(f"{x:.{digits}f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def others_were_busy(threads: int) -> bool:
    """Whether the 1-minute load average shows work beyond the run's own ``threads`` busy threads (so its times
    were measured under load); False where the OS has no load average."""
    try:
        return os.getloadavg()[0] > threads + 0.5
    except (AttributeError, OSError):
        return False


def package_version(dist: str) -> str:
    """The installed version of distribution ``dist``, or "not installed"."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def git_revision(short: int = 7) -> str:
    """The checkout's commit for a report, abbreviated, with " (uncommitted changes)" when tracked files differ;
    ``XLSTM_SEQ_REVISION`` where a copy without .git (a lent GPU machine, benchmarks/gpu/device_checks.sh) sets it."""
    from xlstm_seq.tracking.run_info import git_info

    if os.environ.get("XLSTM_SEQ_REVISION"):
        return os.environ["XLSTM_SEQ_REVISION"]

    info = git_info()
    sha = info.get("git.sha", "unknown")
    if sha != "unknown":
        sha = sha[:short]
    return sha + (" (uncommitted changes)" if info.get("git.dirty") == "true" else "")
