"""The docs site builds with ``mkdocs build --strict`` (no warning passes), and its Python examples run."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
# The package of its extra that an application's page needs; the core pages need none.
NEEDS = {"forecasting.md": "pandas", "rl.md": "stable_baselines3", "lm.md": "safetensors"}


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed (the docs extra)")
def test_the_site_builds_strict_without_warnings(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    assert not re.search(r"^(WARNING|ERROR)\b", log, flags=re.M), log[-5000:]
    site = tmp_path / "site"
    for page in ("index.html", "install/index.html", "core/index.html", "forecasting/index.html",
                 "api/forecasting/index.html", "api/kernels/index.html"):  # fmt: skip
        assert (site / page).is_file(), page
    # The API reference found the mapped subpackages (kernels/, forecasting/, ... live outside xlstm_seq/).
    reference = (site / "api/forecasting/index.html").read_text()
    assert 'id="xlstm_seq.forecasting.XLSTMForecaster"' in reference
    assert 'id="xlstm_seq.kernels.mlstm.mlstm"' in (site / "api/kernels/index.html").read_text()


def test_every_page_in_the_nav_exists_and_every_page_is_in_the_nav():
    yaml = pytest.importorskip("yaml")

    class _Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml may hold !!python tags; only the nav is read here.
    _Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    nav = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=_Loader)["nav"]

    def pages(entries) -> list[str]:
        found = []
        for entry in entries:
            for value in entry.values() if isinstance(entry, dict) else [entry]:
                found += pages(value) if isinstance(value, list) else [value]
        return found

    listed = set(pages(nav))
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert listed == on_disk


@pytest.mark.parametrize(
    "page", sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if _python_blocks(p))
)
def test_the_python_examples_of_a_page_run(page, tmp_path, monkeypatch, one_torch_thread):
    if page in NEEDS:
        pytest.importorskip(NEEDS[page])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("XLSTM_SEQ_DATA", str(tmp_path / "empty_data_root"))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for index, block in enumerate(_python_blocks(DOCS / page)):
        exec(compile(block, f"docs/{page} python block {index}", "exec"), namespace)  # noqa: S102
