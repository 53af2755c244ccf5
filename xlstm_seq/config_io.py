"""Dataclass <-> dict <-> YAML conversion and dotted command-line overrides (``model.num_blocks=4``)."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml


def config_to_dict(config: Any) -> dict[str, Any]:
    """A nested plain dict of a (nested) config dataclass."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"expected a config dataclass, got {type(config).__name__}")
    return dataclasses.asdict(config)


def _dataclass_type(annotation: Any) -> type | None:
    """The dataclass inside an annotation such as ``X``, ``X | None`` or ``Optional[X]``; else None."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Builds ``cls`` from a nested dict; an unknown key raises ValueError naming it and the valid keys."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} expects a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; valid fields: {names}")
    kwargs = {}
    for key, value in data.items():
        nested = _dataclass_type(hints.get(key))
        kwargs[key] = config_from_dict(nested, value) if nested is not None and isinstance(value, dict) else value
    return cls(**kwargs)


def dump_yaml(data: dict[str, Any], path: str | Path | None = None, header: str | None = None) -> str:
    """YAML text of ``data`` (key order kept); written to ``path`` when given, ``header`` as a comment line."""
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    if header:
        text = "".join(f"# {line}\n" for line in header.splitlines()) + text
    if path is not None:
        Path(path).write_text(text)
    return text


def load_yaml(path_or_text: str | Path) -> dict[str, Any]:
    """Reads a YAML mapping from a file path or from YAML text."""
    is_path = isinstance(path_or_text, Path) or ("\n" not in path_or_text and Path(path_or_text).is_file())
    text = Path(path_or_text).read_text() if is_path else path_or_text
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"expected a YAML mapping in {path_or_text!s:.80}, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Applies ``key.sub=value`` overrides (values parsed as YAML) to a nested dict, in place; returns it.

    A plain override may only change a key the config already has, so a typo fails here. ``+key.sub=value`` (Hydra's
    spelling) adds a key the config lacks, and the sections on its way, e.g. a setting for one data set that
    ``per_dataset`` does not name yet; the config class still checks the result.
    """
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key.sub=value")
        dotted, raw = item.split("=", 1)
        dotted = dotted.strip()
        adding = dotted.startswith("+")
        keys = dotted.removeprefix("+").split(".")
        node = data
        for depth, name in enumerate(keys[:-1]):
            key = _existing_key(node, name)
            if adding and key not in node:
                key = _new_key(name)
                node[key] = {}
            if not isinstance(node.get(key), dict):
                raise ValueError(f"override {item!r}: {'.'.join(keys[: depth + 1])} is not a section of the config")
            node = node[key]
        key = _existing_key(node, keys[-1])
        if adding:
            if key in node:
                raise ValueError(f"override {item!r}: {keys[-1]!r} is already set here; drop the '+' to change it")
            key = _new_key(keys[-1])
        elif key not in node:
            raise ValueError(
                f"override {item!r}: unknown key {keys[-1]!r}; valid keys here: {sorted(map(str, node))} "
                f"(prefix the override with '+' to add a key)"
            )
        node[key] = yaml.safe_load(raw)
    return data


def _new_key(name: str) -> Any:
    """The key a YAML file would have written for the dotted part ``name``: digits as an integer, as ``336:`` reads."""
    return int(name) if name.lstrip("-").isdigit() else name


def _existing_key(node: dict[Any, Any], name: str) -> Any:
    """The key of ``node`` that the dotted part ``name`` means: YAML reads ``336:`` as the integer 336, which a
    dotted override spells as the text "336"."""
    if name not in node and _new_key(name) in node:
        return _new_key(name)
    return name
