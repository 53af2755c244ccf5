"""The layer rule as code: import-linter's contracts in pyproject.toml hold for the tree, and they catch a wrong
arrow when one is added."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import check_layers  # noqa: E402

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("importlinter") is None, reason="import-linter is not installed (the dev extra has it)"
)


def test_every_import_contract_is_kept():
    result = check_layers.lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "added_import", "broken"),
    [
        ("kernels/registry.py", "import xlstm_seq.stack", "xlstm_seq.kernels.registry -> xlstm_seq.stack"),
        ("rl/envs.py", "import xlstm_seq.lm.tokenizer", "xlstm_seq.rl.envs -> xlstm_seq.lm.tokenizer"),
        ("stack.py", "import xlstm_seq.forecasting", "xlstm_seq.stack -> xlstm_seq.forecasting"),
        ("state.py", "import xlstm_seq_bench", "xlstm_seq.state -> xlstm_seq_bench"),
        ("forecasting/metrics.py", "import neuralforecast", "xlstm_seq.forecasting.metrics -> neuralforecast"),
    ],
    ids=["kernels-import-core", "app-imports-app", "core-imports-app", "library-imports-bench", "library-imports-peer"],
)
def test_a_wrong_arrow_breaks_a_contract(tmp_path, module, added_import, broken):
    check_layers.stage_installed_layout(tmp_path)
    path = tmp_path / "xlstm_seq" / module
    path.write_text(path.read_text() + f"\n{added_import}\n")
    result = check_layers.lint_staged(tmp_path)
    assert result.returncode != 0
    assert broken in " ".join(result.stdout.split()), result.stdout
