"""An XLSTMPPO agent as one safetensors file that loads without unpickling anything.

The policy's weights are the file's tensors; everything else a standalone load needs (the algorithm's constructor
arguments, the policy alias and its constructor arguments with the xLSTM config, the observation and action spaces)
is JSON in the file's header (``agent`` in its metadata; ``safetensors.safe_open(path, "pt").metadata()`` shows it).
Reading it parses numbers and JSON only: no pickle, no code from the file, and classes (activation, optimizer,
features extractor) are looked up by name in torch.nn, torch.optim and stable-baselines3's torch_layers only.

SB3's own ``save``/``load`` zip stores some of these as cloudpickle, which runs code from the file on load: fine for
files you wrote, not for agents from elsewhere.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.utils import ConstantSchedule, FloatSchedule, LinearSchedule, check_for_correct_spaces

if TYPE_CHECKING:
    from stable_baselines3.common.type_aliases import GymEnv

    from xlstm_seq.rl.ppo import XLSTMPPO

FORMAT = "xlstm_seq.rl.XLSTMPPO"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"

# The algorithm's constructor arguments kept as they are (numbers, bools, None) and those that may be schedules.
ALGORITHM_FIELDS = (
    "n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "normalize_advantage", "ent_coef", "vf_coef",
    "max_grad_norm", "target_kl", "sequence_length", "stats_window_size", "seed", "compile",
)  # fmt: skip
SCHEDULE_FIELDS = ("learning_rate", "clip_range", "clip_range_vf")
# Where a class named in the file may come from, and what it must be.
CLASS_HOMES = {
    "torch.nn": torch.nn.Module,
    "torch.optim": torch.optim.Optimizer,
    "stable_baselines3.common.torch_layers": BaseFeaturesExtractor,
}


# ------------------------------------------------------------------------------------------------------ save


def save_agent(model: XLSTMPPO, path: str | Path) -> Path:
    """Writes ``model`` to ``path`` (``.safetensors`` appended when it has another suffix); returns the path.

    Raises:
        ValueError: a setting JSON cannot hold (a custom policy or features extractor class, a callable that is no
            SB3 schedule); the message names it.
    """
    from safetensors.torch import save_model

    path = Path(path)
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    info = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "policy": _policy_alias(model),
        "algorithm": {
            **{name: _plain(getattr(model, name, getattr(model, f"_{name}", None)), name) for name in ALGORITHM_FIELDS},
            **{name: _schedule(model, name) for name in SCHEDULE_FIELDS},
        },
        "policy_kwargs": _policy_kwargs(model),
        "observation_space": space_to_json(model.observation_space),
        "action_space": space_to_json(model.action_space),
        "num_timesteps": int(model.num_timesteps),
        "versions": _versions(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and moved over it, so a failed save leaves an earlier file whole.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_model(model.policy, tmp, metadata={"format": FORMAT, "agent": json.dumps(info)})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _policy_alias(model: XLSTMPPO) -> str:
    for alias, cls in type(model).policy_aliases.items():
        if type(model.policy) is cls:
            return alias
    raise ValueError(
        f"save_safetensors stores the policy by its alias ({sorted(type(model).policy_aliases)}); "
        f"{type(model.policy).__name__} is none of them: use save() (SB3's zip) for a custom policy class"
    )


def _policy_kwargs(model: XLSTMPPO) -> dict[str, Any]:
    kwargs = dict(model.policy._get_constructor_parameters())
    for name in ("observation_space", "action_space", "lr_schedule"):
        kwargs.pop(name, None)
    return {name: _plain(value, f"policy_kwargs.{name}") for name, value in kwargs.items()}


def _schedule(model: XLSTMPPO, name: str) -> Any:
    """A number, ``{"linear": {...}}`` for SB3's LinearSchedule, or None; another callable is refused."""
    value = getattr(model, name)
    inner = value.value_schedule if isinstance(value, FloatSchedule) else value
    if inner is None or isinstance(inner, (int, float)):
        return inner
    if isinstance(inner, ConstantSchedule):
        return float(inner.val)
    if isinstance(inner, LinearSchedule):
        return {"linear": {"start": inner.start, "end": inner.end, "end_fraction": inner.end_fraction}}
    raise ValueError(
        f"{name} is a callable ({inner!r}) that JSON cannot hold; save_safetensors keeps numbers and SB3's "
        "ConstantSchedule or LinearSchedule: set a number (model.learning_rate = ...) or use save()"
    )


def _plain(value: Any, key: str) -> Any:
    """``value`` as JSON: numbers, strings, lists, mappings, and classes of CLASS_HOMES as ``{"class": name}``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, type):
        for home, base in CLASS_HOMES.items():
            if issubclass(value, base) and getattr(importlib.import_module(home), value.__name__, None) is value:
                return {"class": f"{home}.{value.__name__}"}
        raise ValueError(
            f"{key} is {value.__module__}.{value.__qualname__}; save_safetensors names classes of "
            f"{sorted(CLASS_HOMES)} only (a class elsewhere would have to be imported by the loader): use save()"
        )
    raise ValueError(f"{key} = {value!r} ({type(value).__name__}) cannot be stored as JSON; use save()")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("xlstm-seq", "stable-baselines3", "torch", "gymnasium"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


# ------------------------------------------------------------------------------------------------------ load


def load_agent(
    cls: type[XLSTMPPO], path: str | Path, env: GymEnv | None = None, device: torch.device | str = "auto"
) -> XLSTMPPO:
    """Rebuilds an agent written by :func:`save_agent`; ``env`` (optional) must have the saved spaces.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not such a file, or a damaged one (unknown format, bad JSON, weights that do not fit the policy
            or are not finite); the message names the file.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_model

    path = Path(path)
    if not path.is_file() and Path(str(path) + SUFFIX).is_file():
        path = Path(str(path) + SUFFIX)
    if not path.is_file():
        raise FileNotFoundError(f"no saved agent at {path}")
    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path} is not a safetensors file: {err}") from err
    if metadata.get("format") != FORMAT or "agent" not in metadata:
        found = metadata.get("format")
        raise ValueError(f"{path} is not an agent written by XLSTMPPO.save_safetensors (format {found!r})")
    try:
        info = json.loads(metadata["agent"])
        if info.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format_version {info.get('format_version')!r}, expected {FORMAT_VERSION}")
        observation_space = space_from_json(info["observation_space"])
        action_space = space_from_json(info["action_space"])
        policy_kwargs = {name: _from_plain(v) for name, v in info["policy_kwargs"].items()}
        algorithm = dict(info["algorithm"])
        for name in SCHEDULE_FIELDS:
            algorithm[name] = _schedule_from_json(algorithm[name], name)
        policy = info["policy"]
        if policy not in cls.policy_aliases:
            raise ValueError(f"unknown policy {policy!r}; known: {sorted(cls.policy_aliases)}")
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} holds an agent description this version cannot read: {err!r}") from err

    if env is not None:
        env = cls._wrap_env(env, verbose=0)
        check_for_correct_spaces(env, observation_space, action_space)
    model = cls(policy, env, device=device, policy_kwargs=policy_kwargs, _init_setup_model=False, **algorithm)
    if env is None:
        model.observation_space, model.action_space, model.n_envs = observation_space, action_space, 1
    model._setup_model()
    try:
        load_model(model.policy, str(path), strict=True, device=str(model.device))
    except (SafetensorError, RuntimeError) as err:
        raise ValueError(f"{path} does not hold the weights of the policy its header describes: {err}") from err
    for name, tensor in model.policy.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{path} holds NaN or infinite values in {name!r}; it is damaged")
    model.num_timesteps = int(info.get("num_timesteps", 0))
    return model


def _from_plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_plain(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"class"}:
            return _class_named(value["class"])
        return {k: _from_plain(v) for k, v in value.items()}
    return value


def _class_named(name: str) -> type:
    home, _, attr = str(name).rpartition(".")
    base = CLASS_HOMES.get(home)
    cls = getattr(importlib.import_module(home), attr, None) if base is not None else None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"class {name!r} is not one save_safetensors writes (from {sorted(CLASS_HOMES)})")
    return cls


def _schedule_from_json(value: Any, name: str) -> Any:
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, dict) and set(value) == {"linear"}:
        return LinearSchedule(**{k: float(value["linear"][k]) for k in ("start", "end", "end_fraction")})
    raise ValueError(f"{name} = {value!r} is neither a number nor a linear schedule")


# ---------------------------------------------------------------------------------------------------- spaces


def _numbers(array: np.ndarray) -> list:
    """An array as nested lists; infinities as the strings "inf"/"-inf" (JSON has no infinity)."""
    if array.ndim > 1:
        return [_numbers(row) for row in array]
    return [float(a) if np.isfinite(a) else str(float(a)) for a in array]


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """A gymnasium space (Box, Discrete, MultiDiscrete, MultiBinary, Dict of those) as JSON."""
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": _numbers(np.asarray(space.low, dtype=np.float64)),
            "high": _numbers(np.asarray(space.high, dtype=np.float64)),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist(), "start": space.start.tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {key: space_to_json(sub) for key, sub in space.spaces.items()}}
    raise ValueError(f"cannot store the space {space} as JSON (Box, Discrete, MultiDiscrete, MultiBinary, Dict)")


def space_from_json(data: dict[str, Any]) -> spaces.Space:
    """The space :func:`space_to_json` described."""
    kind = data["type"]
    if kind == "Box":
        dtype = np.dtype(data["dtype"])
        if dtype.kind not in "fiub":
            raise ValueError(f"Box dtype {dtype} is not numeric")
        low = np.asarray(data["low"], dtype=np.float64).astype(dtype)
        high = np.asarray(data["high"], dtype=np.float64).astype(dtype)
        return spaces.Box(low=low, high=high, shape=tuple(data["shape"]), dtype=dtype)
    if kind == "Discrete":
        return spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(np.asarray(data["nvec"], dtype=np.int64), start=np.asarray(data["start"]))
    if kind == "MultiBinary":
        return spaces.MultiBinary(data["n"])
    if kind == "Dict":
        return spaces.Dict({key: space_from_json(sub) for key, sub in data["spaces"].items()})
    raise ValueError(f"unknown space type {kind!r}")
