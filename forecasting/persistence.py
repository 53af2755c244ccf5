"""Saving and loading a fitted XLSTMForecaster: a folder of JSON, CSV and safetensors files, nothing pickled.

A save is written into a new sibling folder and swapped in at the end, so a save that fails part-way (a full
disk, a setting JSON cannot hold) leaves the model saved before at that path whole, and no file of an older
model (an old calibration, say) survives next to the new one. A folder that holds anything else is refused
rather than replaced. A load that meets a missing, edited or mismatched file says which file and why.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from xlstm_seq.devices import resolve_device
from xlstm_seq.forecasting.calibration import Calibration, lower_quantiles
from xlstm_seq.forecasting.models import build_model
from xlstm_seq.forecasting.settings import check_settings, net_spec
from xlstm_seq.forecasting.validation import DS, ID

if TYPE_CHECKING:
    from xlstm_seq.forecasting.forecaster import XLSTMForecaster

FORMAT_VERSION = 1
CONFIG, WEIGHTS, HISTORY, STATIC, CALIBRATION = (
    "config.json", "model.safetensors", "history.csv", "static.csv", "calibration.safetensors"
)  # fmt: skip
SAVED_FILES = (CONFIG, WEIGHTS, HISTORY, STATIC, CALIBRATION)


def jsonable(value: object) -> object:
    """``json.dumps``'s ``default``: numpy scalars and arrays, pandas offsets; anything else is refused."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, pd.offsets.BaseOffset):
        return value.freqstr
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _config_text(fc: XLSTMForecaster) -> str:
    params = fc.get_params()
    meta = {
        "format_version": FORMAT_VERSION,
        "params": params,
        "fitted": {
            "freq": fc.freq_,
            "exog_columns": fc.exog_columns_,
            "ds_kind": fc.ds_kind_,
            "exog_scale": [a.tolist() for a in fc.exog_scale_],
            "series": list(fc.series_),
            "n_channels": fc.n_channels_,
            "quantiles": fc.quantiles_,
            "fit_seconds": fc.fit_seconds_,
            "steps_trained": fc.steps_trained_,
            "calibrated": getattr(fc, "calibration_", None) is not None,
        },
    }
    try:
        return json.dumps(meta, indent=2, default=jsonable)
    except (TypeError, ValueError):
        for name, value in params.items():  # name the setting JSON cannot hold
            try:
                json.dumps(value, default=jsonable)
            except (TypeError, ValueError) as err:
                raise ValueError(f"cannot save parameter {name}={value!r}: {err}") from err
        raise


def _check_target(path: Path) -> None:
    """Only a new path, an empty folder or an earlier save may be replaced, and never the working directory."""
    cwd = Path.cwd().resolve()
    if path == cwd or path in cwd.parents:
        raise ValueError(
            f"cannot save to {path}: it is (or holds) the working directory, which a save replaces whole; "
            f"name a subfolder such as {path / 'model'}"
        )
    if not path.exists():
        return
    if not path.is_dir():
        raise ValueError(f"cannot save to {path}: it is a file, not a folder")
    foreign = sorted(p.name for p in path.iterdir() if p.name not in SAVED_FILES)
    if foreign:
        raise ValueError(
            f"cannot save to {path}: it holds {foreign[:5]}, which a saved forecaster does not; "
            f"choose a new or empty folder"
        )


def save_forecaster(fc: XLSTMForecaster, path: str | Path) -> Path:
    from safetensors.torch import save_file

    # Resolved: a symlinked folder keeps its link (the folder it names is replaced), "." is the real folder.
    path = Path(path).expanduser().resolve()
    _check_target(path)
    config = _config_text(fc)  # fails before anything is written
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _sibling(path, "saving")
    try:
        (staging / CONFIG).write_text(config)
        weights = {k: v.detach().cpu().contiguous() for k, v in fc.net_.state_dict().items()}
        save_file(weights, str(staging / WEIGHTS))
        fc.history_.to_csv(staging / HISTORY, index=False)
        if fc.static_ is not None:
            fc.static_.to_csv(staging / STATIC, index=False)
        calibration = getattr(fc, "calibration_", None)
        if calibration is not None:
            tables = {"scores": calibration.scores}
            if calibration.cqr_scores is not None:
                tables["cqr_scores"] = calibration.cqr_scores
            tables = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tables.items()}
            save_file(tables, str(staging / CALIBRATION))
        _swap_in(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _sibling(path: Path, what: str) -> Path:
    """A new hidden folder beside ``path``, made with mkdir so that it takes the umask's permissions (a save
    stays readable by whoever could read the folder it replaces; mkdtemp's would be 0700)."""
    folder = path.parent / f".{path.name}.{what}-{uuid.uuid4().hex[:12]}"
    folder.mkdir()
    return folder


def _swap_in(staging: Path, path: Path) -> None:
    """Moves the finished ``staging`` folder to ``path``; an earlier save there is removed only afterwards."""
    if not path.exists():
        os.replace(staging, path)
        return
    old = _sibling(path, "old")
    os.replace(path, old / "model")
    try:
        os.replace(staging, path)
    except BaseException:
        os.replace(old / "model", path)  # put the earlier save back
        shutil.rmtree(old, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _read_config(path: Path) -> dict:
    config = path / CONFIG
    if not path.is_dir():
        what = "it is a file, not a folder" if path.exists() else "the folder does not exist"
        raise FileNotFoundError(f"no saved forecaster at {path}: {what}")
    if not config.is_file():
        raise FileNotFoundError(f"no saved forecaster at {path}: {CONFIG} is missing")
    try:
        meta = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{config} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        found = meta.get("format_version") if isinstance(meta, dict) else None
        raise ValueError(f"{config} has format_version {found!r}, expected {FORMAT_VERSION}")
    for key in ("params", "fitted"):
        if not isinstance(meta.get(key), dict):
            raise ValueError(f"{config} lacks its {key!r} section; it was not written by XLSTMForecaster.save")
    return meta


def _require(path: Path, name: str) -> Path:
    file = path / name
    if not file.is_file():
        raise FileNotFoundError(f"the saved forecaster at {path} is incomplete: {name} is missing")
    return file


def _read_csv(file: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(file, dtype={ID: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{file} is not a readable CSV of the kept history: {err}") from err


def load_forecaster(cls: type[XLSTMForecaster], path: str | Path, device: str | None = None) -> XLSTMForecaster:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    meta = _read_config(path)
    config = path / CONFIG
    params = dict(meta["params"])
    # Saved before conformal intervals existed: keep serving its quantile heads as it did then.
    params.setdefault("intervals", "quantile")
    if device is not None:
        params["device"] = device
    try:
        fc = cls(**params)
    except TypeError as err:
        raise ValueError(f"{config} holds settings XLSTMForecaster does not take: {err}") from err
    try:
        fc.device_ = resolve_device(fc.device)
    except ValueError as err:
        if device is not None:
            raise
        hint = "pass load(path, device='cpu') to load it here"
        raise ValueError(f"{path} was saved with device={fc.device!r}: {err}; {hint}") from err
    try:
        check_settings(fc)
    except ValueError as err:
        raise ValueError(f"{config} holds settings XLSTMForecaster does not take: {err}") from err
    fitted = meta["fitted"]
    try:
        fc.freq_ = fitted["freq"]
        fc.exog_columns_ = fitted["exog_columns"]
        fc.ds_kind_ = fitted["ds_kind"]
        fc.exog_scale_ = tuple(np.asarray(a, dtype=np.float64) for a in fitted["exog_scale"])
        fc.series_ = fitted["series"]
        fc.n_channels_ = fitted["n_channels"]
        fc.quantiles_ = fitted["quantiles"]
        fc.fit_seconds_ = fitted["fit_seconds"]
        fc.steps_trained_ = fitted["steps_trained"]
    except KeyError as err:
        raise ValueError(f"{config} lacks the fitted field {err}; it was not written by XLSTMForecaster.save") from err
    by_text = {str(s): s for s in fc.series_}
    history = _read_csv(_require(path, HISTORY))
    history[ID] = history[ID].map(by_text)
    if fc.ds_kind_ == "datetime":
        history[DS] = pd.to_datetime(history[DS])
    fc.history_ = history
    fc.static_ = None
    if (path / STATIC).is_file():
        static = _read_csv(path / STATIC)
        static[ID] = static[ID].map(by_text)
        fc.static_ = static
    fc.calibration_ = None
    # Saves of format 1 written before "calibrated" existed: the file alone says so.
    if fitted.get("calibrated", (path / CALIBRATION).is_file()):
        try:
            tables = {k: v.numpy() for k, v in load_file(str(_require(path, CALIBRATION))).items()}
            scores = tables["scores"]
        except (SafetensorError, KeyError) as err:
            raise ValueError(f"{path / CALIBRATION} is not readable conformal scores: {err}") from err
        if scores.ndim != 2 or scores.shape[1] != fc.h:
            raise ValueError(f"{path / CALIBRATION} holds scores of shape {scores.shape}; h={fc.h} needs (n, {fc.h})")
        cqr = tables.get("cqr_scores")  # absent in saves from before CQR, and for point-loss models
        if cqr is not None:
            want = (len(lower_quantiles(fc.quantiles_)), scores.shape[0], fc.h)
            if cqr.shape != want:
                raise ValueError(f"{path / CALIBRATION} holds CQR scores of shape {cqr.shape}, expected {want}")
        fc.calibration_ = Calibration(scores, cqr)
    fc.net_ = build_model(fc.model, net_spec(fc, fc.n_channels_)).to(fc.device_)
    weights = _require(path, WEIGHTS)
    try:
        fc.net_.load_state_dict(load_file(str(weights), device=str(fc.device_)))
    except (SafetensorError, RuntimeError) as err:
        raise ValueError(f"{weights} does not hold the weights {config} describes: {err}") from err
    fc.net_.eval()
    return fc
