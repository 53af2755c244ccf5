"""Saving and loading a fitted StatefulXLSTMForecaster: ``config.json``, ``model.safetensors`` and
``state.safetensors`` (each series' stored state, so that a loaded forecaster goes on streaming), nothing pickled.

It follows ``forecasting.persistence``: the save is written into a new sibling folder and swapped in at the end,
``config.json`` records the SHA-256 of the other files, and a load names the file that is missing, damaged or
mismatched.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from xlstm_seq.devices import resolve_device
from xlstm_seq.forecasting.persistence import (
    _require_finite,
    _sibling,
    _swap_in,
    check_save_target,
    jsonable,
    read_config_json,
    sha256_of,
)

if TYPE_CHECKING:
    from xlstm_seq.forecasting.stateful import StatefulXLSTMForecaster

FORMAT = "stateful-xlstm-1"
CONFIG, WEIGHTS, STATE = "config.json", "model.safetensors", "state.safetensors"
SAVED_FILES = (CONFIG, WEIGHTS, STATE)


def _state_tensors(fc: StatefulXLSTMForecaster) -> dict[str, torch.Tensor]:
    """The stored state as named tensors: ``block<i>.<field>`` per block, ``last_hidden`` and ``recent``."""
    tensors = {"last_hidden": fc.last_hidden_, "recent": fc.recent_}
    for i, block in enumerate(fc.state_.blocks):
        for f in dataclasses.fields(block):
            tensors[f"block{i}.{f.name}"] = getattr(block, f.name)
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def _report_json(report: pd.DataFrame | None) -> dict | None:
    """The guardrail's validation report as JSON: its rows and its attrs (metric, best baseline, fired)."""
    if report is None:
        return None
    return {"rows": report.reset_index().to_dict(orient="records"), "attrs": dict(report.attrs)}


def _read_report(saved: dict | None) -> pd.DataFrame | None:
    if saved is None:
        return None
    report = pd.DataFrame.from_records(saved["rows"]).set_index("forecaster")
    report.attrs.update(saved["attrs"])
    return report


def _config_text(fc: StatefulXLSTMForecaster, checksums: dict[str, str]) -> str:
    last_ds = [int(d) if fc.ds_kind_ == "int" else pd.Timestamp(d).isoformat() for d in fc.last_ds_]
    meta = {
        "format": FORMAT,
        "checksums": checksums,
        "params": fc.get_params(),
        "fitted": {
            "freq": fc.freq_,
            "ds_kind": fc.ds_kind_,
            "series": list(fc.series_),
            "mean": fc.mean_.tolist(),
            "std": fc.std_.tolist(),
            "last_ds": last_ds,
            "fit_seconds": fc.fit_seconds_,
            "steps_trained": fc.steps_trained_,
            "best_val_loss": fc.best_val_loss_,
            "validation_scores": fc.validation_scores_,
            "validation_report": _report_json(fc.validation_report_),
        },  # fmt: skip
    }
    return json.dumps(meta, indent=2, default=jsonable)


def save_stateful(fc: StatefulXLSTMForecaster, path: str | Path) -> Path:
    """Writes ``fc`` into the folder ``path`` (see ``StatefulXLSTMForecaster.save``); returns the folder."""
    from safetensors.torch import save_file

    path = Path(path).expanduser().resolve()
    check_save_target(path, SAVED_FILES)
    _config_text(fc, {})  # a setting JSON cannot hold fails before anything is written
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _sibling(path, "saving")
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in fc.net_.state_dict().items()}, str(staging / WEIGHTS))
        save_file(_state_tensors(fc), str(staging / STATE))
        checksums = {name: sha256_of(staging / name) for name in (WEIGHTS, STATE)}
        (staging / CONFIG).write_text(_config_text(fc, checksums))
        _swap_in(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _read_config(path: Path) -> dict:
    config = path / CONFIG
    meta = read_config_json(path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{config} was not written by StatefulXLSTMForecaster.save (format {FORMAT!r} expected)")
    for key in ("params", "fitted", "checksums"):
        if not isinstance(meta.get(key), dict):
            raise ValueError(f"{config} lacks its {key!r} section")
    return meta


def _read_tensors(path: Path, name: str, checksums: dict, config: Path, device: torch.device) -> dict:
    """The tensors of ``path / name``, checked against the checksum recorded at save and for NaN."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = path / name
    if not file.is_file():
        raise FileNotFoundError(f"the saved forecaster at {path} is incomplete: {name} is missing")
    if sha256_of(file) != checksums.get(name):
        raise ValueError(f"{file} does not match the checksum in {config}: it was damaged or changed after the save")
    try:
        tensors = load_file(str(file), device=str(device))
    except SafetensorError as err:
        raise ValueError(f"{file} is not a readable safetensors file: {err}") from err
    _require_finite(tensors, file)
    return tensors


def load_stateful(cls: type[StatefulXLSTMForecaster], path: str | Path, device: str | None = None):
    """Restores a forecaster written by ``save_stateful`` (see ``StatefulXLSTMForecaster.load``)."""
    path = Path(path)
    meta = _read_config(path)
    config = path / CONFIG
    params = dict(meta["params"])
    if device is not None:
        params["device"] = device
    try:
        fc = cls(**params)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{config} holds settings StatefulXLSTMForecaster does not take: {err}") from err
    fc.device_ = resolve_device(fc.device)
    fitted = meta["fitted"]
    try:
        fc.freq_, fc.ds_kind_, fc.series_ = fitted["freq"], fitted["ds_kind"], list(fitted["series"])
        fc.mean_ = np.asarray(fitted["mean"], dtype=np.float64)
        fc.std_ = np.asarray(fitted["std"], dtype=np.float64)
        raw_ds = fitted["last_ds"]
        fc.last_ds_ = [int(d) for d in raw_ds] if fc.ds_kind_ == "int" else [pd.Timestamp(d) for d in raw_ds]
        fc.fit_seconds_, fc.steps_trained_ = fitted["fit_seconds"], fitted["steps_trained"]
        fc.best_val_loss_, fc.validation_scores_ = fitted["best_val_loss"], fitted["validation_scores"]
        fc.validation_report_ = _read_report(fitted.get("validation_report"))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{config} has a malformed 'fitted' section: {err}") from err
    n = len(fc.series_)
    if not (len(fc.mean_) == len(fc.std_) == len(fc.last_ds_) == n):
        raise ValueError(f"{config}: mean, std and last_ds must hold one entry per series ({n})")
    net = fc._build_net()
    weights = _read_tensors(path, WEIGHTS, meta["checksums"], config, fc.device_)
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        raise ValueError(f"{path / WEIGHTS} does not hold the weights {config} describes: {err}") from err
    net.eval()
    fc.net_ = net
    tensors = _read_tensors(path, STATE, meta["checksums"], config, fc.device_)
    state = net.init_state(n, fc.device_)
    try:
        for i, block in enumerate(state.blocks):
            for f in dataclasses.fields(block):
                saved = tensors[f"block{i}.{f.name}"]
                if saved.shape != getattr(block, f.name).shape:
                    raise ValueError(f"block{i}.{f.name} has shape {tuple(saved.shape)}, expected "
                                     f"{tuple(getattr(block, f.name).shape)}")  # fmt: skip
                setattr(block, f.name, saved)
        fc.last_hidden_, fc.recent_ = tensors["last_hidden"], tensors["recent"]
    except KeyError as err:
        raise ValueError(f"{path / STATE} lacks the tensor {err} of the stored state") from err
    except ValueError as err:
        raise ValueError(f"{path / STATE}: {err}") from err
    if fc.last_hidden_.shape != (n, fc.embedding_dim) or fc.recent_.shape != (n, fc.lags):
        expected = f"({n}, {fc.embedding_dim}) and ({n}, {fc.lags})"
        raise ValueError(f"{path / STATE} holds last_hidden {tuple(fc.last_hidden_.shape)} and recent "
                         f"{tuple(fc.recent_.shape)}; expected {expected}")  # fmt: skip
    fc.state_ = state
    return fc
