"""``XLSTMForecaster``: xLSTM forecasters on Nixtla long frames (``unique_id``, ``ds``, ``y``, exogenous columns).

    fc = XLSTMForecaster(h=24, input_size=96, model="xlstm_time", backbone="mlstm", loss="quantile")
    fc.fit(df, val_size=48)                       # early stopping on the last 48 steps of each series
    fc.predict(level=[80, 95])                    # unique_id, ds, xLSTMTime, xLSTMTime-lo-95, ... -hi-95
    fc.cross_validation(df, n_windows=3, h=24)    # adds `cutoff` and `y`; refit=True or an int refits
    fc.save("model_dir"); XLSTMForecaster.load("model_dir")

It is a scikit-learn estimator (get_params/set_params, ``sklearn.base.clone``). Training, windowing and
scaling live here once; the networks in ``forecasting.models`` only implement ``forward(batch)``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError

from xlstm_seq.devices import resolve_device
from xlstm_seq.forecasting.augment import augmented_batch
from xlstm_seq.forecasting.intervals import (
    check_method,
    conformal_quantile,
    conformal_scores,
    cqr_scores,
    level_name,
    window_scale,
)
from xlstm_seq.forecasting.losses import LOSSES, forecast_loss, lower_quantile, output_size, quantiles_for_levels
from xlstm_seq.forecasting.models import ALIASES, NetSpec, build_model, patch_layout, patch_len_for
from xlstm_seq.forecasting.panels import Panels, build_panels, window_batch, window_starts
from xlstm_seq.forecasting.persistence import load_forecaster, save_forecaster
from xlstm_seq.forecasting.plots import forecast_figure
from xlstm_seq.forecasting.training import TrainingHistory, TrainingSettings, train_network
from xlstm_seq.forecasting.validation import (
    DS,
    ID,
    Y,
    check_long_frame,
    check_numeric,
    check_static,
    check_unique_rows,
    future_dates,
    normalise_freq,
    require_frame,
)
from xlstm_seq.tracking import create_tracker

_REAL_TYPES = (float, int, np.floating, np.integer)
"""Types a numeric setting may have (Python's or NumPy's; bool counts as int)."""


class XLSTMForecaster(BaseEstimator):
    """xLSTM forecaster with Nixtla's verbs. Every constructor argument is a scikit-learn parameter.

    Args:
        h: Forecast horizon (steps).
        input_size: Look-back window L.
        model: "xlstm_time" (RevIN, decomposition, linear embeddings, xLSTM stack, linear head),
            "xlstm_time_linear" (a linear forecast refined by the xlstm_time path), "xlstm_mixer" (xLSTM-Mixer: a
            linear forecast per series, refined by a stack reading the series forwards and backwards when
            mixing="variates", or each series alone), "xlstm_encoder" (plain xLSTM encoder with a forecasting head)
            or "dlinear" (baseline).
        backbone: "mlstm", "slstm" or "mixed" (alternating blocks).
        mixing: "independent" (one sequence per series) or "variates" (the stack mixes the series; all
            series must share timestamps).
        alias: Name of the forecast column; default from the model ("xLSTMTime", "xLSTMMixer", "xLSTMEncoder", ...).
        freq: Pandas offset alias or integer step; None infers it from the data (and checks every series).
        embedding_dim, num_blocks, num_heads, dropout: Stack size.
        patch_len: Steps per token (default: 16 for xlstm_time, 1 for xlstm_encoder).
        patch_stride: Steps between the starts of neighbouring patches; None: patch_len (no overlap). Smaller
            strides give PatchTST's overlapping patches (more tokens, slower).
        moving_avg: Kernel of the moving-average decomposition.
        revin: Reversible instance normalisation of the target.
        revin_subtract_last: Centre each window on its last value instead of its mean (PatchTST's option).
        loss: "mae", "mse" or "quantile" (pinball over the quantiles of ``level``).
        valid_loss: The loss that early stopping and the kept weights follow on the validation split ("mae",
            "mse", or "quantile" with loss="quantile"); None: the training loss. A point loss scores the median
            of a quantile model. neuralforecast's argument of the same name.
        level: Interval levels (default [80, 95]): the quantiles trained with the quantile loss, and a sign that
            intervals are wanted (with ``intervals="conformal"``, setting it calibrates the intervals at fit).
        intervals: How ``predict(level=...)`` builds intervals. "conformal" (default): split-conformal on windows
            the model was not trained on (the validation split when ``fit(val_size=...)`` has one, else a first
            fit without the last ``calibration_size`` steps); works with every loss, calibrated when ``level``
            is set or the loss is "quantile"; intervals are symmetric about the point forecast. "cqr"
            (loss="quantile" only): conformalized quantile regression on the same windows, the quantile heads'
            interval widened or narrowed until it covers, so it keeps their asymmetry. "quantile": the raw quantile
            heads (loss="quantile" only). A quantile model calibrates both tables, so ``set_params(intervals=...)``
            after fit switches between the three.
        calibration_size: Steps at the end of each series held out to calibrate conformal intervals when fit has
            no validation split (default 2 * h); the final model is then refitted on all rows.
        freq_loss_weight: Weight alpha in [0, 1] of a frequency-domain term in the training loss (FreDF, Wang et al.,
            ICLR 2025): (1 - alpha) * loss + alpha * mean |rFFT over the horizon of (forecast - target)| (orthonormal
            FFT, so both terms are on the data's scale). Errors at neighbouring steps are correlated; the FFT's
            components are not, which is the term's point. Point losses only; early stopping follows the plain
            validation loss. 0: no frequency term.
        horizon_loss_decay: Weigh the training error at forecast step t by t^-p (normalised to mean 1): far steps
            are noisier, so their gradient is damped (the signal-decay loss of CARD, Wang et al., ICLR 2024, uses
            p = 0.5). Early stopping follows the plain validation loss. 0: every step alike.
        augment_freq_mask: Append to every training batch a copy of its windows with each rFFT component of look-back
            plus horizon zeroed with this probability (FreqMask of FrAug, Chen et al., 2023): data augmentation for
            small data sets. It doubles the windows per step. 0: no augmentation.
        scale_loss: Divide each window's errors by the std of its look-back (as RevIN does) before the loss, so that
            series on different scales weigh alike in one global model (M4); False: errors on the data scale.
        hist_exog_list, futr_exog_list, stat_exog_list: Historic, future-known and static exogenous columns.
        max_steps, batch_size, learning_rate, weight_decay: Optimisation (AdamW, cosine decay to a tenth).
        val_check_steps: Steps between validation checks.
        early_stop_patience_steps: Stop after this many validation checks without improvement; -1 or 0 never
            stops early. With a validation split the best checked weights are kept.
        ema_decay: Keep an exponential moving average of the weights (decay per step, e.g. 0.99) and use it for the
            validation checks, the kept weights and the forecasts; None: the raw weights. Averaging smooths the
            step-to-step noise of small-batch training on small data sets.
        random_seed: Seeds the initial weights and the window sampling: a CPU run is repeatable.
        device: Where the model trains and forecasts: "auto" (a CUDA device when torch sees one, else the CPU),
            "cpu", "cuda" or "cuda:N". Frames, forecasts and saved weights stay on the CPU either way.
        progress: Show a tqdm progress bar.
        track: Log each fit to MLflow (params, losses, a forecast-vs-actual PNG).
        experiment, tracking_uri: MLflow experiment and store (default ``MLFLOW_TRACKING_URI`` or ./mlflow.db).
    """

    def __init__(
        self,
        h: int = 24,
        input_size: int = 96,
        model: str = "xlstm_time",
        backbone: str = "mlstm",
        mixing: str = "independent",
        alias: str | None = None,
        freq: str | int | None = None,
        embedding_dim: int = 64,
        num_blocks: int = 2,
        num_heads: int = 4,
        dropout: float = 0.0,
        patch_len: int | None = None,
        patch_stride: int | None = None,
        moving_avg: int = 25,
        revin: bool = True,
        revin_subtract_last: bool = False,
        loss: str = "mae",
        valid_loss: str | None = None,
        level: Sequence[float] | None = None,
        intervals: str = "conformal",
        calibration_size: int | None = None,
        freq_loss_weight: float = 0.0,
        horizon_loss_decay: float = 0.0,
        augment_freq_mask: float = 0.0,
        scale_loss: bool = False,
        hist_exog_list: Sequence[str] | None = None,
        futr_exog_list: Sequence[str] | None = None,
        stat_exog_list: Sequence[str] | None = None,
        max_steps: int = 500,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        val_check_steps: int = 50,
        early_stop_patience_steps: int = -1,
        ema_decay: float | None = None,
        random_seed: int = 1,
        device: str = "auto",
        progress: bool = True,
        track: bool = True,
        experiment: str = "xlstm-seq-forecasting",
        tracking_uri: str | None = None,
    ):
        self.h = h
        self.input_size = input_size
        self.model = model
        self.backbone = backbone
        self.mixing = mixing
        self.alias = alias
        self.freq = freq
        self.embedding_dim = embedding_dim
        self.num_blocks = num_blocks
        self.num_heads = num_heads
        self.dropout = dropout
        self.patch_len = patch_len
        self.patch_stride = patch_stride
        self.moving_avg = moving_avg
        self.revin = revin
        self.revin_subtract_last = revin_subtract_last
        self.loss = loss
        self.valid_loss = valid_loss
        self.level = level
        self.intervals = intervals
        self.calibration_size = calibration_size
        self.freq_loss_weight = freq_loss_weight
        self.horizon_loss_decay = horizon_loss_decay
        self.augment_freq_mask = augment_freq_mask
        self.scale_loss = scale_loss
        self.hist_exog_list = hist_exog_list
        self.futr_exog_list = futr_exog_list
        self.stat_exog_list = stat_exog_list
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.val_check_steps = val_check_steps
        self.early_stop_patience_steps = early_stop_patience_steps
        self.ema_decay = ema_decay
        self.random_seed = random_seed
        self.device = device
        self.progress = progress
        self.track = track
        self.experiment = experiment
        self.tracking_uri = tracking_uri

    # ------------------------------------------------------------------ settings
    @property
    def alias_(self) -> str:
        return self.alias or ALIASES.get(self.model, self.model)

    def _lists(self) -> tuple[list[str], list[str], list[str]]:
        return list(self.hist_exog_list or []), list(self.futr_exog_list or []), list(self.stat_exog_list or [])

    def _levels(self) -> list[float]:
        return list(self.level) if self.level is not None else [80, 95]

    def _check_settings(self) -> None:
        for name in ("h", "input_size", "max_steps", "batch_size", "val_check_steps", "embedding_dim", "num_blocks"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        normalise_freq(self.freq)  # raises on a freq that is neither None, an alias nor an integer step
        if self.patch_len is not None and (not isinstance(self.patch_len, (int, np.integer)) or self.patch_len < 1):
            raise ValueError(f"patch_len must be a positive integer or None, got {self.patch_len!r}")
        for name in ("revin", "revin_subtract_last"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.patch_stride is not None and not isinstance(self.patch_stride, (int, np.integer)):
            raise ValueError(f"patch_stride must be None or an integer, got {self.patch_stride!r}")
        _check_level_list(self.level, "the level setting")
        patch_layout(self.input_size, self._patch_len(), self.patch_stride)  # raises on a stride outside 1..patch_len
        output_size(self.loss, self._levels())
        if self.valid_loss is not None and self.valid_loss not in LOSSES:
            raise ValueError(f"valid_loss must be None or one of {LOSSES}, got {self.valid_loss!r}")
        if self.valid_loss == "quantile" and self.loss != "quantile":
            raise ValueError(f"valid_loss='quantile' needs loss='quantile' (quantile heads), got loss={self.loss!r}")
        alpha = self.freq_loss_weight
        if not (isinstance(alpha, _REAL_TYPES) and 0 <= alpha <= 1):
            raise ValueError(f"freq_loss_weight must be a number in [0, 1], got {alpha!r}")
        if alpha > 0 and self.loss == "quantile":
            raise ValueError("freq_loss_weight > 0 needs a point loss ('mae' or 'mse'), got loss='quantile'")
        step_decay = self.horizon_loss_decay
        if not (isinstance(step_decay, _REAL_TYPES) and 0 <= step_decay <= 4):
            raise ValueError(f"horizon_loss_decay must be a number in [0, 4], got {step_decay!r}")
        if step_decay > 0 and alpha == 1:
            raise ValueError("horizon_loss_decay weighs the temporal loss, which freq_loss_weight=1 leaves out")
        rate = self.augment_freq_mask
        if not (isinstance(rate, _REAL_TYPES) and 0 <= rate < 1):
            raise ValueError(f"augment_freq_mask must be a number in [0, 1), got {rate!r}")
        decay = self.ema_decay
        if decay is not None and not (isinstance(decay, _REAL_TYPES) and 0 < decay < 1):
            raise ValueError(f"ema_decay must be None or a number in (0, 1), got {self.ema_decay!r}")
        check_method(self.intervals)
        if self.intervals == "cqr" and self.loss != "quantile":
            raise ValueError(
                f"intervals='cqr' conformalizes quantile heads: it needs loss='quantile', got {self.loss!r}"
            )
        resolve_device(self.device)  # raises on a bad name or a device this machine does not have
        if self.calibration_size is not None and (
            not isinstance(self.calibration_size, (int, np.integer)) or self.calibration_size < self.h
        ):
            raise ValueError(
                f"calibration_size must be None or an integer >= h={self.h}, got {self.calibration_size!r}"
            )
        hist, futr, stat = self._lists()
        overlap = (set(hist) & set(futr)) | (set(hist + futr) & set(stat)) | ({ID, DS, Y} & set(hist + futr + stat))
        if overlap:
            raise ValueError(f"exogenous lists overlap each other or the id/ds/y columns: {sorted(overlap)}")

    def _patch_len(self) -> int:
        """patch_len, or the model's default (16 for xlstm_time, 1 for xlstm_encoder)."""
        return patch_len_for(self.model, self.patch_len)

    def _spec(self, n_channels: int) -> NetSpec:
        hist, futr, stat = self._lists()
        return NetSpec(
            input_size=self.input_size,
            h=self.h,
            n_channels=n_channels,
            n_hist=len(hist) + len(futr),
            n_futr=len(futr),
            n_stat=len(stat),
            n_outputs=output_size(self.loss, self._levels()),
            embedding_dim=self.embedding_dim,
            num_blocks=self.num_blocks,
            num_heads=self.num_heads,
            backbone=self.backbone,
            mixing=self.mixing,
            patch_len=self._patch_len(),
            patch_stride=self.patch_stride,
            moving_avg=self.moving_avg,
            revin=self.revin,
            revin_subtract_last=self.revin_subtract_last,
            dropout=self.dropout,
        )

    # ------------------------------------------------------------------ fit
    def fit(self, df: pd.DataFrame, static_df: pd.DataFrame | None = None, val_size: int = 0) -> XLSTMForecaster:
        """Trains on every series of ``df``; the last ``val_size`` steps of each series are held out for early
        stopping (val_size 0: no validation, the final weights are kept).

        With conformal intervals wanted (``intervals="conformal"`` and ``level`` set or ``loss="quantile"``) the
        windows of the validation split calibrate them; without a validation split a first fit without the last
        ``calibration_size`` steps does (its time is ``calibration_seconds_``; ``fit_seconds_`` is the final fit).

        Raises:
            ValueError: bad frames (naming the series or column), series shorter than input_size + h
                (+ val_size or calibration_size), or bad settings.
        """
        self._check_settings()
        hist, futr, stat = self._lists()
        freq = check_long_frame(df, "df", hist + futr, freq=self.freq)
        if stat:
            if static_df is None:
                raise ValueError(f"stat_exog_list is {stat} but no static_df was given to fit")
            check_static(static_df, stat)
        held = self._held_out_steps(val_size)
        need = self.input_size + self.h + held
        sizes = df.groupby(ID, sort=False).size()
        short = sizes[sizes < need]
        if len(short):
            what = "val_size" if val_size or not held else "calibration_size (conformal intervals)"
            raise ValueError(
                f"series {short.index[0]!r} has {int(short.iloc[0])} rows but input_size + h + {what} = {need} "
                f"are needed ({len(short)} series too short)"
            )
        calibration, self.calibration_seconds_ = None, 0.0
        if self._wants_calibration() and not val_size:
            calibration = self._calibrate_by_refit(df, static_df, sizes)
        torch.manual_seed(self.random_seed)
        rng = np.random.default_rng(self.random_seed)

        self.freq_ = freq
        self.exog_columns_ = sorted(set(df.columns) - {ID, DS, Y})
        self.ds_kind_ = "int" if pd.api.types.is_integer_dtype(df[DS]) else "datetime"
        position = df.groupby(ID, sort=False).cumcount().to_numpy()
        keep = position < df[ID].map(sizes).to_numpy() - val_size
        train_rows = df[keep]
        self.exog_scale_ = _exog_scale(train_rows, hist + futr, static_df, stat)
        self.series_ = list(df[ID].unique())
        panels = build_panels(df, self.mixing, hist, futr, stat, static_df, scale=self.exog_scale_)
        self.n_channels_ = panels.y.shape[1]
        self.quantiles_ = quantiles_for_levels(self._levels()) if self.loss == "quantile" else [0.5]
        self.device_ = resolve_device(self.device)
        self.net_ = build_model(self.model, self._spec(self.n_channels_)).to(self.device_)

        train_starts = window_starts(panels, self.input_size, self.h, 0, -val_size if val_size else 0)
        val_starts = window_starts(panels, self.input_size, self.h, -val_size, 0) if val_size else train_starts[:0]
        # Validation on at most 512 windows spread evenly over the held-out part keeps checks cheap.
        if len(val_starts) > 512:
            val_starts = val_starts[np.linspace(0, len(val_starts) - 1, 512).astype(int)]
        history = self._train(panels, train_starts, val_starts, rng)
        if self._wants_calibration() and val_size:
            # Every window whose targets lie in the validation split (at most 4096, spread evenly).
            cal_starts = window_starts(panels, self.input_size, self.h, -val_size, 0)
            if len(cal_starts) > 4096:
                cal_starts = cal_starts[np.linspace(0, len(cal_starts) - 1, 4096).astype(int)]
            calibration = self._scores(panels, cal_starts)
        # (n, h) sorted scaled errors and, for a quantile model, (levels, n, h) sorted CQR scores; or None
        self.conformal_scores_, self.cqr_scores_ = calibration if calibration is not None else (None, None)
        self._keep_history(df, static_df)
        self._log_fit(panels, history)
        return self

    def _held_out_steps(self, val_size: object) -> int:
        """Checks ``val_size``; returns the steps fit holds out of each series (validation or calibration)."""
        if isinstance(val_size, bool) or not isinstance(val_size, (int, np.integer)):
            raise ValueError(f"val_size must be an integer number of steps, got {val_size!r}")
        if val_size < 0 or (0 < val_size < self.h):
            raise ValueError(f"val_size must be 0 or at least h={self.h}, got {val_size}")
        return int(val_size) or (self._calibration_steps() if self._wants_calibration() else 0)

    def _wants_calibration(self) -> bool:
        return self.intervals != "quantile" and (self.level is not None or self.loss == "quantile")

    def _calibration_steps(self) -> int:
        return self.calibration_size or 2 * self.h

    def _point_index(self) -> int:
        return self.quantiles_.index(0.5) if self.loss == "quantile" else 0

    def _scores(self, panels: Panels, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Sorted conformal scores (n * C, h) of the fitted model on the windows at ``starts`` and, for a quantile
        model, its CQR scores (levels, n * C, h) in the order of ``self._trained_lower_quantiles()``."""
        idx = starts[:, None] + np.arange(self.input_size)  # (n, L)
        fut = starts[:, None] + self.input_size + np.arange(self.h)  # (n, h)
        out = self._forward_windows(panels, starts)  # (n, h, C, Q)
        y, scale = panels.y[fut], window_scale(panels.y[idx])  # (n, h, C), (n, C)
        symmetric = conformal_scores(y, out[..., self._point_index()], scale).astype(np.float32)
        if self.loss != "quantile":
            return symmetric, None
        per_level = [cqr_scores(y, *self._head_bounds(out, q), scale) for q in self._trained_lower_quantiles()]
        return symmetric, np.stack(per_level).astype(np.float32)

    def _head_bounds(self, out: np.ndarray, lower_q: float) -> tuple[np.ndarray, np.ndarray]:
        """The quantile heads (n, h, C) of outputs (n, h, C, Q) bounding the central interval whose lower quantile
        is ``lower_q``: that head and its mirror (the trained quantiles are symmetric about 0.5)."""
        lower = self.quantiles_.index(lower_q)
        return out[..., lower], out[..., len(self.quantiles_) - 1 - lower]

    def _calibrate_by_refit(
        self, df: pd.DataFrame, static_df: pd.DataFrame | None, sizes: pd.Series
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Conformal scores without a validation split: a twin fitted without the last calibration_size steps of
        each series forecasts every window whose targets lie in them."""
        steps = self._calibration_steps()
        position = df.groupby(ID, sort=False).cumcount().to_numpy()
        head = df[position < df[ID].map(sizes).to_numpy() - steps]
        twin = clone(self).set_params(intervals="quantile", track=False)
        twin.fit(head, static_df=static_df)
        self.calibration_seconds_ = twin.fit_seconds_  # the extra fit; fit_seconds_ counts the final fit only
        hist, futr, stat = self._lists()
        static = static_df if static_df is not None else twin.static_
        panels = build_panels(df, self.mixing, hist, futr, stat, static, order=twin.series_, scale=twin.exog_scale_)
        return twin._scores(panels, window_starts(panels, self.input_size, self.h, -steps, 0))

    def _train(self, panels: Panels, train_starts: np.ndarray, val_starts: np.ndarray, rng) -> TrainingHistory:
        def training_loss(net: torch.nn.Module) -> torch.Tensor:
            batch = self._batch(panels, rng.choice(train_starts, self.batch_size))
            target = batch.pop("target")
            if self.augment_freq_mask > 0:
                batch, target = augmented_batch(batch, target, self.augment_freq_mask, rng)
            return self._loss(net(batch), target, batch["y"], frequency_weight=self.freq_loss_weight,
                              step_decay=self.horizon_loss_decay)  # fmt: skip

        settings = TrainingSettings(
            max_steps=self.max_steps, learning_rate=self.learning_rate, weight_decay=self.weight_decay,
            val_check_steps=self.val_check_steps, early_stop_patience_steps=self.early_stop_patience_steps,
            ema_decay=self.ema_decay,
        )  # fmt: skip
        validation = (lambda net: self._evaluate(panels, val_starts, net)) if len(val_starts) else None
        history = train_network(self.net_, settings, training_loss, validation, progress=self.progress,
                                description=f"fit {self.alias_}")  # fmt: skip
        self.fit_seconds_ = history.seconds
        self.steps_trained_ = history.steps
        self.best_val_loss_ = history.best_val if history.val else None
        return history

    def _loss(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        inputs: torch.Tensor,
        loss: str | None = None,
        frequency_weight: float = 0.0,
        step_decay: float = 0.0,
    ) -> torch.Tensor:
        """Loss ``loss`` (default: the training loss) of prediction (B, h, C, Q) against target (B, h, C); with
        scale_loss both are divided by the std of the look-back inputs (B, L, C) of their window (1 where that
        std is 0). A point loss of a quantile model scores its median. frequency_weight mixes in the
        frequency-domain term (see freq_loss_weight); step_decay weighs the steps (see horizon_loss_decay)."""
        loss = loss or self.loss
        if loss != "quantile" and prediction.shape[-1] > 1:
            # The median as predict() serves it: from the sorted quantile heads.
            prediction = prediction.sort(dim=-1).values[..., self._point_index(), None]  # (B, h, C, 1)
        if self.scale_loss:
            std = inputs.std(dim=1, unbiased=False)  # (B, C)
            std = torch.where(std > 0, std, torch.ones_like(std))[:, None, :]  # (B, 1, C)
            prediction, target = prediction / std.unsqueeze(-1), target / std
        return forecast_loss(loss, prediction, target, self.quantiles_, frequency_weight, step_decay)

    def _batch(self, panels: Panels, starts: np.ndarray) -> dict[str, torch.Tensor]:
        """The tensors of the windows at ``starts`` (see window_batch) on the model's device."""
        batch = window_batch(panels, starts, self.input_size, self.h)
        return {k: v.to(self.device_, non_blocking=True) for k, v in batch.items()}

    def _evaluate(self, panels: Panels, starts: np.ndarray, net: torch.nn.Module | None = None) -> float:
        net = self.net_ if net is None else net
        net.eval()
        total, count = 0.0, 0
        with torch.inference_mode():
            for chunk in np.array_split(starts, max(1, len(starts) // 256)):
                batch = self._batch(panels, chunk)
                target = batch.pop("target")
                total += self._loss(net(batch), target, batch["y"], self.valid_loss).item() * len(chunk)
                count += len(chunk)
        return total / max(count, 1)

    def _keep_history(self, df: pd.DataFrame, static_df: pd.DataFrame | None) -> None:
        """The last input_size rows of each series (and the static rows) so that predict() needs no frame."""
        self.history_ = df.groupby(ID, sort=False).tail(self.input_size).reset_index(drop=True)
        stat = self._lists()[2]
        self.static_ = static_df[[ID] + stat].drop_duplicates(ID).reset_index(drop=True) if stat else None

    def _log_fit(self, panels: Panels, history: TrainingHistory) -> None:
        with create_tracker(self.experiment, run_name=f"{self.alias_}-fit", enabled=self.track,
                            tracking_uri=self.tracking_uri) as tracker:  # fmt: skip
            tracker.log_params({**self.get_params(), "freq_inferred": str(self.freq_), "n_series": len(self.series_)})
            tracker.set_tags({"forecasting.model": self.model, "forecasting.backbone": self.backbone})
            for step, value in enumerate(history.train):
                tracker.log_metrics({"train/loss": value}, step=step)
            for step, value in history.val:
                tracker.log_metrics({"val/loss": value}, step=step)
            tracker.log_metrics({"fit/seconds": self.fit_seconds_, "fit/steps": self.steps_trained_})
            if not self.track:
                return
            # Forecast vs actual on the last window of (up to) the first four channels.
            starts = panels.offsets[1:] - self.input_size - self.h
            starts = starts[:4] if self.mixing == "independent" else starts[:1]
            out = self._forward_windows(panels, starts)  # (n, h, C, Q)
            if self.intervals != "quantile" and self.conformal_scores_ is not None:  # the calibrated band instead
                widest = max(self._levels())
                cols = list(self._columns(panels, starts, out, [widest]).values())  # point, lo, hi
                out = np.stack([cols[1], cols[0], cols[2]], axis=-1)  # (n, h, C, 3)
            # Without a validation split the last window is one the model trained on: the title says so.
            what = "forecast of the held-out last window" if history.val else "in-sample fit of the last window"
            figure = forecast_figure(panels, starts, out, self.input_size, self.h, self.alias_, what)
            tracker.log_figure(figure, "forecast")
            with tempfile.TemporaryDirectory() as tmp:
                tracker.log_artifact(self.save(Path(tmp) / "model"), "model")

    # ------------------------------------------------------------------ predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise NotFittedError("this XLSTMForecaster is not fitted yet: call fit(df) before predict")

    def _forward_windows(self, panels: Panels, starts: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Forecasts (n, h, C, Q) for windows whose inputs start at ``starts`` (targets not needed)."""
        outs = []
        self.net_.eval()
        with torch.inference_mode():
            for chunk in np.array_split(starts, max(1, -(-len(starts) // batch_size))):
                batch = self._batch(panels, chunk)
                batch.pop("target")
                outs.append(self.net_(batch).cpu().numpy())
        out = np.concatenate(outs)
        # Quantile heads are trained independently; sorting keeps the intervals nested.
        return np.sort(out, axis=-1) if out.shape[-1] > 1 else out

    def _check_level(self, level: Sequence[float] | None) -> None:
        """Raises before any work when ``level`` cannot be served by this fitted forecaster."""
        _check_level_list(level, "level")
        if level is None or len(level) == 0:
            return
        for lv in level:
            if not 0 < float(lv) < 100:
                raise ValueError(f"each level must be a percentage in (0, 100), got {lv!r}")
        if self.intervals in ("quantile", "cqr"):
            if self.loss != "quantile":
                raise ValueError(
                    f"level={list(level)} with intervals={self.intervals!r} needs a model trained with "
                    f"loss='quantile'; this one used loss={self.loss!r} (intervals='conformal' works with every loss)"
                )
            for lv in level:
                if lower_quantile(lv) not in self.quantiles_:
                    raise ValueError(
                        f"level {lv} was not trained; trained levels: {self._levels()} (set level= before fit)"
                    )
        if self.intervals == "cqr" and getattr(self, "cqr_scores_", None) is None:
            raise ValueError(
                f"level={list(level)} with intervals='cqr' needs CQR scores, which fit computes for a quantile "
                f"model with intervals='conformal' or 'cqr'; this one was fitted without them: refit it"
            )
        if self.intervals == "conformal" and getattr(self, "conformal_scores_", None) is None:
            raise ValueError(
                f"level={list(level)} needs conformal scores, but this forecaster was fitted without level= and "
                f"with loss={self.loss!r}: set level=[...] (or loss='quantile') before fit"
            )

    def _trained_lower_quantiles(self) -> list[float]:
        """The lower quantile of each trained central level, in the order of the CQR score tables (widest first);
        a level is found by ``lower_quantile(level)``, never by a level rebuilt from a rounded quantile (100/3
        would not survive that round trip)."""
        return [q for q in self.quantiles_ if q < 0.5]

    def _columns(
        self, panels: Panels, starts: np.ndarray, out: np.ndarray, level: Sequence[float] | None
    ) -> dict[str, np.ndarray]:
        """Forecast columns, each (n, h, C): the point forecast, then lo bounds (widest first), then hi bounds."""
        alias = self.alias_
        point = out[..., self._point_index()]  # (n, h, C)
        columns = {alias: point}
        levels = sorted(float(v) for v in (level if level is not None else []))
        if not levels:
            return columns
        lo, hi = {}, {}
        if self.intervals == "quantile":
            for lv in levels:
                lo[lv], hi[lv] = self._head_bounds(out, lower_quantile(lv))
        else:
            idx = starts[:, None] + np.arange(self.input_size)  # (n, L)
            scale = window_scale(panels.y[idx])[:, None, :]  # (n, 1, C)
            trained = self._trained_lower_quantiles()
            for lv in levels:
                if self.intervals == "conformal":
                    half = conformal_quantile(self.conformal_scores_, lv)[None, :, None] * scale  # (n, h, C)
                    lo[lv], hi[lv] = point - half, point + half
                    continue
                table = self.cqr_scores_[trained.index(lower_quantile(lv))]  # (n_cal, h)
                shift = conformal_quantile(table, lv)[None, :, None] * scale  # (n, h, C); < 0 narrows the heads
                head_lo, head_hi = self._head_bounds(out, lower_quantile(lv))
                middle = (head_lo + head_hi) / 2  # a narrowed interval never turns inside out
                lo[lv], hi[lv] = np.minimum(head_lo - shift, middle), np.maximum(head_hi + shift, middle)
            for narrow, wide in zip(levels, levels[1:], strict=False):  # each level's own table: keep them nested
                lo[wide], hi[wide] = np.minimum(lo[wide], lo[narrow]), np.maximum(hi[wide], hi[narrow])
        for lv in reversed(levels):
            columns[f"{alias}-lo-{level_name(lv)}"] = lo[lv]
        for lv in levels:
            columns[f"{alias}-hi-{level_name(lv)}"] = hi[lv]
        return columns

    def predict(
        self,
        df: pd.DataFrame | None = None,
        static_df: pd.DataFrame | None = None,
        futr_df: pd.DataFrame | None = None,
        level: Sequence[float] | None = None,
    ) -> pd.DataFrame:
        """Forecasts h steps after the end of each series of ``df`` (default: the frame seen by fit).

        Returns:
            A frame with ``unique_id``, ``ds``, the alias column and, for ``level``, ``<alias>-lo-<l>`` and
            ``<alias>-hi-<l>`` columns.
        """
        self._check_fitted()
        hist, futr, stat = self._lists()
        self._check_level(level)
        if df is None:
            df = self.history_
        else:
            check_long_frame(df, "df", hist + futr, freq=self.freq_)
            self._check_same_exog(df)
        if static_df is None:
            static_df = self.static_
        elif stat:
            check_static(static_df, stat)
        tails = df.groupby(ID, sort=False).tail(self.input_size)
        sizes = tails.groupby(ID, sort=False).size()
        short = sizes[sizes < self.input_size]
        if len(short):
            raise ValueError(
                f"series {short.index[0]!r} has {int(short.iloc[0])} rows but predict needs input_size = "
                f"{self.input_size}"
            )
        last = tails.groupby(ID, sort=False)[DS].last()
        future = pd.DataFrame(
            {ID: np.repeat(last.index.to_numpy(), self.h), DS: np.concatenate([future_dates(v, self.freq_, self.h)
                                                                              for v in last.to_numpy()])}
        )  # fmt: skip
        if futr:
            future = self._merge_futr(future, futr_df, futr)
        frame = pd.concat([tails, future], ignore_index=True).sort_values([ID, DS], kind="stable")
        frame = frame.set_index(ID).loc[last.index].reset_index()  # keep the series order of df
        for col in hist:
            frame[col] = frame[col].fillna(0.0)  # historic exogenous values do not exist in the future
        frame[Y] = frame[Y].fillna(0.0)
        panels = build_panels(
            frame[[ID, DS, Y] + hist + futr], self.mixing, hist, futr, stat, static_df,
            order=self.series_, scale=self.exog_scale_,
        )  # fmt: skip
        starts = panels.offsets[1:] - self.input_size - self.h
        out = self._forward_windows(panels, starts)  # (P, h, C, Q)
        return self._to_frame(panels, self._columns(panels, starts, out, level), starts)

    def _merge_futr(self, future: pd.DataFrame, futr_df: pd.DataFrame | None, futr: list[str]) -> pd.DataFrame:
        if futr_df is None:
            raise ValueError(f"futr_exog_list is {futr}: predict needs futr_df with their future values")
        require_frame(futr_df, "futr_df", [ID, DS] + futr)
        check_numeric(futr_df, "futr_df", futr, finite=False)  # values are checked below, on the rows predict uses
        check_unique_rows(futr_df, "futr_df")
        merged = future.merge(futr_df[[ID, DS] + futr], on=[ID, DS], how="left", indicator=True)
        absent = merged["_merge"] == "left_only"
        if absent.any():
            row = merged.loc[absent].iloc[0]
            raise ValueError(
                f"futr_df lacks {int(absent.sum())} future row(s), first for series {row[ID]!r} at ds={row[DS]}; "
                f"it needs h={self.h} rows per series after the end of df"
            )
        for col in futr:
            bad = ~np.isfinite(merged[col].to_numpy(np.float64))
            if bad.any():
                row = merged.loc[bad].iloc[0]
                raise ValueError(
                    f"futr_df column {col!r} is missing a value for series {row[ID]!r} at ds={row[DS]} "
                    f"(NaN or infinite)"
                )
        return merged.drop(columns="_merge")

    def _check_same_exog(self, df: pd.DataFrame) -> None:
        cols = set(df.columns) - {ID, DS, Y}
        missing, extra = sorted(set(self.exog_columns_) - cols), sorted(cols - set(self.exog_columns_))
        if missing or extra:
            raise ValueError(
                f"the exogenous columns differ between fit and predict: missing {missing}, unexpected {extra} "
                f"(fit saw {self.exog_columns_})"
            )

    def _to_frame(self, panels: Panels, columns: dict, starts: np.ndarray, cutoffs=None) -> pd.DataFrame:
        """Long frame from forecast columns (n, h, C) of windows starting at ``starts``."""
        n, h, C = next(iter(columns.values())).shape
        fut = starts[:, None] + self.input_size + np.arange(h)  # (n, h)
        panel = panels.panel_of(starts)
        ids = np.array([panels.ids[p] for p in panel], dtype=object)  # (n, C)
        data = {
            ID: np.broadcast_to(ids[:, None, :], (n, h, C)).transpose(0, 2, 1).reshape(-1),
            DS: np.broadcast_to(panels.ds[fut][:, None, :], (n, C, h)).reshape(-1),
        }
        if cutoffs is not None:
            data["cutoff"] = np.broadcast_to(panels.ds[starts + self.input_size - 1][:, None, None], (n, C, h)).reshape(
                -1
            )
            data[Y] = panels.y[fut].transpose(0, 2, 1).reshape(-1).astype(np.float64)  # (n, C, h)
        for name, values in columns.items():
            data[name] = values.transpose(0, 2, 1).reshape(-1).astype(np.float64)  # (n, C, h)
        frame = pd.DataFrame(data)
        if self.ds_kind_ == "datetime":
            frame[DS] = pd.to_datetime(frame[DS])
            if "cutoff" in frame:
                frame["cutoff"] = pd.to_datetime(frame["cutoff"])
        return frame

    # ------------------------------------------------------------------ cross-validation
    def cross_validation(
        self,
        df: pd.DataFrame,
        n_windows: int = 1,
        step_size: int | None = None,
        h: int | None = None,
        static_df: pd.DataFrame | None = None,
        val_size: int = 0,
        level: Sequence[float] | None = None,
        refit: bool | int = False,
    ) -> pd.DataFrame:
        """Forecasts the last ``n_windows`` windows of each series, fitting on the rows before their cutoffs.

        The windows end at the end of each series and lie ``step_size`` (default h) apart; the inputs of a
        window are the input_size rows up to its cutoff, future-known exogenous values come from ``df``.
        ``refit`` follows Nixtla: False fits once on everything before the first cutoff; True refits before
        every window on all rows up to its cutoff; an int k refits before windows 0, k, 2k, ... (each fit then
        forecasts its own window and the next k - 1).

        Returns:
            unique_id, ds, cutoff, y and the forecast columns (as ``predict``), windows ordered by series, then
            cutoff. The forecaster keeps the last fit.
        """
        if h is not None and h != self.h:
            raise ValueError(f"cross_validation h={h} differs from the forecaster's h={self.h}")
        if isinstance(n_windows, bool) or not isinstance(n_windows, (int, np.integer)) or n_windows < 1:
            raise ValueError(f"n_windows must be an integer >= 1, got {n_windows!r}")
        if isinstance(refit, (bool, np.bool_)):
            every = 1 if refit else n_windows
        elif isinstance(refit, (int, np.integer)) and refit >= 1:
            every = int(refit)
        else:
            raise ValueError(
                f"refit must be True, False or an integer >= 1 (refit every that many windows), got {refit!r}"
            )
        if step_size is None:
            step = self.h
        elif isinstance(step_size, bool) or not isinstance(step_size, (int, np.integer)) or step_size < 1:
            raise ValueError(f"step_size must be None (h) or an integer >= 1, got {step_size!r}")
        else:
            step = int(step_size)
        self._check_settings()
        _check_level_list(level, "level")
        if level is not None and len(level) and self.intervals != "quantile" and not self._wants_calibration():
            raise ValueError(
                f"level={list(level)} needs conformal scores: set level=[...] (or loss='quantile') on the forecaster "
                f"so that each fit calibrates them"
            )
        hist, futr, stat = self._lists()
        check_long_frame(df, "df", hist + futr, freq=self.freq)
        sizes = df.groupby(ID, sort=False).size()
        need = self.input_size + self.h + self._held_out_steps(val_size) + (n_windows - 1) * step + self.h
        short = sizes[sizes < need]
        if len(short):
            raise ValueError(
                f"series {short.index[0]!r} has {int(short.iloc[0])} rows but cross_validation needs {need}: "
                f"input_size + h (+ val_size or calibration_size) before the first cutoff, then "
                f"(n_windows - 1) * step_size + h ({len(short)} series too short)"
            )
        pos = df.groupby(ID, sort=False).cumcount().to_numpy()
        all_starts, parts, panels = [], [], None
        for first in range(0, n_windows, every):
            held_out = (n_windows - 1 - first) * step + self.h  # rows after the cutoff of window `first`
            self.fit(df[pos < df[ID].map(sizes).to_numpy() - held_out], static_df=static_df, val_size=val_size)
            self._check_level(level)
            windows = range(first, min(first + every, n_windows))
            panels, starts = self._window_starts(df, n_windows, step, static_df, windows=windows)
            all_starts.append(starts)
            parts.append(self._columns(panels, starts, self._forward_windows(panels, starts), level))
        starts = np.concatenate(all_starts)
        order = np.argsort(starts, kind="stable")  # by panel, then time, as one fit would give
        columns = {name: np.concatenate([p[name] for p in parts])[order] for name in parts[0]}
        return self._to_frame(panels, columns, starts[order], cutoffs=True)

    def forecast_windows(
        self, df: pd.DataFrame, n_windows: int, step_size: int = 1, static_df: pd.DataFrame | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Array form of a rolling evaluation with the fitted model (no refit), for benchmarks of many windows.

        The last ``n_windows`` windows of each series (``step_size`` apart, the last ending at the series end).

        Returns:
            y (n, h, C) actual values and y_hat (n, h, C, Q) forecasts; windows ordered by panel, then time.
        """
        panels, starts = self._windows(df, n_windows, step_size, static_df)
        fut = starts[:, None] + self.input_size + np.arange(self.h)  # (n, h)
        return panels.y[fut], self._forward_windows(panels, starts)

    def score_windows(
        self,
        df: pd.DataFrame,
        n_windows: int,
        step_size: int = 1,
        static_df: pd.DataFrame | None = None,
        *,
        ensemble_with: Sequence[XLSTMForecaster] = (),
    ) -> dict[str, float]:
        """MSE and MAE of the point forecast over the same windows as :meth:`forecast_windows`, computed in
        chunks so that long horizons over many windows and series fit in memory.

        ``ensemble_with``: other fitted forecasters of the same h, mixing, series and exogenous columns (e.g. the
        same settings under other seeds, or other look-backs); then the scored forecast is the mean of all their
        point forecasts. Windows are anchored at the series ends, so members with different ``input_size`` forecast
        the same targets, each from its own look-back.
        """
        for other in ensemble_with:
            other._check_fitted()
            same = (other.h, other.mixing, other.series_) == (self.h, self.mixing, self.series_)
            if not same or other._lists() != self._lists():
                raise ValueError("ensemble_with: every forecaster needs the same h, mixing, series and exogenous "
                                 "columns as this one")  # fmt: skip
        members = [self, *ensemble_with]
        # The longest look-back's windows (its length check covers every member); each member's starts (n,) put
        # the end of its look-back at the same cutoff.
        longest = max(members, key=lambda m: m.input_size)
        panels, starts = longest._windows(df, n_windows, step_size, static_df)
        member_starts = [starts + longest.input_size - m.input_size for m in members]
        sq, ab, count = 0.0, 0.0, 0
        for rows in np.array_split(np.arange(len(starts)), max(1, -(-len(starts) // 512))):
            fut = starts[rows, None] + longest.input_size + np.arange(self.h)  # (n, h)
            forecasts = [m._forward_windows(panels, s[rows]) for m, s in zip(members, member_starts, strict=True)]
            point = np.mean([f[..., m._point_index()] for f, m in zip(forecasts, members, strict=True)], axis=0)
            error = point.astype(np.float64) - panels.y[fut]  # (n, h, C)
            sq, ab, count = sq + float((error**2).sum()), ab + float(np.abs(error).sum()), count + error.size
        return {"mse": sq / count, "mae": ab / count}

    def _windows(self, df: pd.DataFrame, n_windows: int, step: int, static_df: pd.DataFrame | None):
        self._check_fitted()
        hist, futr, _ = self._lists()
        check_long_frame(df, "df", hist + futr, freq=self.freq_)
        panels, starts = self._window_starts(df, n_windows, step, static_df)
        return panels, starts

    def _window_starts(
        self, df: pd.DataFrame, n_windows: int, step: int, static_df: pd.DataFrame | None, windows=None
    ) -> tuple[Panels, np.ndarray]:
        hist, futr, stat = self._lists()
        static = static_df if static_df is not None else self.static_
        panels = build_panels(df, self.mixing, hist, futr, stat, static, order=self.series_, scale=self.exog_scale_)
        held_out = (n_windows - 1) * step + self.h
        short = np.flatnonzero(panels.lengths < held_out + self.input_size)
        if len(short):
            raise ValueError(
                f"series {panels.ids[short[0]][0]!r} has {panels.lengths[short[0]]} rows; {n_windows} windows of "
                f"step {step} need input_size + {held_out} = {self.input_size + held_out}"
            )
        ends = panels.offsets[1:]
        # Window w of every panel: inputs end at its cutoff, targets are the h rows after it.
        windows = range(n_windows) if windows is None else windows
        starts = np.sort(np.concatenate([ends - held_out + w * step - self.input_size for w in windows]))
        return panels, starts

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Writes ``config.json`` (parameters and fitted metadata), ``model.safetensors``, the kept history
        (``history.csv``, ``static.csv``) and, when calibrated, ``calibration.safetensors`` (conformal scores)
        into the folder ``path``. Nothing is pickled. An earlier save at ``path`` is replaced whole and only once
        the new one is complete; a folder holding other files is refused (ValueError)."""
        self._check_fitted()
        return save_forecaster(self, path)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> XLSTMForecaster:
        """Restores a forecaster written by :meth:`save`, on ``device`` (None: the saved ``device`` setting; a model
        saved with device="cuda" loads on a machine without CUDA with device="cpu"). A missing file raises
        FileNotFoundError, an edited or mismatched one ValueError, each naming the file."""
        return load_forecaster(cls, path, device)


def _check_level_list(level: object, name: str) -> None:
    """``level`` is None or a list of numbers (percentages are checked where they are used)."""
    if level is None:
        return
    if isinstance(level, (str, bytes)) or not isinstance(level, Sequence | np.ndarray):
        raise ValueError(f"{name} must be a list of percentages such as [80, 95], got {level!r}")
    for lv in level:
        if isinstance(lv, bool) or not isinstance(lv, _REAL_TYPES):
            raise ValueError(f"{name} must be a list of percentages such as [80, 95], got {list(level)!r}")


def _exog_scale(
    train: pd.DataFrame, cols: list[str], static_df: pd.DataFrame | None, stat: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the exogenous columns on the training rows (std 1 where a column is constant)."""
    values = [train[c].to_numpy(np.float64) for c in cols] + [static_df[c].to_numpy(np.float64) for c in stat]
    mean = np.array([v.mean() for v in values]) if values else np.zeros(0)
    std = np.array([v.std() if v.std() > 0 else 1.0 for v in values]) if values else np.ones(0)
    return mean, std
