"""`lm benchmark` end to end on a tiny corpus, `lm eval` on its checkpoint, and the survey's table in the report."""

from __future__ import annotations

import json

from tiny_corpus import tiny_corpus_root

from xlstm_seq.cli.main import main
from xlstm_seq.tracking.provenance import Provenance
from xlstm_seq_bench.lm.benchmark import LMBenchmarkConfig, render_markdown, survey_table

EVAL_DIRS = ("gpt2_bpe", "hellaswag", "lambada", "wikitext-2", "wikitext-2-raw", "wikitext-103", "ptb")


def tiny_root(tmp_path):
    """A data root with a small synthetic corpus and links to the real evaluation sets."""
    return tiny_corpus_root(tmp_path, links=EVAL_DIRS)


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
    for _, label, _, survey_x, survey_g in survey_table().rows:
        assert f"| {label} | {survey_x} | {survey_g} |" in report
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


def test_survey_table_is_the_published_one_and_the_report_prints_it():
    survey = survey_table()
    assert survey.rows == (
        ("hellaswag/acc_norm", "HellaSwag acc_norm", True, 0.2762, 0.2633),
        ("lambada/sliding_ppl", "LAMBADA perplexity (whole text, sliding)", False, 114.33, 146.62),
        ("wikitext-103/ppl", "WikiText-103 perplexity", False, 72.43, 91.37),
        ("wikitext-2/ppl", "WikiText-2 perplexity", False, 72.43, 91.19),
        ("ptb/ppl", "PTB perplexity", False, 93.97, 128.87),
    )
    assert survey.budget == "0.52B FineWeb-Edu tokens" and survey.source
    assert survey.throughput == "xLSTM at 0.41-0.44x GPT-2's throughput (2.25-2.45x slower)"

    metrics = {key: 1.0 for key, *_ in survey.rows}
    run = {"tokens_seen": 1000, "parameters": 1e6, "tokens_per_s_overall": 100.0, "val_loss": 5.0, **metrics}
    results = {"xlstm": [run], "gpt2": [run]}
    index = {"num_tokens": {"train": 1000, "val": 100}}
    config = LMBenchmarkConfig()
    report = render_markdown(config, results, index, Provenance.capture("xlstm-seq lm benchmark"), 1.0)
    assert report.startswith("# Language modelling: xLSTM vs GPT-2\n\nWritten by `xlstm-seq lm benchmark`.")
    for _, label, _, survey_x, survey_g in survey.rows:
        assert f"| {label} | {survey_x} | {survey_g} |" in report
    assert f"The survey's budget was {survey.budget};" in report
    assert f"measured {survey.throughput}." in report
