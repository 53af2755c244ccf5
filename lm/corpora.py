"""Pre-training text sources as streams of documents: the Wikipedia and Gutenberg corpora of the data root,
or FineWeb-Edu through Hugging Face ``datasets`` when the machine is online.

Every source yields ``Document(key, text)``; ``key`` is stable across runs (it decides the validation split).

    docs = open_sources(["enwiki", "gutenberg"])      # round-robin over the sources, deterministic order
"""

from __future__ import annotations

import json
import lzma
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple, TextIO

from xlstm_seq.data import DATA_ENV, data_root

SOURCES = ("enwiki", "gutenberg", "fineweb-edu")
"""Names accepted by ``open_sources``."""

_DOC_OPEN = re.compile(r'^<doc id="([^"]*)"[^>]*>\s*$')
# Project Gutenberg body markers: the modern "*** START OF ..." line (or the old "*END*THE SMALL PRINT" one),
# and the first of "End of the Project Gutenberg EBook ..." / "*** END OF ..." after it.
_PG_START = re.compile(
    r"^\s*\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG.*$|^\*END\*THE SMALL PRINT.*$", re.I | re.M
)
_PG_END = re.compile(
    r"^\s*\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG|^\s*End of (?:the )?Project Gutenberg", re.I | re.M
)


class Document(NamedTuple):
    """One document of a corpus: a stable key (source and id) and its plain text."""

    key: str
    text: str


def _open_text(path: Path) -> TextIO:
    if path.suffix == ".xz":
        return lzma.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def parse_wikiextractor(lines: Iterable[str], prefix: str = "enwiki") -> Iterator[Document]:
    """Documents of WikiExtractor output: ``<doc id=...>``, title line, paragraphs, ``</doc>``; tags removed.

    Articles whose body is empty after the title line are skipped (stubs and redirects).
    """
    doc_id, body = None, []
    for line in lines:
        if doc_id is None:
            match = _DOC_OPEN.match(line)
            if match:
                doc_id, body = match.group(1), []
            continue
        if line.strip() == "</doc>":
            paragraphs = [p.rstrip() for p in body]
            # The first line repeats the title; keep it only when the article has more than that.
            if any(p.strip() for p in paragraphs[1:]):
                yield Document(f"{prefix}:{doc_id}", "\n".join(paragraphs).strip())
            doc_id = None
            continue
        body.append(line.rstrip("\n"))


def strip_gutenberg(text: str) -> str:
    """The body of a Project Gutenberg book: text between the START and END markers, licence removed.

    Raises:
        ValueError: the START or END marker is missing (the text is not a PG book as distributed).
    """
    start = _PG_START.search(text)
    if start is None:
        raise ValueError("no Project Gutenberg START marker ('*** START OF THE/THIS PROJECT GUTENBERG ...') found")
    end = _PG_END.search(text, start.end())
    if end is None:
        raise ValueError("no Project Gutenberg END marker ('*** END OF ...' or 'End of the Project Gutenberg') found")
    return text[start.end() : end.start()].strip()


def enwiki_documents(root: Path | None = None) -> Iterator[Document]:
    """Articles of every ``enwiki_corpus/*.txt[.xz]`` file under the data root, in file-name order."""
    folder = (root or data_root()) / "enwiki_corpus"
    paths = sorted(folder.glob("*.txt.xz")) + sorted(folder.glob("*.txt"))
    if not paths:
        raise FileNotFoundError(
            f"no Wikipedia corpus: expected {folder}/enwiki*.txt.xz (WikiExtractor format) under the data root "
            f"(${DATA_ENV})"
        )
    for path in paths:
        with _open_text(path) as f:
            yield from parse_wikiextractor(f, prefix=f"enwiki/{path.name.split('.')[0]}")


def gutenberg_documents(root: Path | None = None) -> Iterator[Document]:
    """Books of every ``gutenberg_corpus/*.jsonl[.xz]`` file (one record per book, field ``text``), header and
    licence stripped; a book without the PG markers is kept whole."""
    folder = (root or data_root()) / "gutenberg_corpus"
    paths = sorted(folder.glob("*.jsonl.xz")) + sorted(folder.glob("*.jsonl"))
    if not paths:
        raise FileNotFoundError(
            f"no Gutenberg corpus: expected {folder}/*.jsonl.xz (one JSON record per book with a 'text' field) "
            f"under the data root (${DATA_ENV})"
        )
    for path in paths:
        with _open_text(path) as f:
            for line_no, line in enumerate(f):
                if not line.strip():
                    continue
                record = json.loads(line)
                text = record["text"]
                try:
                    text = strip_gutenberg(text)
                except ValueError:
                    text = text.strip()
                book = record.get("pg_ebook_id") or record.get("source_path") or line_no
                if text:
                    yield Document(f"gutenberg:{book}", text)


def fineweb_edu_documents(name: str = "sample-10BT") -> Iterator[Document]:
    """FineWeb-Edu streamed from the Hugging Face Hub (needs the ``datasets`` package and network access).

    Raises:
        RuntimeError: ``datasets`` is missing or the Hub cannot be reached; the message says what to use offline.
    """
    offline_hint = "offline, use the sources 'enwiki' and 'gutenberg' from the data root instead"
    try:
        import datasets
    except ImportError as err:
        raise RuntimeError(
            f"source 'fineweb-edu' streams from the Hugging Face Hub and needs the 'datasets' package "
            f"(pip install datasets) and network access; {offline_hint}"
        ) from err
    try:
        stream = datasets.load_dataset("HuggingFaceFW/fineweb-edu", name=name, split="train", streaming=True)
        for row in stream:
            yield Document(f"fineweb-edu:{row['id']}", row["text"])
    except (ConnectionError, OSError) as err:
        raise RuntimeError(
            f"source 'fineweb-edu' could not reach the Hugging Face Hub ({err}); {offline_hint}"
        ) from err


def open_source(name: str, root: Path | None = None) -> Iterator[Document]:
    """The documents of one source (see ``SOURCES``)."""
    if name == "enwiki":
        return enwiki_documents(root)
    if name == "gutenberg":
        return gutenberg_documents(root)
    if name == "fineweb-edu":
        return fineweb_edu_documents()
    raise ValueError(f"unknown text source {name!r}; valid sources: {list(SOURCES)}")


def interleave(streams: list[Iterator[Document]]) -> Iterator[Document]:
    """Merges document streams so that each has given about the same amount of text so far.

    The next document comes from the stream with the fewest characters emitted (ties: the earlier stream),
    so a corpus of short articles and one of long books contribute alike to every prefix of the result.
    The order is deterministic.
    """
    pending = [next(stream, None) for stream in streams]
    emitted = [0] * len(streams)
    while any(doc is not None for doc in pending):
        i = min((k for k, doc in enumerate(pending) if doc is not None), key=lambda k: emitted[k])
        doc = pending[i]
        yield doc
        emitted[i] += len(doc.text)
        pending[i] = next(streams[i], None)


def open_sources(names: list[str], root: Path | None = None) -> Iterator[Document]:
    """Documents of several sources, interleaved by text volume (see ``interleave``)."""
    if not names:
        raise ValueError(f"give at least one text source; valid sources: {list(SOURCES)}")
    streams = [open_source(name, root) for name in names]
    # Open (and so check) every file before the first document is read.
    primed = []
    for stream in streams:
        first = next(stream, None)
        primed.append(_chain_first(first, stream))
    return interleave(primed)


def _chain_first(first: Document | None, rest: Iterator[Document]) -> Iterator[Document]:
    if first is not None:
        yield first
        yield from rest
