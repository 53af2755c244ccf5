"""`lm benchmark` end to end on a tiny corpus, `lm eval` on its checkpoint, and the CLI wiring."""

from __future__ import annotations

import json
import lzma

import pytest

from xlstm_seq.cli.main import main
from xlstm_seq.data import data_root

EVAL_DIRS = ("gpt2_bpe", "hellaswag", "lambada", "wikitext-2", "wikitext-2-raw", "wikitext-103", "ptb")


def tiny_root(tmp_path):
    """A data root with a small synthetic corpus and links to the real evaluation sets."""
    real = data_root()
    if not all((real / d).is_dir() for d in EVAL_DIRS):
        pytest.skip(f"evaluation sets {EVAL_DIRS} not all in the data root {real}")
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
    for d in EVAL_DIRS:
        (root / d).symlink_to(real / d)
    return root


def write_config(tmp_path, root) -> str:
    text = f"""
data: {{out_dir: {tmp_path}/shards, sources: [enwiki, gutenberg], shard_tokens: 20000, val_fraction: 0.1}}
train: {{seq_len: 16, batch_size: 2, max_steps: 3, warmup_steps: 1, eval_every: 0, eval_batches: 2, device: cpu}}
gpt2: {{context_length: 32, num_layers: 1, num_heads: 2, embedding_dim: 16}}
xlstm: {{xlstm: {{embedding_dim: 16, num_blocks: 2, slstm_at: [1], num_heads: 2, backend: torch}}}}
eval: {{window: 32, stride: 16, batch_size: 4, max_items: 3, max_tokens: 200}}
seeds: [0, 1]
runs_dir: {tmp_path}/runs
out: {tmp_path}/lm.md
"""
    path = tmp_path / "bench.yaml"
    path.write_text(text)
    return str(path)


def test_benchmark_and_eval_commands_end_to_end(tmp_path, monkeypatch, capsys):
    root = tiny_root(tmp_path)
    monkeypatch.setenv("XLSTM_SEQ_DATA", str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert main(["lm", "benchmark", "--config", write_config(tmp_path, root)]) == 0
    report = (tmp_path / "lm.md").read_text()
    for row in ("HellaSwag acc_norm", "LAMBADA perplexity", "WikiText-103", "WikiText-2 perplexity", "PTB"):
        assert row in report
    assert "| xLSTM |" in report and "relative to GPT-2" in report and "Seeds: [0, 1]" in report
    assert " ± " in report  # two seeds: mean and spread

    out = tmp_path / "eval.json"
    code = main(["lm", "eval", "--checkpoint", str(tmp_path / "runs" / "xlstm-seed0"), "--no-track",
                 "eval.tasks=[lambada,ptb]", "eval.max_items=2", "eval.max_tokens=100", "eval.window=32",
                 "eval.stride=16", f"out={out}"])  # fmt: skip
    assert code == 0
    metrics = json.loads(out.read_text())
    assert metrics["lambada/items"] == 2 and metrics["ptb/tokens"] == 100 and metrics["ptb/ppl"] > 1.0

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("xlstm-seq-lm-benchmark").experiment_id])
    names = sorted(r.info.run_name for r in runs)
    assert names == ["benchmark-summary", "gpt2-seed0", "gpt2-seed1", "xlstm-seed0", "xlstm-seed1"]


def test_prepare_and_train_commands(tmp_path, monkeypatch, capsys):
    root = tiny_root(tmp_path)
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
