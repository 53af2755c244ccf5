"""benchmarks/ is curated: README.md indexes every page, every relative link in the pages resolves, and results live
in area folders (kernels/, forecasting/, rl/, lm/, synthetic/, archive/), never loose at the top."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
INDEX = BENCHMARKS / "README.md"
# [text](target) and ![alt](target); a target ends at whitespace (an optional "title") or the closing bracket.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def relative_links(page: Path) -> list[str]:
    """The link targets of a markdown page that point at files (no URLs, no in-page anchors)."""
    targets = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0].split("?", 1)[0])
    return [t for t in targets if t]


def broken_links(root: Path) -> list[str]:
    """'page -> target' for every relative link under root that names no existing file."""
    return [
        f"{page.relative_to(root)} -> {target}"
        for page in sorted(root.rglob("*.md"))
        for target in relative_links(page)
        if not (page.parent / target).resolve().is_file()
    ]


def unreachable_pages(root: Path) -> list[str]:
    """Pages under root that no chain of relative links from root/README.md reaches."""
    index = (root / "README.md").resolve()
    seen, todo = {index}, [index]
    while todo:
        page = todo.pop()
        for target in relative_links(page):
            linked = (page.parent / target).resolve()
            inside = linked.is_relative_to(root.resolve())
            if linked.suffix == ".md" and linked.is_file() and inside and linked not in seen:
                seen.add(linked)
                todo.append(linked)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.md") if p.resolve() not in seen)


def loose_files(root: Path) -> list[str]:
    """Files directly in root other than the index (dotfiles left out)."""
    return sorted(
        p.name for p in root.iterdir() if p.is_file() and p.name != "README.md" and not p.name.startswith(".")
    )


def test_the_index_exists():
    assert INDEX.is_file(), "benchmarks/README.md, the index of the results, is missing"


def test_every_page_is_reachable_from_the_index():
    unreachable = unreachable_pages(BENCHMARKS)
    assert not unreachable, (
        f"pages no link from benchmarks/README.md reaches (link them there or from a page it links): {unreachable}"
    )


def test_every_relative_link_in_the_pages_resolves():
    broken = broken_links(BENCHMARKS)
    assert not broken, f"links to files that do not exist: {broken}"


def test_no_result_sits_directly_in_benchmarks():
    loose = loose_files(BENCHMARKS)
    assert not loose, f"files directly in benchmarks/ (results go to an area folder or archive/): {loose}"


def test_the_checks_catch_a_broken_tree(tmp_path):
    # The helpers above on a small tree with each fault once, so that a check that passes everything fails here.
    (tmp_path / "area").mkdir()
    (tmp_path / "README.md").write_text("[a](area/a.md) ![plot](area/a.png) [web](https://example.org) [top](#top)\n")
    (tmp_path / "area" / "a.md").write_text("![plot](a.png) [gone](missing.md) [up](../README.md#x)\n")
    (tmp_path / "area" / "a.png").write_bytes(b"png")
    (tmp_path / "area" / "orphan.md").write_text("# nobody links here\n")
    (tmp_path / "loose.md").write_text("[back](README.md)\n")
    assert broken_links(tmp_path) == ["area/a.md -> missing.md"]
    assert unreachable_pages(tmp_path) == ["area/orphan.md", "loose.md"]
    assert loose_files(tmp_path) == ["loose.md"]


@pytest.mark.parametrize("page", ["README.md", "area/a.md"])
def test_relative_links_skip_urls_and_anchors(tmp_path, page):
    path = tmp_path / page
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('[x](https://a.b/c.md) [y](#here) [z](mailto:a@b) [w](w.md#part "title") ![v](<v.png>)\n')
    assert relative_links(path) == ["w.md", "v.png"]
