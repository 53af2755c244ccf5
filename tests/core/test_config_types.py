"""Typed config checks: every config class refuses a value of the wrong type on construction, naming the dotted key,
the value and the type expected; the command line reports bad settings and bad config files in one line (exit 2)."""

from __future__ import annotations

import dataclasses
import importlib
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pytest

from xlstm_seq import xLSTMConfig
from xlstm_seq.cli.main import console
from xlstm_seq.config import ConfigMixin
from xlstm_seq.config_io import ConfigError, apply_overrides, load_yaml
from xlstm_seq.demo import DemoConfig

LIBRARY_CONFIG_MODULES = (
    "xlstm_seq.config",
    "xlstm_seq.demo",
    "xlstm_seq.forecasting.demo",
    "xlstm_seq.rl.train",
    "xlstm_seq.lm.eval_suite",
    "xlstm_seq.lm.gpt2",
    "xlstm_seq.lm.lstm_lm",
    "xlstm_seq.lm.models",
    "xlstm_seq.lm.shards",
    "xlstm_seq.lm.trainer",
    "xlstm_seq.lm.xlstm_lm",
)


def _config_classes() -> list[type]:
    for name in LIBRARY_CONFIG_MODULES:
        importlib.import_module(name)
    found, todo = [], list(ConfigMixin.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith("xlstm_seq.") and dataclasses.is_dataclass(cls) and cls not in found:
            found.append(cls)
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__name__}")


CONFIG_CLASSES = _config_classes()
WRONG = {int: [2.5, "3", True, None], float: ["0.1", False, None, [1.0]], str: [3, None, ["a"]], bool: [1, "yes"]}


def test_the_library_has_config_classes():
    names = {c.__name__ for c in CONFIG_CLASSES}
    assert {"xLSTMConfig", "mLSTMLayerConfig", "DemoConfig", "TrainConfig", "RLTrainConfig"} <= names


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda c: c.__name__)
def test_every_config_class_refuses_wrong_types_naming_the_field(cls):
    hints = typing.get_type_hints(cls)
    checked = 0
    for f in dataclasses.fields(cls):
        for bad in WRONG.get(hints[f.name], []):
            with pytest.raises(ConfigError, match=rf"^{f.name} must be .*, got {re.escape(repr(bad))} "):
                cls(**{f.name: bad})
            checked += 1
    # Every class has typed scalar fields; a default instance passes its own checks.
    assert checked > 0
    cls()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(embedding_dim="128"), r"^embedding_dim must be an integer, got '128' \(str\) \(write the number without"),
        (dict(num_blocks=2.5), r"^num_blocks must be an integer, got 2\.5 \(float\)$"),
        (dict(num_blocks=2.0), r"^num_blocks must be an integer, got 2\.0 \(float\)$"),
        (dict(num_heads=True), r"^num_heads must be an integer, got True \(bool\)$"),
        (dict(dropout="0.1"), r"^dropout must be a number, got '0\.1' \(str\)"),
        (dict(bias=1), r"^bias must be true or false, got 1 \(int\)$"),
        (dict(backend=None), r"^backend must be a string, got None \(NoneType\)$"),
        (dict(slstm_at=[1, 0.5], num_blocks=2), r"^slstm_at\[1\] must be an integer, got 0\.5 \(float\)$"),
        (dict(slstm_at="0"), r"^slstm_at must be a list of integers, got '0' \(str\)$"),
        (dict(block_ratio=7), r"^block_ratio must be a string or null, got 7 \(int\) \(quote it"),
        (dict(mlstm={"chunk_size": "big"}), r"^mlstm\.chunk_size must be an integer or null, got 'big' \(str\)$"),
        (dict(mlstm={"proj_factor": None}), r"^mlstm\.proj_factor must be a number, got None"),
        (dict(slstm={"num_heads": 1.5}), r"^slstm\.num_heads must be an integer or null, got 1\.5"),
        (dict(mlstm=3), r"^mlstm must be a mapping of mLSTMLayerConfig settings, got 3 \(int\)$"),
        (dict(mlstm={"heads": 3}), r"^mlstm: unknown mLSTMLayerConfig field\(s\) \['heads'\]"),
    ],
)
def test_xlstm_config_refuses_wrong_types_at_construction(kwargs, message):
    with pytest.raises(ConfigError, match=message) as caught:
        xLSTMConfig(**kwargs)
    assert isinstance(caught.value, ValueError)  # callers that catch ValueError keep working


def test_right_types_pass_and_numbers_are_kept_as_given():
    config = xLSTMConfig(embedding_dim=np.int64(64), dropout=np.float32(0.5), mlstm={"proj_factor": 2}, slstm_at=(1,))
    assert type(config.embedding_dim) is int and type(config.dropout) is float  # NumPy scalars become Python's
    assert config.mlstm.proj_factor == 2 and type(config.mlstm.proj_factor) is int  # a float field takes an int
    assert config.slstm_at == [1] and xLSTMConfig.from_yaml(config.to_yaml()) == config
    assert xLSTMConfig(dropout=0).dropout == 0


def test_nested_configs_name_the_dotted_key():
    with pytest.raises(ConfigError, match=r"^model\.num_blocks must be an integer, got 'two' \(str\)$"):
        DemoConfig.from_dict({"model": {"num_blocks": "two"}})
    with pytest.raises(ConfigError, match=r"^model\.mlstm\.conv_kernel_size must be an integer, got 1\.5"):
        DemoConfig(model={"mlstm": {"conv_kernel_size": 1.5}})
    # A range check of the nested class names its section too.
    with pytest.raises(ConfigError, match=r"^model: embedding_dim \(60\) must be divisible by num_heads \(7\)$"):
        DemoConfig.from_dict({"model": {"embedding_dim": 60, "num_heads": 7}})
    with pytest.raises(ConfigError, match=r"^steps must be an integer, got 2\.5 \(float\)$"):
        DemoConfig.from_dict({"steps": 2.5})
    with pytest.raises(ConfigError, match=r"^steps must be >= 1, got 0$"):
        DemoConfig.from_dict({"steps": 0})  # the class's own range check, as a ConfigError


@dataclass
class _Choices(ConfigMixin):
    mode: Literal["fast", "exact"] = "fast"
    weights: dict[str, float] = field(default_factory=dict)
    pair: tuple[int, str] = (1, "a")
    anything: Any = None
    sizes: list[int] | None = None

    def __post_init__(self) -> None:
        if self.sizes is not None and not self.sizes:
            raise ValueError("sizes must not be empty")


class _Child(_Choices):
    """A subclass inherits the checks without asking for them."""


@pytest.mark.parametrize("cls", [_Choices, _Child])
def test_literals_mappings_tuples_and_optionals(cls):
    assert cls(mode="exact", weights={"a": 1, "b": 0.5}, pair=[2, "b"], anything=object(), sizes=[3]).mode == "exact"
    for kwargs, message in [
        (dict(mode="slow"), r"^mode must be one of \['fast', 'exact'\], got 'slow' \(str\)$"),
        (dict(weights={"a": "heavy"}), r"^weights\.a must be a number, got 'heavy' \(str\)$"),
        (dict(weights=[1.0]), r"^weights must be a mapping of numbers, got \[1\.0\] \(list\)$"),
        (dict(pair=(1, 2)), r"^pair\[1\] must be a string, got 2 \(int\)"),
        (dict(pair=(1,)), r"^pair must hold 2 values, got \(1,\) \(tuple\)$"),
        (dict(sizes=[1, "2"]), r"^sizes\[1\] must be an integer, got '2' \(str\)"),
        (dict(sizes=5), r"^sizes must be a list of integers or null, got 5 \(int\)$"),
    ]:
        with pytest.raises(ConfigError, match=message):
            cls(**kwargs)
    with pytest.raises(ConfigError, match="^sizes must not be empty$"):
        cls.from_dict({"sizes": []})  # a ValueError of __post_init__ read from a dict is a ConfigError


def test_yaml_reads_exponents_as_numbers_and_names_the_file_and_line(tmp_path):
    assert load_yaml("lr: 1e-3\nbig: 2E5\nname: '1e3'\nn: 12") == {"lr": 0.001, "big": 200000.0, "name": "1e3", "n": 12}
    assert apply_overrides({"lr": 0.1}, ["lr=3e-4"]) == {"lr": 0.0003}
    broken = tmp_path / "broken.yaml"
    broken.write_text("model:\n  embedding_dim: 64\n   num_blocks: [2\n")
    with pytest.raises(ConfigError, match=rf"^{broken}, line 3, column 14: not valid YAML \(mapping values"):
        load_yaml(broken)
    with pytest.raises(FileNotFoundError, match=r"^config file .*missing\.yaml does not exist$"):
        load_yaml(str(tmp_path / "missing.yaml"))
    with pytest.raises(FileNotFoundError, match=r"is a folder, not a file"):
        load_yaml(str(tmp_path))
    with pytest.raises(ConfigError, match=r"^override 'a=\[1', line 1, column 3: not valid YAML"):
        apply_overrides({"a": 1}, ["a=[1"])
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="list.yaml: expected a YAML mapping of settings, got list"):
        load_yaml(tmp_path / "list.yaml")


def _cli(capsys, *argv: str) -> str:
    """Runs the installed command's entry point; checks exit status 2 and one line on stderr; returns the line."""
    assert console(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("xlstm-seq: error: ") and err.endswith("(run with --verbose for the traceback)\n"), err
    return err


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ('steps: "twenty"\n', "steps must be an integer, got 'twenty' (str)"),
        ("steps: 2.5\n", "steps must be an integer, got 2.5 (float)"),
        ("model: {num_blocks: two}\n", "model.num_blocks must be an integer, got 'two' (str)"),
        ("learning_rate: fast\n", "learning_rate must be a number, got 'fast' (str)"),
        ("steps: 3\n  horizon: [1\n", "broken.yaml, line 2, column 10: not valid YAML"),
        ("- steps\n", "broken.yaml: expected a YAML mapping of settings, got list"),
    ],
)
def test_bad_yaml_values_exit_2_in_one_line(yaml_text, message, tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text(yaml_text)
    assert message in _cli(capsys, "demo", "--no-track", "--parts", "core", "--config", str(path))


def test_bad_overrides_and_missing_files_exit_2_in_one_line(tmp_path, capsys):
    run = ("demo", "--no-track", "--parts", "core")
    assert "model.num_blocks must be an integer, got 'two' (str)" in _cli(capsys, *run, "model.num_blocks=two")
    assert "steps must be an integer, got 'abc' (str)" in _cli(capsys, *run, "steps=abc")
    assert "unknown key 'stepz'" in _cli(capsys, *run, "stepz=3")
    assert "not valid YAML" in _cli(capsys, *run, "model.slstm_at=[1")
    missing = tmp_path / "nope.yaml"
    assert f"config file {missing} does not exist" in _cli(capsys, *run, "--config", str(missing))
    pytest.importorskip("xlstm_seq.lm.trainer")
    assert "max_steps must be an integer, got 'abc' (str)" in _cli(capsys, "lm", "train", "--no-track", "max_steps=abc")
    with pytest.raises(ConfigError):  # --verbose keeps the traceback
        console(["--verbose", *run, "steps=abc"])
