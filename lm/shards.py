"""Token shards: documents -> GPT-2 token ids in flat uint16 files with a JSON index, and back.

Layout of an output folder::

    index.json          sources, tokenizer, shard list per split, and the resume cursor
    train_000000.bin    uint16 token ids, <|endoftext|> before every document, ``shard_tokens`` each
    val_000000.bin      the held-out validation split (documents chosen by a hash of their key)

Writing is resumable: tokens are appended one commit group (``commit_every`` documents) at a time, then the
index records how many documents are done and how long each open shard is. After an interruption the
open shards are truncated to the recorded length and the stream skips the finished documents, so the
result is byte-identical to an uninterrupted run. Readers open the shards with ``np.memmap``.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from xlstm_seq.config import ConfigMixin
from xlstm_seq.lm.corpora import SOURCES, Document, open_sources
from xlstm_seq.lm.tokenizer import EOT_TOKEN, gpt2_tokenizer

log = logging.getLogger(__name__)

INDEX_NAME = "index.json"
SPLITS = ("train", "val")
TOKEN_DTYPE = np.uint16


@dataclass
class PrepareConfig(ConfigMixin):
    """Settings of ``xlstm-seq lm prepare``."""

    out_dir: str = "data/lm/enwiki-gutenberg"
    """Folder for the shards and index.json."""
    sources: list[str] = field(default_factory=lambda: ["enwiki", "gutenberg"])
    """Text sources, interleaved document by document: "enwiki", "gutenberg" (data root), "fineweb-edu" (online)."""
    val_fraction: float = 0.005
    """Share of documents held out for validation (chosen by a hash of the document key, not by order)."""
    shard_tokens: int = 100_000_000
    """Tokens per shard file (the last shard of a split is shorter)."""
    max_train_tokens: int | None = None
    """Stop once the train split holds at least this many tokens (None: use every document)."""
    commit_every: int = 512
    """Documents per commit group: the unit of progress saved for resuming."""
    num_threads: int = 2
    """tiktoken threads per batch."""

    def __post_init__(self) -> None:
        self.sources = list(self.sources)
        unknown = [s for s in self.sources if s not in SOURCES]
        if not self.sources or unknown:
            raise ValueError(f"sources must be a non-empty list from {list(SOURCES)}, got {self.sources}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        for name in ("shard_tokens", "commit_every", "num_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_train_tokens is not None and self.max_train_tokens < 1:
            raise ValueError(f"max_train_tokens must be >= 1 or None, got {self.max_train_tokens}")


def is_validation(key: str, val_fraction: float) -> bool:
    """Whether a document belongs to the validation split: a hash of its key, stable across runs and orders."""
    return zlib.crc32(key.encode("utf-8")) % 1_000_000 < val_fraction * 1_000_000


class _ShardWriter:
    """Appends tokens of one split to fixed-size shard files; ``state()`` is what the index records."""

    def __init__(self, out_dir: Path, split: str, shard_tokens: int, state: dict[str, Any] | None = None):
        self.out_dir, self.split, self.shard_tokens = out_dir, split, shard_tokens
        self.shards: list[dict[str, Any]] = [dict(s) for s in (state or {}).get("shards", [])]
        if not self.shards:
            self.shards.append({"file": self._name(0), "tokens": 0})
        # Whatever was written after the last commit is dropped: the stream writes it again.
        current = self.out_dir / self.shards[-1]["file"]
        with current.open("ab") as f:
            f.truncate(self.shards[-1]["tokens"] * np.dtype(TOKEN_DTYPE).itemsize)
        self._file = current.open("ab")

    def _name(self, i: int) -> str:
        return f"{self.split}_{i:06d}.bin"

    @property
    def num_tokens(self) -> int:
        return sum(s["tokens"] for s in self.shards)

    def write(self, tokens: np.ndarray) -> None:
        """Appends ``tokens`` (N,) uint16, opening new shards as each fills."""
        while tokens.size:
            room = self.shard_tokens - self.shards[-1]["tokens"]
            if room == 0:
                self._file.close()
                self.shards.append({"file": self._name(len(self.shards)), "tokens": 0})
                self._file = (self.out_dir / self.shards[-1]["file"]).open("wb")
                continue
            chunk, tokens = tokens[:room], tokens[room:]
            self._file.write(chunk.tobytes())
            self.shards[-1]["tokens"] += int(chunk.size)

    def flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def state(self) -> dict[str, Any]:
        return {"shards": [dict(s) for s in self.shards]}


def _write_index(out_dir: Path, index: dict[str, Any]) -> None:
    # Atomic replace: an interruption leaves either the old or the new index, never half of one.
    tmp = out_dir / (INDEX_NAME + ".tmp")
    tmp.write_text(json.dumps(index, indent=1))
    tmp.replace(out_dir / INDEX_NAME)


def _batches(docs: Iterator[Document], size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def write_token_shards(
    documents: Iterable[Document], config: PrepareConfig, *, progress: bool = True, encoding: Any = None
) -> dict[str, Any]:
    """Tokenizes ``documents`` into shards under ``config.out_dir``, resuming an unfinished run there.

    Args:
        documents: the full document stream (on resume it is read again and the finished documents skipped).
        config: the prepare settings; a resumed run must use the same ones.
        progress: show a tqdm bar.
        encoding: a tiktoken-like encoder (``encode_ordinary_batch``); None uses GPT-2's BPE.

    Returns:
        The final index (also written to ``out_dir/index.json``).

    Raises:
        ValueError: the folder holds a run with other settings.
    """
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = config.to_dict()
    settings.pop("num_threads")
    index_path = out_dir / INDEX_NAME
    index: dict[str, Any] = {}
    if index_path.is_file():
        index = json.loads(index_path.read_text())
        if index.get("settings") != settings:
            raise ValueError(
                f"{out_dir} holds shards made with other settings ({index.get('settings')}); "
                f"use a new out_dir or delete that folder (now: {settings})"
            )
        if index.get("complete"):
            log.info("%s is complete; nothing to do", out_dir)
            return index
    docs_done = int(index.get("docs_done", 0))
    enc = encoding if encoding is not None else gpt2_tokenizer()
    writers = {s: _ShardWriter(out_dir, s, config.shard_tokens, index.get("splits", {}).get(s)) for s in SPLITS}
    doc_iter = iter(documents)
    for _ in range(docs_done):
        if next(doc_iter, None) is None:
            raise ValueError(f"the document stream ended after fewer than the {docs_done} documents already done")
    bar = tqdm(total=None, initial=docs_done, unit="doc", disable=not progress, desc=f"prepare {out_dir.name}")
    try:
        for batch in _batches(doc_iter, config.commit_every):
            if config.max_train_tokens is not None and writers["train"].num_tokens >= config.max_train_tokens:
                break
            token_lists = enc.encode_ordinary_batch([d.text for d in batch], num_threads=config.num_threads)
            for doc, tokens in zip(batch, token_lists, strict=True):
                split = "val" if is_validation(doc.key, config.val_fraction) else "train"
                # <|endoftext|> before each document: every document starts from the same context.
                writers[split].write(np.asarray([EOT_TOKEN, *tokens], dtype=TOKEN_DTYPE))
            for writer in writers.values():
                writer.flush()
            docs_done += len(batch)
            index = _index(settings, docs_done, writers, complete=False)
            _write_index(out_dir, index)
            bar.update(len(batch))
            bar.set_postfix(train_tokens=writers["train"].num_tokens, val_tokens=writers["val"].num_tokens)
    finally:
        bar.close()
        for writer in writers.values():
            writer.close()
    index = _index(settings, docs_done, writers, complete=True)
    _write_index(out_dir, index)
    return index


def _index(settings: dict[str, Any], docs_done: int, writers: dict[str, _ShardWriter], complete: bool):
    return {
        "format": "xlstm-seq token shards v1",
        "dtype": np.dtype(TOKEN_DTYPE).name,
        "tokenizer": "gpt2",
        "eot_token": EOT_TOKEN,
        "settings": settings,
        "docs_done": docs_done,
        "complete": complete,
        "splits": {s: w.state() for s, w in writers.items()},
        "num_tokens": {s: w.num_tokens for s, w in writers.items()},
    }


def prepare(config: PrepareConfig, *, root: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """``xlstm-seq lm prepare``: the configured sources (from the data root ``root``) -> token shards."""
    return write_token_shards(open_sources(config.sources, root), config, progress=progress)


class TokenShards:
    """Read access to a shard folder: ``shards.split("train")`` -> list of uint16 memmaps."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        index_path = self.folder / INDEX_NAME
        if not index_path.is_file():
            raise FileNotFoundError(
                f"no token shards at {self.folder}: {INDEX_NAME} missing (run `xlstm-seq lm prepare`)"
            )
        self.index = json.loads(index_path.read_text())
        if not self.index.get("complete"):
            raise ValueError(f"the shards at {self.folder} are unfinished; rerun `xlstm-seq lm prepare` to resume")

    def split(self, name: str) -> list[np.memmap]:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return [
            np.memmap(self.folder / s["file"], dtype=TOKEN_DTYPE, mode="r", shape=(s["tokens"],))
            for s in self.index["splits"][name]["shards"]
            if s["tokens"] > 0
        ]

    def num_tokens(self, name: str) -> int:
        return int(self.index["num_tokens"][name])
