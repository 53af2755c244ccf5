"""The lease command (configs/lm/lease-125m.yaml through `xlstm-seq lm benchmark`) end to end on a CPU at tiny size:
every phase in its own process, the report, JSON and loss curves; a second lease's seed joining the table; a report
of a run cut short; a phase killed at its limit with its children."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_corpus import tiny_corpus_root

from xlstm_seq.cli.main import main
from xlstm_seq.kernels.slstm import cpu_loader
from xlstm_seq.tracking.provenance import Provenance
from xlstm_seq_bench.lm.benchmark import LMBenchmarkConfig, survey_table
from xlstm_seq_bench.lm.lease import dry_run_overrides, load_previous, plan, recipe_of, run_phase
from xlstm_seq_bench.lm.lease_report import LeaseReport

REPO = Path(__file__).resolve().parents[3]
LEASE = "configs/lm/lease-125m.yaml"
TASK_6 = "wikitext-2-buckets"
EVAL_DIRS = ("gpt2_bpe", "hellaswag", "lambada", "wikitext-2", "wikitext-2-raw", "wikitext-103", "ptb")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """One dry run of the lease command; returns (work folder, the command's overrides)."""
    tmp = tmp_path_factory.mktemp("lease")
    root = tiny_corpus_root(tmp, links=EVAL_DIRS)
    overrides = [f"out={tmp}/out/lease_125m.md", *dry_run_overrides(tmp / "work")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XLSTM_SEQ_DATA", str(root))
        mp.setenv("OMP_NUM_THREADS", "1")  # the phases' processes: one thread each on a shared machine
        mp.chdir(REPO)
        assert main(["lm", "benchmark", "--config", LEASE, "--no-track", *overrides]) == 0
    return tmp, overrides


def test_the_lease_command_runs_every_phase_and_writes_the_report(dry_run):
    tmp, _ = dry_run
    out = tmp / "out"
    assert sorted(p.name for p in out.iterdir()) == ["lease_125m.json", "lease_125m.md", "lease_125m.png"]
    data = json.loads((out / "lease_125m.json").read_text())
    assert data["complete"] and [p["status"] for p in data["phases"]] == ["ok"] * 5
    for kind in ("gpt2", "xlstm"):
        (run,) = data["runs"][kind]
        assert run["train"]["step"] == run["train"]["max_steps"] == 6 and not run["train"]["stopped_early"]
        assert run["train"]["tokens_per_s_overall"] > 0 and len(run["train"]["history"]) == 6
        assert run["eval"]["tasks_done"] == ["wikitext-2", "wikitext-103", "ptb", "lambada", "hellaswag", TASK_6]
        assert run["eval"]["metrics"]["hellaswag/items"] == 3 and run["eval"]["metrics"]["ptb/ppl"] > 1
    slstm_on_cpu = "cpu" if cpu_loader.COMPILER else "torch"  # auto's sLSTM on a CPU: the C++ kernel where it builds
    assert data["runs"]["xlstm"][0]["train"]["backends"] == {"mLSTM": "torch", "sLSTM": slstm_on_cpu}
    report = (out / "lease_125m.md").read_text()
    assert "status: complete" in report and "![training loss of both models](lease_125m.png)" in report
    for _, label, _, survey_x, survey_g in survey_table().rows:
        assert f"| {label} | {survey_x} | {survey_g} |" in report
    assert "| xLSTM |" in report and "tokens that fit the phase" in report
    assert (out / "lease_125m.png").stat().st_size > 10_000
    # Weights stay with the runs, never beside the report.
    assert (tmp / "work" / "runs" / "xlstm-seed0" / "model.safetensors").is_file()


def test_a_second_lease_adds_its_seed_to_the_table_and_refuses_another_recipe(dry_run):
    tmp, overrides = dry_run
    from xlstm_seq.config_io import apply_overrides, load_yaml

    data = apply_overrides(load_yaml(REPO / LEASE), overrides + [f"lease.previous={tmp}/out/lease_125m.json"])
    config = LMBenchmarkConfig.from_dict(data)
    previous = load_previous(config.lease.previous, recipe_of(config))
    report = LeaseReport(config, recipe_of(config), plan(config), Provenance.capture("test"), previous)
    # The previous lease's seed 0 and this folder's seed 0: two runs per model, mean and spread.
    assert [len(runs) for runs in report.runs().values()] == [2, 2]
    assert " ± " in report.markdown(1.0)

    other = config.replace(train=config.train.replace(max_steps=7))
    with pytest.raises(ValueError, match=r"another recipe \(differs in \['train'\]\)"):
        load_previous(config.lease.previous, recipe_of(other))


def test_a_run_cut_short_is_reported_as_partial(dry_run, tmp_path):
    tmp, overrides = dry_run
    runs = tmp_path / "runs"
    shutil.copytree(tmp / "work" / "runs", runs)
    (runs / "xlstm-seed0" / "eval.json").unlink()
    (runs / "xlstm-seed0" / "train.json").unlink()  # killed: only its progress lines are left
    from xlstm_seq.config_io import apply_overrides, load_yaml

    data = apply_overrides(load_yaml(REPO / LEASE), overrides + [f"runs_dir={runs}", f"out={tmp_path}/partial.md"])
    config = LMBenchmarkConfig.from_dict(data)
    report = LeaseReport(config, recipe_of(config), plan(config), Provenance.capture("test"), None)
    for phase, status in (("prepare", "ok"), ("train_gpt2", "ok"), ("eval_gpt2", "ok")):
        report.phase(phase, 10.0, status, 1.0)
    report.phase("train_xlstm", 10.0, "stopped at its limit (10 s)", 10.0)
    report.phase("eval_xlstm", 10.0, "skipped: no trained weights (training did not finish)", 0.0)
    written = report.write(12.0, final=True)
    assert not written["complete"] and written["runs"]["xlstm"][0]["train"]["killed"]
    markdown = (tmp_path / "partial.md").read_text()
    assert "**partial**" in markdown and "stopped at its limit" in markdown
    assert "| HellaSwag acc_norm | 0.2762 | 0.2633 | - | " in markdown  # no xLSTM number, GPT-2's is there
    assert (tmp_path / "partial.png").is_file() and (tmp_path / "partial.json").is_file()


def test_a_phase_past_its_limit_is_killed_with_its_children(tmp_path):
    marker = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(marker)!r}, 'w').write(str(p.pid)); time.sleep(60)"
    )
    start = time.monotonic()
    status, seconds = run_phase([sys.executable, "-c", code], 2.0)
    assert status == "stopped at its limit (2 s)" and seconds < 15 and time.monotonic() - start < 15
    pid = int(marker.read_text())
    alive = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    assert alive in ("", "Z"), f"the phase's child {pid} survived: {alive}"
    assert run_phase([sys.executable, "-c", "raise SystemExit(3)"], 30.0)[0] == "failed (exit 3)"
