"""A tiny text corpus in the data root's layout, which the LM tests and the LM benchmark tests share (tests/ is on the
import path: pytest puts the root conftest's folder there)."""

from __future__ import annotations

import json
import lzma
from collections.abc import Sequence
from pathlib import Path

import pytest

from xlstm_seq.data import data_root


def tiny_corpus_root(tmp_path: Path, links: Sequence[str] = ("gpt2_bpe",)) -> Path:
    """A data root under ``tmp_path`` with a small synthetic Wikipedia and Gutenberg corpus, and links to the
    folders ``links`` of the real data root (the GPT-2 BPE files, evaluation sets); skips the test when the real
    root lacks one of them."""
    real = data_root()
    missing = [name for name in links if not (real / name).is_dir()]
    if missing:
        pytest.skip(f"{missing} not in the data root {real}")
    root = tmp_path / "data"
    (root / "enwiki_corpus").mkdir(parents=True)
    lines = []
    for i in range(40):
        body = f"The river {i} flows to the sea. " * 20
        lines += [f'<doc id="{i}" url="u" title="T{i}">', f"T{i}", "", body, "</doc>"]
    with lzma.open(root / "enwiki_corpus" / "enwiki_part_AA.txt.xz", "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    (root / "gutenberg_corpus").mkdir()
    with lzma.open(root / "gutenberg_corpus" / "books.jsonl.xz", "wt", encoding="utf-8") as f:
        text = "*** START OF THE PROJECT GUTENBERG EBOOK X ***\n" + "Call me Ishmael. " * 300 + "\n*** END OF THE"
        f.write(json.dumps({"pg_ebook_id": 1, "text": text}) + "\n")
    for name in links:
        (root / name).symlink_to(real / name)
    return root
