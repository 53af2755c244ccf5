"""What makes a run reproducible: git revision, package versions, device, host, command, date and load.

Two readers: MLflow, which gets them as run tags (:func:`run_info_tags`, added to every tracked run), and
report writers, which print them above their tables (:class:`Provenance`: ``.markdown()`` for the header,
``.tags()`` for the run). Nothing here raises: a missing git, an unreadable checkout or an absent package
becomes ``"unknown"`` or is left out. Versions come from ``importlib.metadata`` so that no heavy package is
imported just to read its version.
"""

from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import logging
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

__all__ = [
    "Provenance",
    "cpu_model",
    "device_tags",
    "git_info",
    "git_revision",
    "load_average",
    "others_were_busy",
    "package_version",
    "package_versions",
    "run_info_tags",
    "visible_cores",
]

# Set where a copy without .git runs (a GPU machine that received the working tree): the revision it was made from.
REVISION_ENV = "XLSTM_SEQ_REVISION"

logger = logging.getLogger(__name__)

# Always reported ("not installed" when absent); the optional ones only when installed.
_REQUIRED_PACKAGES = ("torch", "numpy", "mlflow", "xlstm-seq")
_OPTIONAL_PACKAGES = ("triton", "gymnasium", "stable-baselines3", "sb3-contrib", "pandas")


def _checkout_root() -> Path:
    """The folder that holds the ``xlstm_seq`` package (the repository root for a checkout)."""
    return Path(__file__).resolve().parents[2]


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _sha_from_git_dir(root: Path) -> str | None:
    """Reads HEAD from ``root/.git`` without the git executable (loose or packed refs)."""
    git_dir = root / ".git"
    try:
        if git_dir.is_file():
            # A worktree or submodule: ".git" is a file "gitdir: <path>".
            git_dir = (root / git_dir.read_text().split(":", 1)[1].strip()).resolve()
        head = (git_dir / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None
        ref = head.split(":", 1)[1].strip()
        # Worktrees keep their refs in the common dir.
        common = git_dir
        if (git_dir / "commondir").is_file():
            common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
        for base in (git_dir, common):
            if (base / ref).is_file():
                return (base / ref).read_text().strip() or None
        packed = common / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref:
                    return parts[0]
    except (OSError, IndexError, ValueError):
        return None
    return None


@functools.lru_cache(maxsize=1)
def git_info() -> dict[str, str]:
    """The git commit of the xlstm-seq checkout this package was imported from.

    Returns:
        ``{"git.sha": sha, "git.dirty": "true"/"false"}``, or ``{"git.sha": "unknown"}`` when the
        package is not a git checkout (e.g. installed from a wheel) or git cannot be read.
    """
    root = _checkout_root()
    if not (root / ".git").exists():
        # An installed package: an enclosing repository (e.g. a project holding the venv) is not ours.
        return {"git.sha": "unknown"}
    sha = _git(["rev-parse", "HEAD"], root)
    if sha is None:
        sha = _sha_from_git_dir(root)
        return {"git.sha": sha or "unknown"}
    info = {"git.sha": sha}
    status = _git(["status", "--porcelain", "--untracked-files=no"], root)
    if status is not None:
        info["git.dirty"] = "true" if status else "false"
    return info


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Versions of python and the packages a run depends on, as ``{"version.<name>": version}``.

    torch, numpy, mlflow and xlstm_seq are always present (``"not installed"`` when missing);
    triton, gymnasium, stable_baselines3, sb3_contrib and pandas only when installed.
    """
    versions = {"version.python": platform.python_version()}
    for dist in _REQUIRED_PACKAGES + _OPTIONAL_PACKAGES:
        version = _version(dist)
        if version is None and dist == "xlstm-seq":
            from xlstm_seq import __version__ as version
        if version is None and dist in _OPTIONAL_PACKAGES:
            continue
        versions[f"version.{dist.replace('-', '_')}"] = version or "not installed"
    return versions


def device_tags() -> dict[str, str]:
    """The device a run uses: ``device`` is ``"cpu"`` or the CUDA device name.

    torch is imported here (a run that trains has imported it anyway); any failure gives ``"cpu"``.
    """
    tags = {"device": "cpu", "device.cpu_count": str(visible_cores())}
    try:
        import torch

        tags["device.torch_threads"] = str(torch.get_num_threads())
        if torch.cuda.is_available():
            index = torch.cuda.current_device()
            tags["device"] = torch.cuda.get_device_name(index)
            tags["device.count"] = str(torch.cuda.device_count())
            tags["device.cuda"] = str(torch.version.cuda)
    except Exception as err:  # a broken CUDA setup must not stop a run
        logger.debug("device detection failed: %s", err)
    return tags


def run_info_tags() -> dict[str, str]:
    """All default tags of a run: git SHA, package versions, device, hostname and command line."""
    tags: dict[str, str] = {}
    tags.update(git_info())
    tags.update(package_versions())
    tags.update(device_tags())
    tags["hostname"] = socket.gethostname()
    tags["platform"] = platform.platform()
    tags["command"] = _command_line()
    return tags


def _command_line() -> str:
    return " ".join([Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]])


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
    return _version(dist) or "not installed"


def git_revision(short: int = 7) -> str:
    """The checkout's commit, abbreviated, with " (uncommitted changes)" when tracked files differ;
    ``XLSTM_SEQ_REVISION`` where a copy without .git (a GPU machine that received the working tree) sets it."""
    if os.environ.get(REVISION_ENV):
        return os.environ[REVISION_ENV]
    info = git_info()
    sha = info.get("git.sha", "unknown")
    if sha != "unknown":
        sha = sha[:short]
    return sha + (" (uncommitted changes)" if info.get("git.dirty") == "true" else "")


def _device_description(threads: int | None) -> str:
    """The CUDA device's name where torch sees one, else the CPU model with its cores and threads."""
    try:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(torch.cuda.current_device())
            return f"{props.name} ({props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs)"
        threads = threads or torch.get_num_threads()
    except Exception as err:  # a broken CUDA setup must not stop a report
        logger.debug("device detection failed: %s", err)
    cpu = f"{cpu_model()} (CPU, {visible_cores()} cores visible"
    return cpu + (f", {threads} thread{'s' if threads > 1 else ''})" if threads else ")")


_CORE_PACKAGES = ("torch", "numpy", "xlstm-seq")


@dataclass(frozen=True)
class Provenance:
    """Where, when, how and from which code a result was made: the header of every report and its run's tags.

    Take it with :meth:`capture` when the run starts (so edits made during a long run do not change the
    revision), and call :meth:`finish` at the end to record the load average then.

    Example::

        provenance = Provenance.capture("xlstm-seq rl benchmark --config configs/rl/cartpole.yaml",
                                        packages=("stable-baselines3", "sb3-contrib"), threads=1)
        ...  # the run
        lines = provenance.finish().markdown()  # header lines of the report
        tracker.set_tags(provenance.tags())
    """

    command: str
    """The command line that reproduces the result."""
    revision: str
    """The git commit (abbreviated), with " (uncommitted changes)" where tracked files differed."""
    started: str
    """When the run started, ``YYYY-MM-DD HH:MM UTC``."""
    device: str
    """The CUDA device's name and memory, or the CPU model, visible cores and threads."""
    host: str
    """The machine's host name."""
    versions: dict[str, str] = field(default_factory=dict)
    """python, torch, numpy, xlstm-seq and the packages asked for, by distribution name."""
    threads: int | None = None
    """The threads the run itself keeps busy (compared with the load average)."""
    load_start: str = "n/a"
    """1/5/15-minute load averages when the run started."""
    load_end: str | None = None
    """The same at the end (set by :meth:`finish`)."""

    @classmethod
    def capture(cls, command: str | None = None, *, packages: Iterable[str] = (), threads: int | None = None,
                device: str | None = None) -> Provenance:  # fmt: skip
        """The provenance of a run starting now.

        Args:
            command: The reproducing command line. Default: this process's command line.
            packages: Distributions whose versions the report names beside the core ones (peers, triton, ...).
            threads: Threads the run keeps busy; with it the header says whether other jobs shared the cores.
            device: A description of the device; default: the CUDA device torch sees, else the CPU.
        """
        names = dict.fromkeys([*_CORE_PACKAGES, *packages])
        versions = {"python": platform.python_version(), **{name: package_version(name) for name in names}}
        return cls(
            command=command or _command_line(),
            revision=git_revision(),
            started=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            device=device or _device_description(threads),
            host=socket.gethostname() or "unknown",
            versions=versions,
            threads=threads,
            load_start=load_average(),
        )

    def finish(self) -> Provenance:
        """A copy with the load average at the end of the run."""
        return replace(self, load_end=load_average())

    @property
    def under_load(self) -> bool:
        """Whether the 1-minute load average at the end (at the start before :meth:`finish`) shows work beyond the
        run's own ``threads``: its times were measured under load. False where threads or the load are unknown."""
        load = self.load_end if self.load_end is not None else self.load_start
        try:
            one_minute = float(load.split("/")[0])
        except ValueError:  # "n/a": the OS keeps no load average
            return False
        return self.threads is not None and one_minute > self.threads + 0.5

    def tags(self) -> dict[str, str]:
        """MLflow tags (``provenance.*``) for the run that made the report."""
        tags = {
            "provenance.command": self.command,
            "provenance.revision": self.revision,
            "provenance.started": self.started,
            "provenance.device": self.device,
            "provenance.host": self.host,
            "provenance.load_start": self.load_start,
            **{f"provenance.version.{name}": version for name, version in self.versions.items()},
        }
        if self.threads is not None:
            tags["provenance.threads"] = str(self.threads)
        if self.load_end is not None:
            tags["provenance.load_end"] = self.load_end
        return tags

    def markdown(self, notes: Iterable[str] = ()) -> list[str]:
        """The report's header lines (markdown): the command, then one bullet each for date and revision, device,
        versions and load, then ``notes`` as further bullets."""
        versions = ", ".join(f"{name} {version}" for name, version in self.versions.items())
        load = f"load average at the start {self.load_start}"
        if self.load_end is not None:
            load += f", at the end {self.load_end}"
        if self.under_load:
            load += " (other jobs shared the cores: times are under load)"
        return [
            f"Written by `{self.command}`.",
            "",
            f"- date: {self.started}; git {self.revision}",
            f"- device: {self.device}; host {self.host}",
            f"- versions: {versions}",
            f"- {load}",
            *[f"- {note}" for note in notes],
        ]
