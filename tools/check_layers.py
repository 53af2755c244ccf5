"""Checks the layer rule: runs import-linter's contracts (pyproject.toml, [tool.importlinter]) on the source tree.

The distributions map top-level folders into one import root (kernels/ -> xlstm_seq.kernels, bench/ ->
xlstm_seq_bench, ...), which import-linter cannot follow: it reads a package's modules from its folder. So the
check copies the Python files into a temporary tree laid out as they are installed and lints that.

    python tools/check_layers.py        # exit status 0 when every contract is kept
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
# (pyproject.toml, the folder its package-dir paths are relative to)
DISTRIBUTIONS = (REPO / "pyproject.toml", REPO / "bench" / "pyproject.toml")


def package_dirs() -> dict[str, Path]:
    """Import name -> source folder, from each distribution's ``[tool.setuptools] package-dir``."""
    mapping: dict[str, Path] = {}
    for pyproject in DISTRIBUTIONS:
        table = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-dir"]
        mapping.update({name: (pyproject.parent / folder).resolve() for name, folder in table.items()})
    return mapping


def stage_installed_layout(dest: Path) -> None:
    """Copies every package's .py files to ``dest/<import path>``; a package's own folder is copied without the
    folders that are mapped to other packages or hold no package (tests, caches)."""
    dirs = package_dirs()
    for name, folder in dirs.items():
        target = dest.joinpath(*name.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for source in folder.rglob("*.py"):
            relative = source.relative_to(folder)
            inside_other = any(
                other != folder and other.is_relative_to(folder) and source.is_relative_to(other)
                for other in dirs.values()
            )
            if inside_other or not all((folder / part).joinpath("__init__.py").exists()
                                       for part in _parents(relative)):  # fmt: skip
                continue
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)


def _parents(relative: Path) -> list[Path]:
    """The folders between a package folder and a file in it (each must be a package for the file to count)."""
    return [Path(*relative.parts[:n]) for n in range(1, len(relative.parts))]


def lint_staged(staged: Path, config: Path = REPO / "pyproject.toml") -> subprocess.CompletedProcess:
    """Runs ``lint-imports`` on a tree staged by :func:`stage_installed_layout`; returns the finished process
    (its stdout holds the report)."""
    linter = Path(sys.executable).with_name("lint-imports")
    command = [str(linter)] if linter.exists() else [sys.executable, "-m", "importlinter.cli"]
    return subprocess.run(
        [*command, str(config), "--no-cache", "--no-logo"],
        cwd=staged,
        # the staged copies come first on the path, ahead of the editable installs' finders
        env={**os.environ, "PYTHONPATH": str(staged)},
        capture_output=True,
        text=True,
        check=False,
    )


def lint_imports(config: Path = REPO / "pyproject.toml") -> subprocess.CompletedProcess:
    """Runs ``lint-imports`` on a staged copy of the tree as it is now."""
    with tempfile.TemporaryDirectory(prefix="xlstm-seq-layers-") as tmp:
        stage_installed_layout(Path(tmp))
        return lint_staged(Path(tmp), config)


if __name__ == "__main__":
    result = lint_imports()
    print(result.stdout + result.stderr)
    sys.exit(result.returncode)
