"""Config validation, YAML round trips, and every YAML under configs/."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from xlstm_seq import mLSTMLayerConfig, sLSTMLayerConfig, xLSTMConfig
from xlstm_seq.cli.main import config_class_for_command
from xlstm_seq.config_io import apply_overrides
from xlstm_seq.demo import DemoConfig

REPO = Path(__file__).resolve().parents[2]
ALL_YAML = sorted((REPO / "configs").rglob("*.yaml")) + sorted((REPO / "configs").rglob("*.yml"))


@pytest.mark.parametrize(
    "config",
    [
        xLSTMConfig(),
        xLSTMConfig(embedding_dim=96, num_blocks=6, num_heads=3, block_ratio="[2:1]", backend="torch"),
        xLSTMConfig(slstm_at=[0, 2], mlstm=mLSTMLayerConfig(input_gate="sigmoid", chunk_size=32)),
        xLSTMConfig(slstm=sLSTMLayerConfig(num_heads=2, conv_kernel_size=1)),
        DemoConfig(),
    ],
    ids=["default", "ratio", "slstm_at-sigmoid", "slstm-heads", "demo"],
)
def test_config_round_trips_through_yaml(config, tmp_path):
    path = tmp_path / "config.yaml"
    config.to_yaml(path, header="xlstm-seq demo --config config.yaml")
    assert type(config).from_yaml(path) == config
    assert type(config).from_yaml(config.to_yaml()) == config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(embedding_dim=100, num_heads=3), "divisible by num_heads"),
        (dict(num_blocks=4, slstm_at=[4]), r"slstm_at entries must be block positions in \[0, 3\]"),
        (dict(slstm_at=[1, 1]), "duplicates"),
        (dict(block_ratio="7:1", num_blocks=6), "multiple of 8"),
        (dict(block_ratio="seven"), "must look like '7:1'"),
        (dict(block_ratio="1:1", slstm_at=[1]), "either slstm_at or block_ratio"),
        (dict(backend="cudnn"), "backend must be one of"),
        (dict(dropout=1.0), "dropout must be in"),
        (dict(mlstm=dict(input_gate="relu")), "input_gate must be one of"),
        (dict(embedding_dim=64, num_heads=4, slstm=dict(num_heads=5)), "divisible by the sLSTM heads"),
        (dict(embedding_dim=12, num_heads=4, mlstm=dict(proj_factor=1.0, qkv_proj_blocksize=8)), "qkv_proj_blocksize"),
    ],
)
def test_invalid_config_raises_with_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        xLSTMConfig(**kwargs)


def test_unknown_yaml_key_is_named():
    with pytest.raises(ValueError, match=r"unknown xLSTMConfig field\(s\) \['num_layers'\]"):
        xLSTMConfig.from_dict({"num_layers": 4})


def test_block_ratio_resolves_positions():
    assert xLSTMConfig(num_blocks=8, block_ratio="7:1").slstm_block_ids == [7]
    assert xLSTMConfig(num_blocks=4, block_ratio="1:1").slstm_block_ids == [1, 3]
    assert xLSTMConfig(num_blocks=3, block_ratio="0:1").slstm_block_ids == [0, 1, 2]
    assert xLSTMConfig(num_blocks=3, block_ratio="1:0").slstm_block_ids == []


def test_dotted_overrides():
    data = apply_overrides(DemoConfig().to_dict(), ["model.num_blocks=4", "steps=7", "model.mlstm.input_gate=sigmoid"])
    config = DemoConfig.from_dict(data)
    assert (config.model.num_blocks, config.steps, config.model.mlstm.input_gate) == (4, 7, "sigmoid")
    with pytest.raises(ValueError, match="unknown key 'num_layer'"):
        apply_overrides(DemoConfig().to_dict(), ["model.num_layer=4"])


def test_dotted_overrides_reach_integer_keys():
    # YAML reads "336:" as an integer key (the forecasting benchmark's by_horizon); the override spells it as text.
    data = {"by_horizon": {336: {"loss": "mse"}, 96: {"loss": "mae"}}}
    apply_overrides(data, ["by_horizon.336.loss=mae", "by_horizon.96=null"])
    assert data == {"by_horizon": {336: {"loss": "mae"}, 96: None}}
    with pytest.raises(ValueError, match="by_horizon.720 is not a section"):
        apply_overrides(data, ["by_horizon.720.loss=mse"])
    with pytest.raises(ValueError, match=r"unknown key '720'; valid keys here: \['336', '96'\]"):
        apply_overrides(data, ["by_horizon.720=1"])


def test_plus_override_adds_missing_keys_and_sections():
    data = {"per_dataset": {"etth1": {"xlstm": {"dropout": 0.5}}}}
    apply_overrides(data, ["+per_dataset.etth1.xlstm.num_heads=2", "+per_dataset.etth1.by_horizon.336.xlstm.loss=mse"])
    assert data == {
        "per_dataset": {
            "etth1": {"xlstm": {"dropout": 0.5, "num_heads": 2}, "by_horizon": {336: {"xlstm": {"loss": "mse"}}}}
        }
    }
    with pytest.raises(ValueError, match="'dropout' is already set here; drop the '\\+'"):
        apply_overrides(data, ["+per_dataset.etth1.xlstm.dropout=0.3"])
    with pytest.raises(ValueError, match="unknown key 'ema_decay'.*prefix the override with '\\+'"):
        apply_overrides(data, ["per_dataset.etth1.xlstm.ema_decay=0.99"])
    with pytest.raises(ValueError, match="per_dataset.etth1.xlstm.dropout is not a section"):
        apply_overrides(data, ["+per_dataset.etth1.xlstm.dropout.rate=0.3"])


def test_configs_folder_is_not_empty():
    assert ALL_YAML, "configs/ holds no YAML"


@pytest.mark.parametrize("path", ALL_YAML, ids=[str(p.relative_to(REPO)) for p in ALL_YAML])
def test_every_yaml_under_configs_opens_with_its_command_and_validates(path):
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# xlstm-seq "), f"{path} must open with the command that runs it"
    words = shlex.split(first_line[2:])
    assert "--config" in words and words[words.index("--config") + 1] == str(path.relative_to(REPO))
    command = " ".join(words[1 : words.index("--config")])
    config = config_class_for_command(command).from_yaml(path)
    assert type(config).from_yaml(config.to_yaml()) == config


def test_backend_per_op_overrides_the_stack_backend():
    config = xLSTMConfig(embedding_dim=32, num_blocks=2, slstm_at=[1], backend="triton", slstm={"backend": "torch"})
    assert (config.mlstm_backend, config.slstm_backend) == ("triton", "torch")
    assert xLSTMConfig.from_yaml(config.to_yaml()) == config
    config = xLSTMConfig(embedding_dim=32, num_blocks=2, slstm_at=[0, 1], backend="cuda")
    assert config.slstm_backend == "cuda"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"slstm_at": [1], "backend": "triton"}, "backend 'triton' has no sLSTM kernel"),
        ({"slstm_at": [1], "backend": "cuda"}, "backend 'cuda' has no mLSTM kernel"),
        ({"mlstm": {"backend": "fast"}}, "mlstm.backend must be None or one of"),
    ],
)
def test_backend_that_lacks_an_op_is_refused_with_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        xLSTMConfig(embedding_dim=32, num_blocks=2, **kwargs)
