"""`xlstm-seq synthetic benchmark` end to end on the smoke config, into a temporary MLflow store."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pytest

from xlstm_seq.cli.main import config_class_for_command, main
from xlstm_seq.tracking.provenance import Provenance
from xlstm_seq_bench.synthetic.benchmark import SyntheticBenchmarkConfig
from xlstm_seq_bench.synthetic.report import RunResult, provenance_from_tags, render_markdown

REPO = Path(__file__).resolve().parents[3]
TEST = Provenance.capture("test")
SMOKE = REPO / "configs" / "synthetic" / "smoke.yaml"


def test_cli_smoke_config_runs_end_to_end(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    out, plot = tmp_path / "report" / "synthetic.md", tmp_path / "report" / "synthetic_accuracy.png"
    argv = ["synthetic", "benchmark", "--config", str(SMOKE), "--out", str(out), "--plot", str(plot)]
    assert main([*argv, "train.steps=3"]) == 0

    config = SyntheticBenchmarkConfig.from_yaml(SMOKE)
    markdown = out.read_text()
    assert plot.stat().st_size > 1000
    assert "train.steps=3" in markdown and "- device: " in markdown and "; git " in markdown
    for setup in config.tasks:
        assert f"### {setup.label}" in markdown
    for spec in config.models:
        assert f"| {spec.kind} |" in markdown
    # Accuracies are fractions with a spread over the two seeds.
    cells = len(config.tasks) * len(config.models) * len(config.test_multipliers)
    assert len(re.findall(r"\d\.\d{3} \+- \d\.\d{3}", markdown)) == cells

    client = mlflow.MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == config.experiment]
    runs = client.search_runs([experiment.experiment_id])
    names = sorted(r.info.run_name for r in runs)
    expected = len(config.tasks) * len(config.models) * len(config.seeds)
    assert len(runs) == expected + 1 and "summary" in names
    assert "parity-xlstm[1:1]-seed1" in names
    (summary,) = [r for r in runs if r.info.run_name == "summary"]
    artifacts = {a.path for a in client.list_artifacts(summary.info.run_id)}
    assert {"synthetic.md", "synthetic_accuracy.png", "config.yaml"} <= artifacts
    (one,) = [r for r in runs if r.info.run_name == "parity-lstm-seed0"]
    assert one.data.params["train.steps"] == "3" and one.data.params["model.kind"] == "lstm"
    for multiplier in config.test_multipliers:
        accuracy = one.data.metrics[f"test/accuracy_T{8 * multiplier}"]
        assert 0.0 <= accuracy <= 1.0
    assert len(client.get_metric_history(one.info.run_id, "train/loss")) == 2  # log_every=2 over 3 steps

    # `synthetic report` (given the same overrides) writes the same tables again from the tracked runs.
    again = tmp_path / "again.md"
    assert (
        main(["synthetic", "report", "--config", str(SMOKE), "--out", str(again), "--plot", str(plot), "train.steps=3"])
        == 0
    )

    def tables(text: str) -> str:
        return text[text.index("## Tasks") : text.index("![")]

    assert tables(again.read_text()) == tables(markdown)
    header = again.read_text()[: again.read_text().index("## Tasks")]
    assert "- Rendered by `xlstm-seq synthetic report" in header
    # The re-rendered header is the benchmark's own (command, date, commit, device), not the report command's.
    assert header.splitlines()[2:6] == markdown.splitlines()[2:6]
    assert header.splitlines()[2].startswith("Written by `xlstm-seq synthetic benchmark --config")
    with pytest.raises(ValueError, match=r"run\(s\) missing .*parity-lstm-seed7"):
        main(["synthetic", "report", "--config", str(SMOKE), "--out", str(again), "seeds=[0,7]"])


def test_config_class_is_registered_and_default_validates():
    assert config_class_for_command("synthetic benchmark") is SyntheticBenchmarkConfig
    config = SyntheticBenchmarkConfig()
    assert SyntheticBenchmarkConfig.from_yaml(config.to_yaml()) == config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(seeds=[]), "seeds must not be empty"),
        (dict(seeds=[1, 1]), "distinct ints"),
        (dict(test_multipliers=[0]), "test_multipliers must be ints >= 1"),
        (dict(workers=0), "workers and threads"),
        (dict(models=[{"kind": "lstm"}, {"kind": "lstm"}]), "models must be distinct"),
    ],
)
def test_bad_benchmark_config_is_explained(change, message):
    data = {**SyntheticBenchmarkConfig().to_dict(), **change}
    with pytest.raises(ValueError, match=message):
        SyntheticBenchmarkConfig.from_dict(data)


def test_notes_must_be_a_list_of_strings():
    data = {**SyntheticBenchmarkConfig().to_dict(), "notes": "one note"}
    with pytest.raises(TypeError, match="notes must be a list of strings, got 'one note'"):
        SyntheticBenchmarkConfig.from_dict(data)


def test_report_marks_solved_only_when_every_seed_reaches_the_bar():
    config = SyntheticBenchmarkConfig.from_yaml(SMOKE).replace(test_multipliers=[1, 4])
    base = dict(task="parity", model="lstm", parameters=10, steps=1, learning_rate=0.1, train_seconds=1.0)
    results = [
        RunResult(seed=0, accuracy={8: 1.0, 32: 0.99}, **base),
        RunResult(seed=1, accuracy={8: 1.0, 32: 0.90}, **base),
        RunResult(**{**base, "model": "gpt2"}, seed=0, accuracy={8: 1.0, 32: 0.96}),
    ]
    markdown = render_markdown(config, results, wall_seconds=60.0, provenance=TEST)
    row = next(line for line in markdown.splitlines() if line.startswith("| parity | ") and "min" in line)
    assert "no (min 0.90)" in row and "yes (min 0.96)" in row
    assert "0.945 +- 0.064" in markdown  # mean and sample std of 0.99 and 0.90


def test_task_overrides_change_one_task_only_and_are_reported():
    config = SyntheticBenchmarkConfig.from_yaml(SMOKE).replace(
        task_overrides={"nearest_neighbour": {"xlstm[1:1]": {"num_heads": 1, "mlstm_conv_kernel": 1}}}
    )
    config = SyntheticBenchmarkConfig.from_dict(config.to_dict())  # validates and round-trips
    tasks = {t.label: t for t in config.tasks}
    spec = next(m for m in config.models if m.kind == "xlstm[1:1]")
    changed = config.spec_for(tasks["nearest_neighbour"], spec)
    assert (changed.num_heads, changed.mlstm_conv_kernel, changed.embedding_dim) == (1, 1, spec.embedding_dim)
    assert config.spec_for(tasks["parity"], spec) is spec
    # The defaults name models the smoke config leaves out (xlstm[1:0]); those entries are simply unused.
    smoke = SyntheticBenchmarkConfig.from_yaml(SMOKE)
    assert "xlstm[1:0]" in smoke.task_overrides["nearest_neighbour"]
    assert "xlstm[1:0]" not in [m.kind for m in smoke.models]
    base = dict(task="nearest_neighbour", model="xlstm[1:1]", parameters=10, steps=1, learning_rate=0.1)
    results = [RunResult(seed=0, accuracy={6: 0.5, 12: 0.4}, train_seconds=1.0, **base)]
    markdown = render_markdown(config, results, wall_seconds=None, provenance=TEST)
    assert "- nearest_neighbour, xlstm[1:1]: num_heads=1, mlstm_conv_kernel=1" in markdown


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"copy": {"lstm": {"num_blocks": 1}}}, "unknown task 'copy'"),
        ({"parity": {"rnn": {"num_blocks": 1}}}, "unknown model 'rnn'"),
        ({"parity": {"lstm": {"depth": 1}}}, r"unknown ModelSpec field\(s\) \['depth'\]"),
        ({"parity": {"lstm": {"kind": "gpt2"}}}, "other than kind"),
        ({"parity": {"gpt2": {"num_heads": 3}}}, "divisible by num_heads"),
    ],
)
def test_bad_task_overrides_are_explained(overrides, message):
    data = {**SyntheticBenchmarkConfig.from_yaml(SMOKE).to_dict(), "task_overrides": overrides}
    with pytest.raises(ValueError, match=message):
        SyntheticBenchmarkConfig.from_dict(data)


def test_report_checks_the_nearest_neighbour_target_on_both_layouts():
    config = SyntheticBenchmarkConfig.from_yaml(SMOKE).replace(notes=["how the recipe was chosen"])
    assert {"nearest_neighbour", "nearest_neighbour_query_first"} <= {t.name for t in config.tasks}
    base = dict(parameters=10, steps=1, learning_rate=0.1, train_seconds=1.0, seed=0)
    results = [
        # Query last: the Transformer ahead at both lengths; query first: the xLSTM ahead at 1x only.
        RunResult(task="nearest_neighbour", model="xlstm[1:1]", accuracy={6: 0.50, 12: 0.40}, **base),
        RunResult(task="nearest_neighbour", model="gpt2", accuracy={6: 0.90, 12: 0.80}, **base),
        RunResult(task="nearest_neighbour_query_first", model="xlstm[1:1]", accuracy={6: 0.95, 12: 0.70}, **base),
        RunResult(task="nearest_neighbour_query_first", model="gpt2", accuracy={6: 0.94, 12: 0.75}, **base),
    ]
    markdown = render_markdown(config, results, wall_seconds=None, provenance=TEST)
    (last,) = [line for line in markdown.splitlines() if line.startswith("- nearest_neighbour (query after")]
    (first,) = [line for line in markdown.splitlines() if line.startswith("- nearest_neighbour_query_first (")]
    assert "**met at no length**" in last and "T=6: xlstm[1:1] 0.500 vs gpt2 0.900" in last
    assert "the target as worded" in last and "not the target's wording" in first
    assert "## Targets, checked on these numbers" in markdown
    assert "**met at some lengths**" in first and "T=12: xlstm[1:1] 0.700 vs gpt2 0.750" in first
    # The kernel-readout section scores the query-last test sets; the smoke xlstm[1:1] has 2 x 16 q.k channels in
    # one head there (the default task override sets one head on nearest_neighbour).
    assert "## nearest_neighbour: what a fixed kernel readout can reach" in markdown
    assert "## Notes\n\n- how the recipe was chosen\n" in markdown
    assert "32 for xlstm[1:1]" in markdown and "| exp(20 s) (softmax attention) | unbounded |" in markdown


def test_provenance_read_back_from_the_summary_run_tags_is_the_one_written():
    written = Provenance.capture("xlstm-seq synthetic benchmark --config c.yaml", packages=("pandas",)).finish()
    back = provenance_from_tags({**written.tags(), "command": "other"}, "other")
    assert (back.command, back.revision, back.started, back.device, back.host) == (
        written.command, written.revision, written.started, written.device, written.host,
    )  # fmt: skip
    assert back.versions == written.versions and back.load_end == written.load_end
    old_run = provenance_from_tags(
        {"git.sha": "0123456789abcdef", "git.dirty": "true"}, "xlstm-seq synthetic benchmark"
    )
    assert old_run.revision == "0123456 (uncommitted changes)" and old_run.command == "xlstm-seq synthetic benchmark"
