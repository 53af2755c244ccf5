"""`lm prepare`: corpus parsing, shards with separators and a validation split, exact resume."""

from __future__ import annotations

import json
import lzma
import sys
import types

import numpy as np
import pytest

from xlstm_seq.lm.corpora import open_sources, parse_wikiextractor, strip_gutenberg
from xlstm_seq.lm.shards import PrepareConfig, TokenShards, is_validation, prepare, write_token_shards
from xlstm_seq.lm.tokenizer import EOT_TOKEN, local_bpe_files

needs_bpe = pytest.mark.skipif(
    not all(p.is_file() for p in local_bpe_files()), reason="GPT-2 BPE files not in $XLSTM_SEQ_DATA/gpt2_bpe"
)

PG_BOOK = (
    "The Project Gutenberg EBook of Tiny, by Nobody\n\nThis eBook is for the use of anyone.\n\n"
    "*** START OF THIS PROJECT GUTENBERG EBOOK TINY ***\n\nChapter 1.\nIt was a small book.\n\n"
    "End of the Project Gutenberg EBook of Tiny\n\n*** END OF THIS PROJECT GUTENBERG EBOOK TINY ***\nLicence text."
)


class ByteEncoding:
    """A stand-in tokenizer (one token per UTF-8 byte) so shard logic tests need no BPE files."""

    def encode_ordinary_batch(self, texts, num_threads=1):
        return [list(t.encode("utf-8")) for t in texts]


def make_corpus(root, num_articles=60):
    wiki = root / "enwiki_corpus"
    wiki.mkdir(parents=True)
    lines = []
    for i in range(num_articles):
        lines += [f'<doc id="{i}" url="?curid={i}" title="Article {i}">', f"Article {i}", ""]
        lines += [f"Article {i} is about the number {i}. " * (1 + i % 5), "</doc>"]
    lines += ['<doc id="999" url="?curid=999" title="Stub">', "Stub", "", "</doc>"]  # empty body: skipped
    with lzma.open(wiki / "enwiki_test_part_AA.txt.xz", "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    books = root / "gutenberg_corpus"
    books.mkdir()
    with lzma.open(books / "books.jsonl.xz", "wt", encoding="utf-8") as f:
        for i in range(3):
            f.write(json.dumps({"pg_ebook_id": 100 + i, "text": PG_BOOK.replace("small", f"small ({i})")}) + "\n")


def test_wikiextractor_markup_is_stripped():
    lines = ['<doc id="7" url="x" title="T">', "T", "", "Body one.", "Body two.", "</doc>"]
    (doc,) = list(parse_wikiextractor(lines))
    assert doc.key == "enwiki:7" and doc.text == "T\n\nBody one.\nBody two." and "<doc" not in doc.text


def test_gutenberg_header_and_footer_are_stripped():
    body = strip_gutenberg(PG_BOOK)
    assert body == "Chapter 1.\nIt was a small book."
    with pytest.raises(ValueError, match="START marker"):
        strip_gutenberg("no markers here")


def test_sources_interleave_and_offline_fineweb_is_explained(tmp_path):
    make_corpus(tmp_path, num_articles=4)
    docs = list(open_sources(["enwiki", "gutenberg"], tmp_path))
    keys = [d.key for d in docs]
    wiki = "enwiki/enwiki_test_part_AA"
    assert keys[:2] == [f"{wiki}:0", "gutenberg:100"] and len(keys) == 7
    # Interleaved by text volume: while both sources have documents left, neither runs ahead of the other by
    # more than one document.
    volume = {"enwiki": 0, "gutenberg": 0}
    longest = max(len(d.text) for d in docs)
    for doc in docs[:5]:
        volume[doc.key.split("/")[0].split(":")[0]] += len(doc.text)
        assert abs(volume["enwiki"] - volume["gutenberg"]) <= longest
    assert sorted(keys) == sorted([f"{wiki}:{i}" for i in range(4)] + [f"gutenberg:{100 + i}" for i in range(3)])
    with pytest.raises(RuntimeError, match="fineweb-edu.*datasets.*enwiki"):
        open_sources(["fineweb-edu"], tmp_path)
    with pytest.raises(FileNotFoundError, match="enwiki_corpus"):
        open_sources(["enwiki"], tmp_path / "empty")


def test_shards_hold_every_document_with_separators(tmp_path):
    make_corpus(tmp_path / "root")
    config = PrepareConfig(out_dir=str(tmp_path / "out"), val_fraction=0.2, shard_tokens=1000, commit_every=7)
    docs = list(open_sources(config.sources, tmp_path / "root"))
    index = write_token_shards(docs, config, progress=False, encoding=ByteEncoding())
    assert index["complete"] and index["docs_done"] == len(docs)
    shards = TokenShards(config.out_dir)
    for split in ("train", "val"):
        expected = [d for d in docs if is_validation(d.key, 0.2) == (split == "val")]
        tokens = np.concatenate(shards.split(split))
        assert all(len(s) <= 1000 for s in shards.split(split))
        assert tokens.dtype == np.uint16 and tokens[0] == EOT_TOKEN
        assert int((tokens == EOT_TOKEN).sum()) == len(expected) > 0
        text = bytes(t for t in tokens.tolist() if t != EOT_TOKEN).decode()
        assert text == "".join(d.text for d in expected)


def test_interrupted_run_resumes_to_identical_output(tmp_path):
    make_corpus(tmp_path / "root")
    docs = list(open_sources(["enwiki", "gutenberg"], tmp_path / "root"))
    kwargs = dict(val_fraction=0.2, shard_tokens=700, commit_every=5)
    whole = PrepareConfig(out_dir=str(tmp_path / "whole"), **kwargs)
    write_token_shards(docs, whole, progress=False, encoding=ByteEncoding())

    def interrupted(limit):
        for i, doc in enumerate(docs):
            if i == limit:
                raise KeyboardInterrupt
            yield doc

    parts = PrepareConfig(out_dir=str(tmp_path / "parts"), **kwargs)
    for limit in (13, 31):
        with pytest.raises(KeyboardInterrupt):
            write_token_shards(interrupted(limit), parts, progress=False, encoding=ByteEncoding())
        index = json.loads((tmp_path / "parts" / "index.json").read_text())
        assert not index["complete"] and index["docs_done"] == limit - limit % 5
        # A crash between writing tokens and the index leaves extra bytes: resume must drop them.
        with open(tmp_path / "parts" / index["splits"]["train"]["shards"][-1]["file"], "ab") as f:
            f.write(b"\x01\x02\x03\x04")
    write_token_shards(docs, parts, progress=False, encoding=ByteEncoding())
    names = sorted(p.name for p in (tmp_path / "whole").iterdir() if p.suffix == ".bin")
    assert names == sorted(p.name for p in (tmp_path / "parts").iterdir() if p.suffix == ".bin") and len(names) > 2
    for name in names:
        assert (tmp_path / "parts" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    index_whole, index_parts = (json.loads((tmp_path / d / "index.json").read_text()) for d in ("whole", "parts"))
    index_whole["settings"].pop("out_dir"), index_parts["settings"].pop("out_dir")
    assert index_whole == index_parts
    with pytest.raises(ValueError, match="other settings"):
        write_token_shards(docs, parts.replace(shard_tokens=500), progress=False, encoding=ByteEncoding())


def test_max_train_tokens_stops_early(tmp_path):
    make_corpus(tmp_path / "root")
    docs = list(open_sources(["enwiki"], tmp_path / "root"))
    config = PrepareConfig(out_dir=str(tmp_path / "out"), sources=["enwiki"], max_train_tokens=500, commit_every=4)
    index = write_token_shards(docs, config, progress=False, encoding=ByteEncoding())
    assert 500 <= index["num_tokens"]["train"] < 500 + 4 * 250 and index["docs_done"] < len(docs)


@needs_bpe
def test_prepare_with_gpt2_bpe(tmp_path):
    make_corpus(tmp_path / "root", num_articles=10)
    config = PrepareConfig(out_dir=str(tmp_path / "out"), val_fraction=0.3, shard_tokens=10_000, commit_every=4)
    index = prepare(config, root=tmp_path / "root", progress=False)
    tokens = np.concatenate(TokenShards(config.out_dir).split("train"))
    assert index["num_tokens"]["train"] == tokens.size > 0 and tokens.max() <= EOT_TOKEN


def fake_datasets_module(rows, fail_after=None):
    """A stand-in for Hugging Face ``datasets`` (offline here): streams ``rows`` and records how it was called."""
    calls = []

    def load_dataset(path, name=None, split=None, streaming=False):
        calls.append({"path": path, "name": name, "split": split, "streaming": streaming})

        def stream():
            for n, row in enumerate(rows):
                if fail_after is not None and n == fail_after:
                    raise ConnectionError("Hub went away")
                yield row

        return stream()

    return types.SimpleNamespace(load_dataset=load_dataset, calls=calls)


def test_fineweb_edu_streams_into_shards_through_datasets(tmp_path, monkeypatch):
    rows = [{"id": f"<urn:{i}>", "text": f"Educational page {i}. " * (1 + i % 3)} for i in range(12)]
    fake = fake_datasets_module(rows)
    monkeypatch.setitem(sys.modules, "datasets", fake)
    make_corpus(tmp_path / "root", num_articles=6)
    config = PrepareConfig(
        out_dir=str(tmp_path / "out"), sources=["fineweb-edu", "enwiki"], val_fraction=0.2, shard_tokens=500
    )
    docs = list(open_sources(config.sources, tmp_path / "root"))
    assert fake.calls == [
        {"path": "HuggingFaceFW/fineweb-edu", "name": "sample-10BT", "split": "train", "streaming": True}
    ]
    assert (
        sum(d.key.startswith("fineweb-edu:") for d in docs) == 12 and sum(d.key.startswith("enwiki") for d in docs) == 6
    )
    index = write_token_shards(docs, config, progress=False, encoding=ByteEncoding())
    assert index["complete"]
    shards = TokenShards(config.out_dir)
    text = bytes(t for s in ("train", "val") for t in np.concatenate(shards.split(s)).tolist() if t != EOT_TOKEN)
    assert all(row["text"].encode() in text for row in rows)


def test_fineweb_edu_losing_the_hub_mid_stream_is_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets_module([{"id": "a", "text": "x"}] * 3, fail_after=2))
    stream = open_sources(["fineweb-edu"])
    with pytest.raises(RuntimeError, match="could not reach the Hugging Face Hub.*Hub went away.*enwiki"):
        list(stream)
