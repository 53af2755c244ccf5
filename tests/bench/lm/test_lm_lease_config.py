"""The full-size lease config: it validates, runs the survey's models and the full evaluation sets, and its token
budget fits its phases by its own plan; the GPU check script has its stage, and the pack script carries enough."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from xlstm_seq.data import data_root
from xlstm_seq.lm import eval_data
from xlstm_seq.lm.eval_suite import EVAL_TASKS
from xlstm_seq.lm.models import survey_gpt2_config, survey_xlstm_config
from xlstm_seq.lm.tokenizer import local_bpe_files
from xlstm_seq_bench.lm.benchmark import LMBenchmarkConfig
from xlstm_seq_bench.lm.lease import LeaseSettings, plan, recipe_of, scaled, tokens_per_model

REPO = Path(__file__).resolve().parents[3]
LEASE = REPO / "configs" / "lm" / "lease-125m.yaml"
#: What one device call may run (10 minutes) less the script's setup and the machine's share of it.
COMMAND_S = 540


@pytest.fixture(scope="module")
def config() -> LMBenchmarkConfig:
    return LMBenchmarkConfig.from_yaml(LEASE)


def test_the_lease_runs_the_survey_recipe_at_full_size(config):
    assert isinstance(config.lease, LeaseSettings) and config.lease.tokens_factor == 1
    t = config.train
    assert (t.seq_len, t.precision, t.compile, t.device, t.checkpoint_every) == (256, "bf16", True, "auto", 0)
    assert config.gpt2 == survey_gpt2_config()
    assert config.xlstm == survey_xlstm_config()
    assert config.eval.window == 256 and config.eval.max_items is None and config.eval.max_tokens is None
    assert sorted(config.eval.tasks) == sorted(EVAL_TASKS)
    assert config.eval.tasks[-2:] == ["hellaswag", "wikitext-2-buckets"]  # the costly ones last
    assert config.seeds == [0] and config.data.sources == ["enwiki"]


def test_the_token_budget_fits_the_phases_by_the_plan(config):
    p = plan(config)
    assert p["tokens_per_model"] == tokens_per_model(config) == 192 * 64 * 256
    for kind, m in p["models"].items():
        assert m["margin"] >= 1.1, f"{kind} needs {m['planned_phase_s']:.0f} s of its {m['limit_s']:.0f} s phase"
        assert 120e6 < m["parameters"] < 130e6
    assert config.lease.total_s <= COMMAND_S - 20
    # The shards hold a window for every step: no token is seen twice, also with the tokens doubled.
    for factor in (1, 2):
        c = scaled(config.replace(lease=config.lease.replace(tokens_factor=factor)))
        window = c.train.batch_size * c.train.seq_len
        assert (c.data.max_train_tokens - 1) // window >= c.train.max_steps == 192 * factor
    # Doubling the tokens changes the length of the run and nothing else of the recipe.
    doubled = recipe_of(scaled(config.replace(lease=config.lease.replace(tokens_factor=2))))
    base = recipe_of(config)
    assert {k for k in base if base[k] != doubled[k]} == {"data", "train"}
    assert {k for k in base["train"] if base["train"][k] != doubled["train"][k]} == {"max_steps"}
    assert {k for k in base["data"] if base["data"][k] != doubled["data"][k]} == {"max_train_tokens"}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"tokens_factor": 0}, "tokens_factor must be an integer >= 1"),
        ({"limits_s": {"prepare": 30}}, "needs exactly the phases"),
        ({"assumed_tokens_per_s": {"gpt2": 1.0}}, "needs a positive number for each of"),
        ({"reference_slstm": "maybe"}, "must be 'eager' or 'compile'"),
    ],
)
def test_bad_lease_settings_are_refused(override, message):
    with pytest.raises(ValueError, match=message):
        LeaseSettings(**override)


def test_the_gpu_script_has_the_lease_stage_and_its_readme_the_call():
    script = (REPO / "tools" / "gpu" / "device_checks.sh").read_text()
    assert "    lm_lease)" in script and "configs/lm/lease-125m.yaml" in script and "T_LM_LEASE" in script
    assert "dry-run-overrides" in script
    subprocess.run(["bash", "-n", str(REPO / "tools" / "gpu" / "device_checks.sh")], check=True)
    readme = (REPO / "tools" / "gpu" / "README.md").read_text()
    assert "STAGES=lm_lease" in readme and "pack_lm_lease.sh" in readme


def test_the_pack_script_carries_what_the_lease_reads_within_the_limit(tmp_path):
    source = data_root()
    if not (source / "enwiki_corpus" / "enwiki2015_part_AA.txt.xz").is_file():
        pytest.skip(f"no Wikipedia part in the data root {source}")
    dest = tmp_path / "data"
    env = {**os.environ, "XLSTM_SEQ_DATA": str(source), "REVISION_FILE": str(tmp_path / "revision")}
    done = subprocess.run(
        ["bash", "tools/gpu/pack_lm_lease.sh", str(dest)], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "of the 64.0 MiB a call may carry" in done.stdout
    for name in eval_data.FILES:
        eval_data._path(name, dest)  # raises when the packed root lacks a file the suite reads
    assert all(path.is_file() for path in local_bpe_files(dest))
    assert [p.name for p in (dest / "enwiki_corpus").iterdir()] == ["enwiki2015_part_AA.txt.xz"]
