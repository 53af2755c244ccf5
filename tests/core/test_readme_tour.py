"""The README's Python quickstarts run as written, and do what their comments say.

Every ```python block runs, in order, in one namespace, in a temporary working directory with a temporary MLflow
store and an empty data root (the quickstarts need only the data bundled with the package). None is left out.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[2] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_the_four_quickstarts_and_stays_a_front_door():
    blocks = _python_blocks()
    assert [b for b in blocks if "xLSTMStack" in b] and [b for b in blocks if "XLSTMForecaster" in b]
    assert [b for b in blocks if "XLSTMPPO" in b] and [b for b in blocks if "Trainer" in b]
    assert all(len(b.strip().splitlines()) <= 13 for b in blocks), "a quickstart stays short; details go to docs/"
    assert len(README.read_text().splitlines()) <= 200


def test_readme_python_blocks_run_and_keep_their_promises(tmp_path, monkeypatch, one_torch_thread):
    pytest.importorskip("pandas")
    pytest.importorskip("stable_baselines3")
    pytest.importorskip("tiktoken")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("XLSTM_SEQ_DATA", str(tmp_path / "empty_data_root"))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for index, block in enumerate(_python_blocks()):
        exec(compile(block, f"README.md python block {index}", "exec"), namespace)  # noqa: S102
    ns = namespace

    # The core: any length; two chunks with the state carried give the one pass; a step maps (B, E) -> (B, E).
    assert ns["y"].shape == (4, 500, 64) and ns["y_t"].shape == (4, 64)
    torch.testing.assert_close(torch.cat([ns["y1"], ns["y2"]], dim=1), ns["y"], atol=1e-5, rtol=1e-5)
    assert list(ns["stack"].block_types) == ["m", "s"]

    # Forecasting: the bundled data, the columns the comment lists, cross-validation's columns, a folder that loads.
    assert len(ns["df"]) == 144
    forecast, cv = ns["forecast"], ns["cv"]
    assert list(forecast.columns) == ["unique_id", "ds", "xLSTMTime", "xLSTMTime-lo-95", "xLSTMTime-lo-80",
                                      "xLSTMTime-hi-80", "xLSTMTime-hi-95"]  # fmt: skip
    assert len(forecast) == 12 and {"cutoff", "y"} <= set(cv.columns) and cv["cutoff"].nunique() == 2
    loaded = ns["XLSTMForecaster"].load("airpassengers")
    assert loaded.predict(level=[80, 95])["xLSTMTime"].to_numpy() == pytest.approx(forecast["xLSTMTime"].to_numpy())

    # RL: trained for the steps asked; predict hands the memory back; the saved model loads without an env.
    model, obs, state = ns["model"], ns["obs"], ns["state"]
    assert model.num_timesteps >= 1024 and ns["action"].shape == (4,) and state is not None
    again = ns["XLSTMPPO"].load("cartpole_novel", device="cpu")
    assert (again.predict(obs, state, deterministic=True)[0] == model.predict(obs, state, deterministic=True)[0]).all()

    # LM: the steps asked, a checkpoint in out_dir, and a model that learned its sentence.
    assert ns["summary"]["step"] == 40 and list((tmp_path / "runs/lm/checkpoints").iterdir())
    assert bytes(ns["out"][0].tolist()).decode() == "the cat sat on the mat."

    # Nothing downloaded into the data root, and every run went to the temporary MLflow store.
    assert not (tmp_path / "empty_data_root").exists()
    assert (tmp_path / "mlflow.db").is_file()


def _command_rows() -> list[str]:
    """The commands of the README's command table (the first cell of each row, without its backticks)."""
    return re.findall(r"^\| `(xlstm-seq [^`]+)` \|", README.read_text(), flags=re.M)


def test_every_command_in_the_table_exists_and_its_config_loads(capsys):
    from xlstm_seq.cli.main import build_parser, config_class_for_command
    from xlstm_seq.config_io import load_yaml

    rows = _command_rows()
    assert len(rows) >= 10, rows
    for row in rows:
        words = row.split()[1:]
        subcommand = [w for w in words[:2] if re.fullmatch(r"[a-z0-9]+", w)]
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args([*subcommand, "--help"])
        assert exit_info.value.code == 0, f"`{row}`: no such command"
        capsys.readouterr()
        if "--config" in words and words[words.index("--config") + 1].startswith("configs/"):
            path = README.parent / words[words.index("--config") + 1]
            assert path.is_file(), f"`{row}` names a config that does not exist"
            config_class_for_command(" ".join(subcommand)).from_dict(load_yaml(path))
