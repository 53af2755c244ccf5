"""What makes a run reproducible, as tags: git SHA, package versions, device, hostname.

Nothing here raises: a missing git, an unreadable checkout or an absent package becomes
``"unknown"`` or is left out. Versions come from ``importlib.metadata`` so that no heavy package
is imported just to read its version.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import platform
import socket
import subprocess
import sys
from pathlib import Path

__all__ = ["git_info", "package_versions", "device_tags", "run_info_tags"]

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
    tags = {"device": "cpu", "device.cpu_count": str(_cpu_count())}
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


def _cpu_count() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run_info_tags() -> dict[str, str]:
    """All default tags of a run: git SHA, package versions, device, hostname and command line."""
    tags: dict[str, str] = {}
    tags.update(git_info())
    tags.update(package_versions())
    tags.update(device_tags())
    tags["hostname"] = socket.gethostname()
    tags["platform"] = platform.platform()
    tags["command"] = " ".join([Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]])
    return tags
