"""MkDocs hook: lays the xlstm_seq import root out as one folder tree for the API reference.

setuptools maps the top-level folders kernels/, forecasting/, rl/ and lm/ into ``xlstm_seq`` (pyproject's
``package-dir``), so the source tree has no ``xlstm_seq/forecasting`` folder for griffe (mkdocstrings' loader) to
find. Before the build this hook writes, in a temporary folder, the layout an installed wheel has: a folder
``xlstm_seq`` of links to every entry of xlstm_seq/ plus one link per mapped folder, and points mkdocstrings'
Python handler at it. The folder goes when the build (or ``mkdocs serve``) ends.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "xlstm_seq"

_staging: Path | None = None


def package_dirs() -> dict[str, Path]:
    """Subpackages of xlstm_seq kept outside xlstm_seq/ (pyproject's [tool.setuptools] package-dir)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    prefix = PACKAGE + "."
    return {name[len(prefix) :]: ROOT / folder for name, folder in mapping.items() if name.startswith(prefix)}


# Before the plugins' own on_config (priority 0), so that mkdocstrings starts with the path set here.
@event_priority(100)
def on_config(config, **kwargs):
    global _staging
    _staging = Path(tempfile.mkdtemp(prefix="xlstm_seq_docs_api_"))
    package = _staging / PACKAGE
    package.mkdir()
    for entry in (ROOT / PACKAGE).iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in package_dirs().items():
        (package / name).symlink_to(folder, target_is_directory=True)
    python = config.plugins["mkdocstrings"].config["handlers"].setdefault("python", {})
    python["paths"] = [str(_staging)]
    return config


def on_shutdown(**kwargs):
    if _staging is not None:
        shutil.rmtree(_staging, ignore_errors=True)
