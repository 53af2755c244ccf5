"""`xlstm-seq lm prepare` and `lm train` on a tiny corpus: the CLI wiring of the library's LM commands."""

from __future__ import annotations

import json
import lzma

import pytest

from xlstm_seq.cli.main import main
from xlstm_seq.data import data_root


def tiny_corpus_root(tmp_path):
    """A data root with a small synthetic corpus and a link to the GPT-2 BPE files of the real one."""
    real = data_root()
    if not (real / "gpt2_bpe").is_dir():
        pytest.skip(f"GPT-2 BPE files not in the data root {real}")
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
    (root / "gpt2_bpe").symlink_to(real / "gpt2_bpe")
    return root


def test_prepare_and_train_commands(tmp_path, monkeypatch, capsys):
    root = tiny_corpus_root(tmp_path)
    monkeypatch.setenv("XLSTM_SEQ_DATA", str(root))
    shards = tmp_path / "shards"
    assert main(["lm", "prepare", "--no-progress", f"out_dir={shards}", "shard_tokens=5000"]) == 0
    assert "train and" in capsys.readouterr().out
    args = ["lm", "train", "--no-track", f"data_dir={shards}", f"out_dir={tmp_path / 'run'}", "seq_len=16",
            "batch_size=2", "max_steps=2", "warmup_steps=1", "eval_batches=1", "device=cpu",
            "model.kind=gpt2", "model.gpt2.num_layers=1", "model.gpt2.embedding_dim=16",
            "model.gpt2.num_heads=2"]  # fmt: skip
    assert main(args) == 0
    assert "step 2: train loss" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown key"):
        main(["lm", "train", "--no-track", "max_stepz=2"])
