"""Dataclass <-> dict <-> YAML conversion, dotted command-line overrides (``model.num_blocks=4``) and the typed check
of every config field.

Every config class (a dataclass deriving from ``xlstm_seq.config.ConfigMixin``) has its fields checked against their
annotations when it is constructed, before its own ``__post_init__`` runs: an ``int`` field takes an integer (not a
float, a string or a bool), a ``float`` field any real number, ``X | None`` also None, ``list[X]``, ``dict[K, V]``,
``Literal[...]`` and nested config classes element by element. A wrong value raises :class:`ConfigTypeError` (a
``ConfigError``, so a ``ValueError``, and a ``TypeError``) naming the dotted key, the value and the type expected,
e.g. ``model.num_blocks must be an integer, got 'two' (str)``. Free-form sections (``dict[str, Any]`` and lists or
mappings of them) are the config class's to check.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import numbers
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ConfigError",
    "ConfigTypeError",
    "apply_overrides",
    "check_config_types",
    "config_from_dict",
    "config_to_dict",
    "dump_yaml",
    "load_yaml",
]

logger = logging.getLogger(__name__)

_UNIONS = (typing.Union, types.UnionType)


class ConfigError(ValueError):
    """A setting that cannot work: a value of the wrong type or out of range, an unknown key, a config file that is
    missing or not valid YAML. The message names the dotted key (or the file and line); ``key`` holds the dotted key
    when there is one. The command line reports it in one line (exit status 2)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(f"{key} {message}" if key else message)
        self.key = key
        self.detail = message

    def under(self, prefix: str) -> ConfigError:
        """The same error for a config nested at ``prefix`` (``num_blocks`` under ``model`` is ``model.num_blocks``)."""
        if self.key:
            return type(self)(self.detail, f"{prefix}.{self.key}")
        return type(self)(f"{prefix}: {self.detail}")


class ConfigTypeError(ConfigError, TypeError):
    """A setting of the wrong type (``num_blocks=2.5``, ``embedding_dim="128"``); also a ``TypeError``."""


# ------------------------------------------------------------------------------------------------ YAML


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, which also reads ``1e-3`` and ``2E5`` as numbers (YAML 1.2 does; PyYAML's YAML 1.1
    rules read an exponent without a dot as text)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else source
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        context = getattr(err, "context", None)
        reason = f"{context}, {problem}" if context else problem
        raise ConfigError(f"{where}: not valid YAML ({reason})") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A nested plain dict of a (nested) config dataclass."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"expected a config dataclass, got {type(config).__name__}")
    return dataclasses.asdict(config)


def dump_yaml(data: dict[str, Any], path: str | Path | None = None, header: str | None = None) -> str:
    """YAML text of ``data`` (key order kept); written to ``path`` when given, ``header`` as a comment line."""
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    if header:
        text = "".join(f"# {line}\n" for line in header.splitlines()) + text
    if path is not None:
        Path(path).write_text(text)
    return text


def load_yaml(path_or_text: str | Path) -> dict[str, Any]:
    """Reads a YAML mapping from a file path or from YAML text.

    Raises:
        FileNotFoundError: a path (a ``Path``, or one line of text ending in .yaml/.yml) that does not exist.
        ConfigError: text that is not valid YAML (naming the file, line and column), or YAML that is not a mapping.
    """
    text, source = _read_source(path_or_text)
    data = _parse_yaml(text, source)
    if isinstance(data, str) and "\n" not in text.strip() and data == text.strip():
        # One word that is no file: meant as a path (YAML would read it as a lone string).
        raise FileNotFoundError(f"config file {text.strip()} does not exist")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a YAML mapping of settings, got {type(data).__name__}")
    return data


def _read_source(path_or_text: str | Path) -> tuple[str, str]:
    """The YAML text and how to name it in an error (the file, or "the YAML text")."""
    if isinstance(path_or_text, Path) or (
        "\n" not in path_or_text and (Path(path_or_text).exists() or path_or_text.endswith((".yaml", ".yml")))
    ):
        path = Path(path_or_text)
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            raise FileNotFoundError(f"config file {path} {what}")
        try:
            return path.read_text(), str(path)
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}: not a text file ({err.reason})") from None
    return path_or_text, "the YAML text"


# ---------------------------------------------------------------------------------------------- overrides


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Applies ``key.sub=value`` overrides (values parsed as YAML) to a nested dict, in place; returns it.

    A plain override may only change a key the config already has, so a typo fails here. ``+key.sub=value`` (Hydra's
    spelling) adds a key the config lacks, and the sections on its way, e.g. a setting for one data set that
    ``per_dataset`` does not name yet; the config class still checks the result (types included).

    Raises:
        ConfigError: an override that is not ``key=value``, names an unknown key, or whose value is not valid YAML.
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
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
                raise ConfigError(f"override {item!r}: {'.'.join(keys[: depth + 1])} is not a section of the config")
            node = node[key]
        key = _existing_key(node, keys[-1])
        if adding:
            if key in node:
                raise ConfigError(f"override {item!r}: {keys[-1]!r} is already set here; drop the '+' to change it")
            key = _new_key(keys[-1])
        elif key not in node:
            raise ConfigError(
                f"override {item!r}: unknown key {keys[-1]!r}; valid keys here: {sorted(map(str, node))} "
                f"(prefix the override with '+' to add a key)"
            )
        node[key] = _parse_yaml(raw, f"override {item!r}")
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


# ------------------------------------------------------------------------------------------ dict -> config


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Builds ``cls`` from a nested dict (nested config classes from nested dicts).

    Raises:
        ConfigError: ``data`` is not a mapping, holds a key ``cls`` lacks (the error lists the valid keys), or a value
            the class refuses (a wrong type, or a value its ``__post_init__`` rejects, e.g. out of range).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__} expects a mapping of its fields, got {_shown(data)}")
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(map(str, set(data) - set(names)))
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s) {unknown}; valid fields: {names}")
    hints = _field_types(cls)
    kwargs = {}
    for key, value in data.items():
        nested = _dataclass_in(hints.get(key))
        kwargs[key] = _nested_config(nested, value, key) if nested is not None and isinstance(value, dict) else value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as err:
        # A range or consistency check of the class's own __post_init__: the settings' fault, not the program's.
        raise ConfigError(str(err)) from err


def _nested_config(cls: type, value: dict[str, Any], key: str) -> Any:
    try:
        return config_from_dict(cls, value)
    except ConfigError as err:
        raise err.under(key) from err.__cause__


def _dataclass_in(annotation: Any) -> type | None:
    """The dataclass inside an annotation such as ``X``, ``X | None`` or ``Optional[X]``; else None."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    if typing.get_origin(annotation) in _UNIONS:
        for arg in typing.get_args(annotation):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


# ------------------------------------------------------------------------------------------- typed checks


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """The resolved annotations of ``cls``'s fields; empty (nothing checked) when a name in them cannot be resolved,
    e.g. one imported only for type checkers."""
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError, AttributeError) as err:
        logger.debug("the field types of %s are not checked: %s", cls.__name__, err)
        return {}


def check_config_types(config: Any) -> None:
    """Checks every init field of the config dataclass ``config`` against its annotation, in place.

    Mappings given for nested config classes are turned into those classes (their own checks run then); NumPy scalars
    become the Python numbers they hold.

    Raises:
        ConfigError: the first field whose value does not fit, naming its dotted key, the value and the type expected.
    """
    hints = _field_types(type(config))
    for f in dataclasses.fields(config):
        if not f.init or f.name not in hints:
            continue
        value = getattr(config, f.name)
        checked = _check(value, hints[f.name], f.name)
        if checked is not value:
            object.__setattr__(config, f.name, checked)


def _shown(value: Any) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def _describe(annotation: Any) -> str:
    """How an error message names the values an annotation allows."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any or annotation is object:
        return "anything"
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "an integer"
    if annotation is float:
        return "a number"
    if annotation is str:
        return "a string"
    if annotation is type(None):
        return "null"
    if origin is typing.Literal:
        return f"one of {list(args)}"
    if origin in _UNIONS:
        return " or ".join(_describe(a) for a in args)
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set, frozenset):
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return f"a list of {len(args)} values ({', '.join(_describe(a) for a in args)})"
        return f"a list of {_plural(args[0])}" if args and args[0] is not Any else "a list"
    if origin is dict or annotation is dict:
        return f"a mapping of {_plural(args[1])}" if args and args[1] is not Any else "a mapping"
    if dataclasses.is_dataclass(annotation):
        return f"a mapping of {annotation.__name__} settings"
    return f"a {getattr(annotation, '__name__', str(annotation))}"


def _plural(annotation: Any) -> str:
    text = _describe(annotation)
    plural = {"an integer": "integers", "a number": "numbers", "a string": "strings", "true or false": "booleans"}
    if text in plural:
        return plural[text]
    return "mappings" if text.startswith("a mapping") else "lists" if text.startswith("a list") else text


def _fail(value: Any, annotation: Any, key: str) -> ConfigError:
    allowed = set(typing.get_args(annotation)) if typing.get_origin(annotation) in _UNIONS else {annotation}
    hint = ""
    if allowed & {int, float} and isinstance(value, str) and _is_number(value):
        hint = " (write the number without quotes)"
    elif str in allowed and isinstance(value, (int, float)) and not isinstance(value, bool):
        hint = " (quote it to make it text)"
    return ConfigTypeError(f"must be {_describe(annotation)}, got {_shown(value)}{hint}", key)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check(value: Any, annotation: Any, key: str) -> Any:
    """``value`` if it fits ``annotation`` (nested configs built from mappings, NumPy scalars as Python ones); else
    raises ConfigError naming ``key``."""
    if annotation is Any or annotation is object or isinstance(annotation, typing.TypeVar):
        return value
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in _UNIONS:
        for arg in args:
            try:
                return _check(value, arg, key)
            except ConfigError as err:
                if err.key != key:  # a nested value of the matching type was wrong: report that one
                    raise
        raise _fail(value, annotation, key)
    if annotation is type(None):
        if value is None:
            return value
        raise _fail(value, annotation, key)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if type(value).__name__ == "bool_":  # numpy.bool_
            return bool(value)
        raise _fail(value, annotation, key)
    if annotation is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__name__ != "bool_":
            return value if type(value) is int else int(value)
        raise _fail(value, annotation, key)
    if annotation is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__name__ != "bool_":
            return value if type(value) in (int, float) else float(value)
        raise _fail(value, annotation, key)
    if annotation is str:
        if isinstance(value, str):
            return value
        raise _fail(value, annotation, key)
    if origin is typing.Literal:
        if any(value is a or (value == a and type(value) is type(a)) for a in args):
            return value
        raise _fail(value, annotation, key)
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set, frozenset):
        if not isinstance(value, (list, tuple)):
            raise _fail(value, annotation, key)
        return _check_items(value, annotation, args, key)
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise _fail(value, annotation, key)
        return _check_mapping(value, args, key)
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if isinstance(value, dict):
            return _nested_config(annotation, value, key)
        raise _fail(value, annotation, key)
    if annotation is Path:
        if isinstance(value, (str, Path)):
            return value
        raise _fail(value, annotation, key)
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise _fail(value, annotation, key)
    return value


def _free_form(annotation: Any) -> bool:
    """``Any``, or a list or mapping that ends in ``Any`` (``dict[str, Any]``, ``list[dict[str, Any]]``): free-form
    settings, which the config class checks itself (with the messages of its own domain)."""
    if annotation is Any or annotation is object or annotation in (list, dict, tuple):
        return True
    args = typing.get_args(annotation)
    return typing.get_origin(annotation) in (list, dict, tuple) and bool(args) and _free_form(args[-1])


def _check_items(value: list | tuple, annotation: Any, args: tuple, key: str) -> list | tuple:
    if not args or _free_form(args[-1]):
        return value
    if typing.get_origin(annotation) is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        if len(value) != len(args):
            raise ConfigTypeError(f"must hold {len(args)} values, got {_shown(value)}", key)
        item_types = list(args)
    else:
        item_types = [args[0]] * len(value)
    items = [_check(item, t, f"{key}[{i}]") for i, (item, t) in enumerate(zip(value, item_types, strict=True))]
    if all(a is b for a, b in zip(items, value, strict=True)):
        return value
    return type(value)(items)


def _check_mapping(value: dict, args: tuple, key: str) -> dict:
    if not args or _free_form(args[1]):
        return value
    value_type = args[1]
    # Keys are not checked: YAML reads ``336:`` as an integer where a str key is declared, and both mean the same.
    out = {k: _check(v, value_type, f"{key}.{k}") for k, v in value.items()}
    if all(out[k] is value[k] for k in value):
        return value
    return out
