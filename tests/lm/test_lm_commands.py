"""`xlstm-seq lm prepare` and `lm train` on a tiny corpus: the CLI wiring of the library's LM commands."""

from __future__ import annotations

import pytest
from tiny_corpus import tiny_corpus_root

from xlstm_seq.cli.main import main


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
