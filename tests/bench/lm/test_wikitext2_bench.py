"""`lm wikitext2` end to end on a tiny word corpus, the thesis's table as published, the word-level corpus, the size
check, and the ordering with its tie rule."""

from __future__ import annotations

import numpy as np
import pytest

from xlstm_seq.cli.main import main
from xlstm_seq_bench.lm.wikitext2 import EOS, WikiText2Config, check_sizes, load_corpus
from xlstm_seq_bench.lm.wikitext2_report import compare, ordering, render_markdown, thesis_table


def write_tiny_wikitext2(root) -> None:
    """WikiText-2's layout with a small vocabulary whose training counts fill all three buckets: "the" > 1,000,
    "river" and "sea" in 100-1,000, the rest < 100 (one line in three empty, as in the real files)."""
    rng = np.random.default_rng(0)
    rare = [f"w{i}" for i in range(20)]
    folder = root / "wikitext-2"
    folder.mkdir(parents=True)
    for split, lines in (("train", 600), ("valid", 30), ("test", 40)):
        text = []
        for i in range(lines):
            if i % 3 == 2:
                text.append(" ")
                continue
            words = ["the", "river", "the", "sea", "the", str(rng.choice(rare)), "<unk>", "."]
            text.append(" " + " ".join(words) + " ")
        (folder / f"wiki.{split}.tokens").write_text("\n".join(text) + "\n")


def write_config(tmp_path) -> str:
    text = f"""# xlstm-seq lm wikitext2 --config {tmp_path}/wt2.yaml
train: {{seq_len: 16, batch_size: 2, max_steps: 3, warmup_steps: 1, eval_every: 0, eval_batches: 2, device: cpu}}
lstm: {{embedding_dim: 16, hidden_size: 20, num_layers: 1}}
xlstm: {{xlstm: {{embedding_dim: 16, num_blocks: 1, slstm_at: [], num_heads: 2, backend: torch}}}}
gpt2: {{context_length: 32, num_layers: 1, num_heads: 2, embedding_dim: 16}}
max_size_gap: 0.9
window: 16
stride: 12
max_test_tokens: 200
seeds: [0, 1]
progress: false
notes: [the recipe is the tiny test's own]
runs_dir: {tmp_path}/runs
out: {tmp_path}/wikitext2.md
"""
    path = tmp_path / "wt2.yaml"
    path.write_text(text)
    return str(path)


def test_wikitext2_command_end_to_end(tmp_path, monkeypatch, mlflow_in_tmp):
    write_tiny_wikitext2(tmp_path / "data")
    monkeypatch.setenv("XLSTM_SEQ_DATA", str(tmp_path / "data"))
    assert main(["lm", "wikitext2", "--config", write_config(tmp_path)]) == 0
    page = (tmp_path / "wikitext2.md").read_text()
    assert page.startswith("# WikiText-2 by word frequency") and "Written by `xlstm-seq lm wikitext2 --config" in page
    for label in ("thesis: LSTM", "thesis: xLSTM (from scratch)", "thesis: Transformer", "ours: LSTM (nn.LSTM)",
                  "ours: xLSTM (ours)", "ours: GPT-2 (ours)"):  # fmt: skip
        assert f"| {label} |" in page
    assert "| thesis: LSTM | 205,115 | 8,215.5 | 104.6 | 2,031.2 |" in page
    assert " ± " in page and "seeds 0, 1 (mean ± std)" in page and "the recipe is the tiny test's own" in page
    assert "## Target: the thesis's ordering" in page and "counts as a tie" in page
    assert "26 words in the vocabulary" in page  # the, river, sea, 20 rare words, <unk>, "." and <eos>

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_in_tmp)
    runs = client.search_runs([client.get_experiment_by_name("xlstm-seq-lm-wikitext2").experiment_id])
    names = sorted(r.info.run_name for r in runs)
    assert names == sorted([f"{k}-seed{s}" for k in ("lstm", "xlstm", "gpt2") for s in (0, 1)] + ["wikitext2-summary"])
    summary = next(r for r in runs if r.info.run_name == "wikitext2-summary")
    assert summary.data.metrics["lstm/overall"] > 1.0 and "provenance.revision" in summary.data.tags


def test_seeds_run_by_separate_commands_merge_into_one_page(tmp_path, monkeypatch, mlflow_in_tmp):
    import json
    import shutil

    write_tiny_wikitext2(tmp_path / "data")
    monkeypatch.setenv("XLSTM_SEQ_DATA", str(tmp_path / "data"))
    config = write_config(tmp_path)
    for seed in (0, 1):
        out = f"out={tmp_path}/seed{seed}.md"
        assert main(["lm", "wikitext2", "--config", config, f"seeds=[{seed}]", out, "--no-track"]) == 0
    per_seed = [json.loads((tmp_path / f"seed{seed}.json").read_text())["runs"] for seed in (0, 1)]
    assert [(r["kind"], r["seed"]) for r in per_seed[1]] == [("lstm", 1), ("xlstm", 1), ("gpt2", 1)]

    sources = [str(tmp_path / "seed0.json"), str(tmp_path / "seed1.json")]
    merged = f"out={tmp_path}/merged.md"
    shutil.rmtree(tmp_path / "runs")  # every run's checkpoint folder: the merged command must train none
    assert main(["lm", "wikitext2", "--config", config, merged, "--resume-from", *sources, "--no-track"]) == 0
    page = (tmp_path / "merged.md").read_text()
    assert "6 of 6 runs were taken, with the same settings" in page and "seeds 0, 1 (mean ± std)" in page
    assert "--resume-from" in page.splitlines()[2]  # the page's command reproduces it
    runs = json.loads((tmp_path / "merged.json").read_text())["runs"]
    assert runs == [r for seed in (0, 1) for r in per_seed[seed]]  # the numbers as the separate commands wrote them
    assert not (tmp_path / "runs").exists()

    # Runs made with another recipe are not taken: the merged command trains them again.
    other = f"out={tmp_path}/other.md"
    assert main(["lm", "wikitext2", "--config", config, other, "train.max_steps=2", "seeds=[0]",
                 "--resume-from", sources[0], "--no-track"]) == 0  # fmt: skip
    assert "were taken" not in (tmp_path / "other.md").read_text() and (tmp_path / "runs" / "lstm-seed0").is_dir()
    with pytest.raises(FileNotFoundError, match="nope.json"):
        main(["lm", "wikitext2", "--config", config, other, "--resume-from", str(tmp_path / "nope.json"), "--no-track"])


def test_thesis_table_is_the_published_one():
    thesis = thesis_table()
    rows = [
        (r.label, r.ours, *(r.perplexity[k] for k in ("rare", "medium", "frequent", "overall"))) for r in thesis.rows
    ]
    assert rows == [
        ("LSTM", "lstm", 205115, 8215.5, 104.6, 2031.2),
        ("xLSTM (xlstm library)", "xlstm", 57969, 706.3, 17.0, 327.2),
        ("xLSTM (from scratch)", "xlstm", 51352, 614.4, 17.8, 313.4),
        ("Transformer", "gpt2", 56597, 656.5, 18.3, 331.5),
    ]
    assert thesis.buckets == {"rare": "< 100", "medium": "100-1,000", "frequent": "> 1,000"}
    assert "Johannes Kepler University Linz" in thesis.source


def test_corpus_is_word_level_with_eos_and_training_counts(tmp_path):
    write_tiny_wikitext2(tmp_path)
    corpus = load_corpus(tmp_path)
    # Words in order of first appearance; <eos> closes the first line.
    assert corpus.vocab[:3] == ["the", "river", "sea"] and corpus.vocab[4:7] == ["<unk>", ".", EOS]
    assert len(corpus.vocab) == 26 and EOS not in corpus.train_counts
    train = corpus.splits["train"]
    assert train.dtype == np.int32 and int((train == corpus.eos_id).sum()) == 600  # one <eos> per line
    assert len(train) == 400 * 8 + 600
    assert (
        corpus.train_counts["the"] == 1200 and corpus.train_counts["river"] == 400 and corpus.train_counts["w0"] < 100
    )
    (tmp_path / "wikitext-2" / "wiki.test.tokens").write_text(" the unseen \n")
    with pytest.raises(ValueError, match=r"test split has words outside the training vocabulary: \['unseen'\]"):
        load_corpus(tmp_path)
    (tmp_path / "wikitext-2" / "wiki.valid.tokens").unlink()
    with pytest.raises(FileNotFoundError, match="wiki.valid.tokens"):
        load_corpus(tmp_path)


def test_sizes_must_match_without_the_embedding():
    config = WikiText2Config()
    sizes = check_sizes(config, 33278)
    assert {kind: s["total"] - s["body"] for kind, s in sizes.items()} == dict.fromkeys(sizes, 33278 * 128)
    with pytest.raises(ValueError, match="differ by .* > max_size_gap"):
        check_sizes(config.replace(lstm=config.lstm.replace(num_layers=1)), 33278)
    with pytest.raises(ValueError, match="one embedding width"):
        WikiText2Config(lstm=config.lstm.replace(embedding_dim=64))
    with pytest.raises(ValueError, match="exceeds the training seq_len"):
        WikiText2Config(window=256)


def test_compare_calls_a_gap_within_the_seed_spread_a_tie():
    assert compare([10.0, 12.0], [20.0, 21.0]) == "lower"  # gap 9.5 > spread 2
    assert compare([30.0, 31.0], [20.0, 21.0]) == "higher"
    assert compare([10.0, 14.0], [12.0, 13.0]) == "tie"  # gap 0.5 <= the larger range, 4
    assert compare([10.0], [10.5]) == "lower"  # one seed: the raw direction
    assert compare([5.0, 5.0], [5.0, 5.0]) == "tie"


def _results(lstm, xlstm, gpt2):
    """Runs per model from (overall, rare) pairs per seed."""
    return {
        kind: [{"overall": o, "rare": r, "medium": 1.0, "frequent": 1.0} for o, r in pairs]
        for kind, pairs in (("lstm", lstm), ("xlstm", xlstm), ("gpt2", gpt2))
    }


def test_ordering_met_tied_and_single_seed():
    met = ordering(_results([(2000, 2e5), (2100, 2.1e5)], [(320, 5e4), (330, 5.1e4)], [(330, 6e4), (335, 6.1e4)]))
    assert met.holds and met.seeds_known
    # The xLSTM's rare-word lead over GPT-2 is smaller than the spread: a tie, so the ordering is not met.
    tie = ordering(_results([(2000, 2e5), (2100, 2.1e5)], [(320, 5e4), (330, 6e4)], [(330, 5.5e4), (335, 5.6e4)]))
    assert tie.below_lstm_holds and tie.rare_xlstm == {"lstm": "lower", "gpt2": "tie"} and not tie.holds
    worse = ordering(_results([(300, 5e4)], [(320, 4e4)], [(310, 6e4)]))
    assert worse.below_lstm == {"xlstm": "higher", "gpt2": "higher"} and worse.rare_holds and not worse.seeds_known


def test_page_says_met_or_not_and_warns_on_one_seed():
    extra = {"medium": 500.0, "frequent": 20.0, "token_ppl": 200.0, "val_ppl": 210.0, "parameters": 1000,
             "tokens_per_s": 100.0}  # fmt: skip
    results = {
        kind: [{"overall": o, "rare": r, **extra}]
        for kind, o, r in (("lstm", 2000.0, 2e5), ("xlstm", 300.0, 5e4), ("gpt2", 320.0, 6e4))
    }
    page = render_markdown(results, header=["Written by `x`."], setup=["- setup"], seeds=[0])
    assert "below the LSTM overall: **met**" in page and "lowest on rare words: **met**" in page
    assert "(6.67x lower perplexity than the LSTM)" in page and "Transformer 6.1x" in page
    assert "One seed per model: the spread over seeds is unknown" in page
    assert "| ours: xLSTM (ours) | 50,000 | 500.0 | 20.0 | 300.0 |" in page
    results["gpt2"][0]["overall"] = 2500.0
    assert "below the LSTM overall: **not met**" in render_markdown(results, header=[], setup=[], seeds=[0])
