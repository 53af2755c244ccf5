"""Saving and loading a fitted XLSTMForecaster: a folder of JSON, CSV and safetensors files, nothing pickled.

A save is written into a new sibling folder and swapped in at the end, so a save that fails part-way (a full
disk, a setting JSON cannot hold) leaves the model saved before at that path whole, and no file of an older
model (an old calibration, say) survives next to the new one. A folder that holds anything else is refused
rather than replaced. A load that meets a missing, edited or mismatched file says which file and why.

``config.json`` records the SHA-256 of every other file of the save (``checksums``); a load compares them first, so
a damaged or edited weights file is refused by name instead of forecasting NaN. Saves written before checksums
existed have none and load as before. Whatever the save, the loaded tensors must be finite and the kept history a
frame of the series and columns the model was fitted on.
"""

from __future__ import annotations

import hashlib
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
from xlstm_seq.forecasting.guardrails import BASELINES, DLINEAR, Guardrail
from xlstm_seq.forecasting.models import build_model
from xlstm_seq.forecasting.settings import check_settings, net_spec
from xlstm_seq.forecasting.validation import DS, ID, Y, check_long_frame, check_static

if TYPE_CHECKING:
    from xlstm_seq.forecasting.forecaster import XLSTMForecaster

FORMAT_VERSION = 1
CONFIG, WEIGHTS, HISTORY, STATIC, CALIBRATION = (
    "config.json", "model.safetensors", "history.csv", "static.csv", "calibration.safetensors"
)  # fmt: skip
# A forecaster that serves a baseline (fallback="baseline") keeps the baseline's conformal scores, and a served
# DLinear its own save in the folder "baseline".
FALLBACK_CALIBRATION, BASELINE_FOLDER = "fallback.safetensors", "baseline"
MEMBER = "member"  # weights of an ensemble's network j > 0 are saved as "member<j>.<name>"
SAVED_FILES = (CONFIG, WEIGHTS, HISTORY, STATIC, CALIBRATION, FALLBACK_CALIBRATION, BASELINE_FOLDER)


def jsonable(value: object) -> object:
    """``json.dumps``'s ``default``: numpy scalars and arrays, pandas offsets; anything else is refused."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, pd.offsets.BaseOffset):
        return value.freqstr
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def sha256_of(file: Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with file.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _guardrail_json(guard: Guardrail | None) -> dict | None:
    """The guardrail's report and decision as JSON (its tables and DLinear are saved beside it)."""
    if guard is None:
        return None
    report = guard.report.reset_index().to_dict(orient="records")
    return {"report": report, "metric": guard.metric, "best_baseline": guard.best_baseline, "fired": guard.fired,
            "served": guard.served, "note": guard.note}  # fmt: skip


def _read_guardrail(cls: type, path: Path, saved: dict | None, device: str | None) -> Guardrail | None:
    """The guardrail of a save: its report and, when it serves a baseline, the baseline's scores (and DLinear)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if saved is None:
        return None
    config = path / CONFIG
    try:
        report = pd.DataFrame.from_records(saved["report"]).set_index("forecaster")
        guard = Guardrail(report, saved["metric"], saved["best_baseline"], bool(saved["fired"]), saved["served"],
                          saved["note"])  # fmt: skip
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{config} has a malformed 'guardrail' section: {err}") from err
    if guard.served == "model":
        return guard
    if guard.served not in BASELINES:
        raise ValueError(f"{config} serves {guard.served!r}, which is not a baseline ({BASELINES})")
    file = _require(path, FALLBACK_CALIBRATION)
    try:
        scores = load_file(str(file))["scores"]
    except (SafetensorError, KeyError) as err:
        raise ValueError(f"{file} is not readable conformal scores: {err}") from err
    _require_finite({"scores": scores}, file)
    guard.calibration = Calibration(scores.numpy())
    if guard.served == DLINEAR:
        guard.dlinear = load_forecaster(cls, path / BASELINE_FOLDER, device)
    return guard


def _config_text(fc: XLSTMForecaster, checksums: dict[str, str] | None = None) -> str:
    params = fc.get_params()
    meta = {
        "format_version": FORMAT_VERSION,
        "checksums": checksums or {},
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
            "members": len(getattr(fc, "members_", [])),
            "calibrated": getattr(fc, "calibration_", None) is not None,
            "guardrail": _guardrail_json(getattr(fc, "guardrail_", None)),
            "search": getattr(fc, "search_", None),  # an AutoXLSTMForecaster's best settings and trials
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


def check_save_target(path: Path, saved_files: tuple[str, ...] = SAVED_FILES) -> None:
    """Only a new path, an empty folder or an earlier save (a folder holding only ``saved_files``) may be replaced,
    and never the working directory."""
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
    foreign = sorted(p.name for p in path.iterdir() if p.name not in saved_files)
    if foreign:
        raise ValueError(
            f"cannot save to {path}: it holds {foreign[:5]}, which a saved forecaster does not; "
            f"choose a new or empty folder"
        )


def save_forecaster(fc: XLSTMForecaster, path: str | Path) -> Path:
    from safetensors.torch import save_file

    # Resolved: a symlinked folder keeps its link (the folder it names is replaced), "." is the real folder.
    path = Path(path).expanduser().resolve()
    check_save_target(path)
    _config_text(fc)  # a setting JSON cannot hold fails before anything is written
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _sibling(path, "saving")
    try:
        weights = {k: v.detach().cpu().contiguous() for k, v in fc.net_.state_dict().items()}
        for j, member in enumerate(getattr(fc, "members_", []), start=1):  # an ensemble's other networks
            weights.update({f"{MEMBER}{j}.{k}": v.detach().cpu().contiguous() for k, v in member.state_dict().items()})
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
        guard = getattr(fc, "guardrail_", None)
        if guard is not None and guard.served != "model":
            scores = torch.from_numpy(np.ascontiguousarray(guard.calibration.scores))
            save_file({"scores": scores}, str(staging / FALLBACK_CALIBRATION))
            if guard.dlinear is not None:
                save_forecaster(guard.dlinear, staging / BASELINE_FOLDER)
        # The JSON comes last: it records the checksum of every file written before it.
        checksums = {name: sha256_of(staging / name) for name in SAVED_FILES if (staging / name).is_file()}
        (staging / CONFIG).write_text(_config_text(fc, checksums))
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


def read_config_json(path: Path) -> object:
    """The parsed ``config.json`` of the saved forecaster folder ``path``; a missing folder or file, or bad JSON,
    raises naming it."""
    config = path / CONFIG
    if not path.is_dir():
        what = "it is a file, not a folder" if path.exists() else "the folder does not exist"
        raise FileNotFoundError(f"no saved forecaster at {path}: {what}")
    if not config.is_file():
        raise FileNotFoundError(f"no saved forecaster at {path}: {CONFIG} is missing")
    try:
        return json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{config} is not valid JSON: {err}") from err


def _read_config(path: Path) -> dict:
    config = path / CONFIG
    meta = read_config_json(path)
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        found = meta.get("format_version") if isinstance(meta, dict) else None
        raise ValueError(f"{config} has format_version {found!r}, expected {FORMAT_VERSION}")
    for key in ("params", "fitted"):
        if not isinstance(meta.get(key), dict):
            raise ValueError(f"{config} lacks its {key!r} section; it was not written by XLSTMForecaster.save")
    checksums = meta.setdefault("checksums", {})  # none in a save from before checksums
    if not isinstance(checksums, dict) or not all(isinstance(v, str) for v in checksums.values()):
        raise ValueError(f"{config} has a malformed 'checksums' section; it was not written by XLSTMForecaster.save")
    unknown = sorted(set(checksums) - set(SAVED_FILES))
    if unknown:
        raise ValueError(f"{config} lists checksums of files a saved forecaster does not have: {unknown}")
    return meta


def _check_sum(file: Path, checksums: dict[str, str], config: Path) -> None:
    """``file`` must match the SHA-256 ``config.json`` recorded for it at save (a save from before checksums has
    none). Checked once the file has been read, so that a file that cannot even be read says that first."""
    expected = checksums.get(file.name)
    if expected is None:
        return
    actual = sha256_of(file)
    if actual != expected.lower():
        raise ValueError(
            f"{file} does not match the checksum in {config}: it was damaged or changed after the save "
            f"(sha256 {actual[:16]}..., saved {expected[:16]}...)"
        )


def _require_finite(tensors: dict[str, torch.Tensor], file: Path) -> None:
    """Loaded tensors must be finite: a NaN or inf weight turns every forecast into NaN."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ValueError(f"{file} holds {bad} NaN or infinite value(s) in {name!r}; it is damaged")


def _require(path: Path, name: str) -> Path:
    file = path / name
    if not file.is_file():
        raise FileNotFoundError(f"the saved forecaster at {path} is incomplete: {name} is missing")
    return file


def _read_csv(file: Path, columns: list[str]) -> pd.DataFrame:
    """The CSV ``file`` (ids as text), which must hold ``columns``."""
    try:
        frame = pd.read_csv(file, dtype={ID: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{file} is not a readable CSV of the kept history: {err}") from err
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{file} lacks the column(s) {missing} of the kept history; it has {list(frame.columns)}")
    return frame


def _series_ids(frame: pd.DataFrame, by_text: dict[str, object], file: Path) -> pd.Series:
    """The ``unique_id`` column as the fitted series ids; an id the model was not fitted on is named."""
    ids = frame[ID].map(by_text)
    unknown = frame.loc[ids.isna().to_numpy() & frame[ID].notna().to_numpy(), ID]
    if len(unknown) or frame[ID].isna().any():
        what = repr(unknown.iloc[0]) if len(unknown) else "a missing id"
        raise ValueError(f"{file} holds series {what}, which the saved model was not fitted on")
    return ids


def _read_history(fc: XLSTMForecaster, file: Path, by_text: dict[str, object]) -> pd.DataFrame:
    """The kept history, checked as fit checks a frame (the errors name the file and the series)."""
    hist, futr, _ = fc._lists()
    history = _read_csv(file, [ID, DS, Y, *fc.exog_columns_])
    history[ID] = _series_ids(history, by_text, file)
    if fc.ds_kind_ == "datetime":
        try:
            history[DS] = pd.to_datetime(history[DS])
        except (ValueError, TypeError, OverflowError) as err:
            raise ValueError(f"{file} column 'ds' does not hold timestamps: {err}") from err
    elif not pd.api.types.is_integer_dtype(history[DS]):
        raise ValueError(f"{file} column 'ds' must hold integers (the model was fitted on integer steps)")
    check_long_frame(history, str(file), hist + futr, freq=fc.freq_)
    missing = sorted(set(map(str, fc.series_)) - set(map(str, history[ID].unique())), key=str)
    if missing:
        raise ValueError(f"{file} lacks the rows of series {missing[0]!r} ({len(missing)} series missing)")
    return history


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
    except (TypeError, ValueError) as err:
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
    checksums = meta["checksums"]
    fc.history_ = _read_history(fc, _require(path, HISTORY), by_text)
    _check_sum(path / HISTORY, checksums, config)
    fc.static_ = None
    if (path / STATIC).is_file():
        stat = fc._lists()[2]
        static = _read_csv(path / STATIC, [ID, *stat])
        _check_sum(path / STATIC, checksums, config)
        static[ID] = _series_ids(static, by_text, path / STATIC)
        try:
            check_static(static, stat)
        except ValueError as err:
            raise ValueError(f"{path / STATIC}: {err}") from err
        fc.static_ = static
    fc.calibration_ = None
    # Saves of format 1 written before "calibrated" existed: the file alone says so.
    if fitted.get("calibrated", (path / CALIBRATION).is_file()):
        try:
            loaded = load_file(str(_require(path, CALIBRATION)))
            scores = loaded["scores"].numpy()
        except (SafetensorError, KeyError) as err:
            raise ValueError(f"{path / CALIBRATION} is not readable conformal scores: {err}") from err
        _check_sum(path / CALIBRATION, checksums, config)
        _require_finite(loaded, path / CALIBRATION)
        tables = {k: v.numpy() for k, v in loaded.items()}
        if scores.ndim != 2 or scores.shape[1] != fc.h:
            raise ValueError(f"{path / CALIBRATION} holds scores of shape {scores.shape}; h={fc.h} needs (n, {fc.h})")
        cqr = tables.get("cqr_scores")  # absent in saves from before CQR, and for point-loss models
        if cqr is not None:
            want = (len(lower_quantiles(fc.quantiles_)), scores.shape[0], fc.h)
            if cqr.shape != want:
                raise ValueError(f"{path / CALIBRATION} holds CQR scores of shape {cqr.shape}, expected {want}")
        fc.calibration_ = Calibration(scores, cqr)
    fc.search_ = fitted.get("search")
    fc.guardrail_ = _read_guardrail(cls, path, fitted.get("guardrail"), device)
    if fc.guardrail_ is not None and fc.guardrail_.served != "model":
        _check_sum(path / FALLBACK_CALIBRATION, checksums, config)
    nets = [build_model(fc.model, net_spec(fc, fc.n_channels_)).to(fc.device_)
            for _ in range(1 + int(fitted.get("members", 0)))]  # fmt: skip
    weights = _require(path, WEIGHTS)
    try:
        state = load_file(str(weights), device=str(fc.device_))
        _check_sum(weights, checksums, config)
        _require_finite(state, weights)
        for j, net in enumerate(nets):
            prefix = f"{MEMBER}{j}." if j else ""
            own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)} if j else {
                k: v for k, v in state.items() if not k.startswith(MEMBER)}  # fmt: skip
            net.load_state_dict(own)
            net.eval()
    except (SafetensorError, RuntimeError) as err:
        raise ValueError(f"{weights} does not hold the weights {config} describes: {err}") from err
    fc.net_, fc.members_ = nets[0], nets[1:]
    return fc
