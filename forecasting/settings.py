"""Checks of XLSTMForecaster's settings: every constructor argument is checked on construction and again before any
work (fit, predict, cross_validation, load: ``set_params`` may have changed it), and a bad one raises ValueError with
the reason."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from xlstm_seq.compiled import check_compile_setting
from xlstm_seq.devices import resolve_device
from xlstm_seq.forecasting.intervals import check_method
from xlstm_seq.forecasting.losses import LOSSES, output_size
from xlstm_seq.forecasting.models import BACKBONES, MIXINGS, MODELS, NetSpec, patch_layout
from xlstm_seq.forecasting.validation import DS, ID, Y, normalise_freq

if TYPE_CHECKING:
    from xlstm_seq.forecasting.forecaster import XLSTMForecaster

FALLBACKS = ("none", "baseline")
"""What predict serves when the baseline guardrail fires: the model anyway, or the best baseline."""

REAL_TYPES = (float, int, np.floating, np.integer)
"""Types a numeric setting may have (Python's or NumPy's; bool counts as int)."""


def check_level_list(level: object, name: str) -> None:
    """``level`` is None or a list of percentages, each in (0, 100)."""
    if level is None:
        return
    if isinstance(level, (str, bytes)) or not isinstance(level, Sequence | np.ndarray):
        raise ValueError(f"{name} must be a list of percentages such as [80, 95], got {level!r}")
    for lv in level:
        if isinstance(lv, bool) or not isinstance(lv, REAL_TYPES):
            raise ValueError(f"{name} must be a list of percentages such as [80, 95], got {list(level)!r}")
        if not 0 < float(lv) < 100:
            raise ValueError(f"{name}: each level must be a percentage in (0, 100), got {lv!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: object) -> bool:
    return isinstance(value, REAL_TYPES) and not isinstance(value, (bool, np.bool_))


def _check_kinds(fc: XLSTMForecaster) -> None:
    """The names and types of the settings that no other check covers."""
    for name, choices in (("model", sorted(MODELS)), ("backbone", BACKBONES), ("mixing", MIXINGS)):
        if getattr(fc, name) not in choices:
            raise ValueError(f"{name} must be one of {tuple(choices)}, got {getattr(fc, name)!r}")
    for name in ("num_heads", "moving_avg"):
        value = getattr(fc, name)
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name in ("early_stop_patience_steps", "random_seed"):
        if not _is_int(getattr(fc, name)):
            raise ValueError(f"{name} must be an integer, got {getattr(fc, name)!r}")
    if not (_is_real(fc.dropout) and 0 <= fc.dropout < 1):
        raise ValueError(f"dropout must be a number in [0, 1), got {fc.dropout!r}")
    if not _is_real(fc.learning_rate) or fc.learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {fc.learning_rate!r}")
    if not _is_real(fc.weight_decay) or fc.weight_decay < 0:
        raise ValueError(f"weight_decay must be a number >= 0, got {fc.weight_decay!r}")
    for name in ("scale_loss", "progress", "track", "guardrail"):
        if not isinstance(getattr(fc, name), (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {getattr(fc, name)!r}")
    for name in ("alias", "tracking_uri"):
        if getattr(fc, name) is not None and not isinstance(getattr(fc, name), str):
            raise ValueError(f"{name} must be None or a string, got {getattr(fc, name)!r}")
    check_compile_setting(fc.compile)
    if fc.fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {FALLBACKS}, got {fc.fallback!r}")
    if fc.fallback == "baseline" and not fc.guardrail:
        raise ValueError("fallback='baseline' needs guardrail=True (the guardrail decides when to fall back)")
    if fc.season_length is not None and (not _is_int(fc.season_length) or fc.season_length < 1):
        raise ValueError(f"season_length must be None or a positive integer, got {fc.season_length!r}")
    if not isinstance(fc.experiment, str):
        raise ValueError(f"experiment must be a string, got {fc.experiment!r}")
    for name in ("hist_exog_list", "futr_exog_list", "stat_exog_list"):
        columns = getattr(fc, name)
        if columns is not None and (isinstance(columns, (str, bytes)) or not isinstance(columns, Sequence)):
            raise ValueError(f"{name} must be None or a list of column names, got {columns!r}")


def check_settings(fc: XLSTMForecaster, *, device: bool = True) -> None:
    """Raises ValueError naming the first of ``fc``'s settings that is out of range or inconsistent with another.

    Args:
        fc: The forecaster.
        device: Also check that this machine has the ``device`` asked for. The constructor leaves that to fit, so
            that a forecaster saved on a GPU machine can be described (and loaded with ``device="cpu"``) on another.
    """
    for name in ("h", "input_size", "max_steps", "batch_size", "val_check_steps", "embedding_dim", "num_blocks",
                 "ensemble"):  # fmt: skip
        value = getattr(fc, name)
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    _check_kinds(fc)
    normalise_freq(fc.freq)  # raises on a freq that is neither None, an alias nor an integer step
    if fc.patch_len is not None and (not isinstance(fc.patch_len, (int, np.integer)) or fc.patch_len < 1):
        raise ValueError(f"patch_len must be a positive integer or None, got {fc.patch_len!r}")
    for name in ("revin", "revin_subtract_last"):
        if not isinstance(getattr(fc, name), (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {getattr(fc, name)!r}")
    if fc.patch_stride is not None and not isinstance(fc.patch_stride, (int, np.integer)):
        raise ValueError(f"patch_stride must be None or an integer, got {fc.patch_stride!r}")
    check_level_list(fc.level, "the level setting")
    patch_layout(fc.input_size, fc._patch_len(), fc.patch_stride)  # raises on a stride outside 1..patch_len
    output_size(fc.loss, fc._levels())
    if fc.valid_loss is not None and fc.valid_loss not in LOSSES:
        raise ValueError(f"valid_loss must be None or one of {LOSSES}, got {fc.valid_loss!r}")
    if fc.valid_loss == "quantile" and fc.loss != "quantile":
        raise ValueError(f"valid_loss='quantile' needs loss='quantile' (quantile heads), got loss={fc.loss!r}")
    alpha = fc.freq_loss_weight
    if not (isinstance(alpha, REAL_TYPES) and 0 <= alpha <= 1):
        raise ValueError(f"freq_loss_weight must be a number in [0, 1], got {alpha!r}")
    if alpha > 0 and fc.loss == "quantile":
        raise ValueError("freq_loss_weight > 0 needs a point loss ('mae' or 'mse'), got loss='quantile'")
    step_decay = fc.horizon_loss_decay
    if not (isinstance(step_decay, REAL_TYPES) and 0 <= step_decay <= 4):
        raise ValueError(f"horizon_loss_decay must be a number in [0, 4], got {step_decay!r}")
    if step_decay > 0 and alpha == 1:
        raise ValueError("horizon_loss_decay weighs the temporal loss, which freq_loss_weight=1 leaves out")
    rate = fc.augment_freq_mask
    if not (isinstance(rate, REAL_TYPES) and 0 <= rate < 1):
        raise ValueError(f"augment_freq_mask must be a number in [0, 1), got {rate!r}")
    decay = fc.ema_decay
    if decay is not None and not (isinstance(decay, REAL_TYPES) and 0 < decay < 1):
        raise ValueError(f"ema_decay must be None or a number in (0, 1), got {fc.ema_decay!r}")
    check_method(fc.intervals)
    if fc.intervals == "cqr" and fc.loss != "quantile":
        raise ValueError(f"intervals='cqr' conformalizes quantile heads: it needs loss='quantile', got {fc.loss!r}")
    if device:
        resolve_device(fc.device)  # raises on a bad name or a device this machine does not have
    elif not isinstance(fc.device, (str, torch.device)):
        raise ValueError(f"device must be a name such as 'auto', 'cpu' or 'cuda:0', got {fc.device!r}")
    if fc.calibration_size is not None and (
        not isinstance(fc.calibration_size, (int, np.integer)) or fc.calibration_size < fc.h
    ):
        raise ValueError(f"calibration_size must be None or an integer >= h={fc.h}, got {fc.calibration_size!r}")
    hist, futr, stat = fc._lists()
    overlap = (set(hist) & set(futr)) | (set(hist + futr) & set(stat)) | ({ID, DS, Y} & set(hist + futr + stat))
    if overlap:
        raise ValueError(f"exogenous lists overlap each other or the id/ds/y columns: {sorted(overlap)}")


def net_spec(fc: XLSTMForecaster, n_channels: int) -> NetSpec:
    """The shape and size of ``fc``'s network for ``n_channels`` channels per panel (forecasting.models)."""
    hist, futr, stat = fc._lists()
    return NetSpec(
        input_size=fc.input_size,
        h=fc.h,
        n_channels=n_channels,
        n_hist=len(hist) + len(futr),
        n_futr=len(futr),
        n_stat=len(stat),
        n_outputs=output_size(fc.loss, fc._levels()),
        embedding_dim=fc.embedding_dim,
        num_blocks=fc.num_blocks,
        num_heads=fc.num_heads,
        backbone=fc.backbone,
        mixing=fc.mixing,
        patch_len=fc._patch_len(),
        patch_stride=fc.patch_stride,
        moving_avg=fc.moving_avg,
        revin=fc.revin,
        revin_subtract_last=fc.revin_subtract_last,
        dropout=fc.dropout,
    )
