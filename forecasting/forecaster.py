"""``XLSTMForecaster``: xLSTM forecasters on Nixtla long frames (``unique_id``, ``ds``, ``y``, exogenous columns).

    fc = XLSTMForecaster(h=24, input_size=96, model="xlstm_time", backbone="mlstm", loss="quantile")
    fc.fit(df, val_size=48)                       # early stopping on the last 48 steps of each series
    fc.predict(level=[80, 95])                    # unique_id, ds, xLSTMTime, xLSTMTime-lo-95, ... -hi-95
    fc.cross_validation(df, n_windows=3, h=24)    # adds `cutoff` and `y`; refit=True or an int refits
    fc.validation_report_                         # the model beside naive, seasonal naive and DLinear (val_size > 0)
    fc.update(new_rows); fc.predict()             # forecasts from the new end of each series, nothing refitted
    fc.save("model_dir"); XLSTMForecaster.load("model_dir")

It is a scikit-learn estimator (get_params/set_params, ``sklearn.base.clone``). Training and scaling live here once;
the networks in ``forecasting.models`` only implement ``forward(batch)``. Around it: windowing in
``forecasting.panels``, the checks of its settings in ``forecasting.settings``, interval calibration in
``forecasting.calibration``, cross-validation in ``forecasting.cross_validation``, the baseline guardrail in
``forecasting.guardrails`` and saving in ``forecasting.persistence``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from xlstm_seq.devices import resolve_device
from xlstm_seq.forecasting.augment import augmented_batch
from xlstm_seq.forecasting.calibration import (
    calibrate,
    calibrate_by_refit,
    check_level,
    forecast_columns,
    validation_windows,
)
from xlstm_seq.forecasting.cross_validation import cross_validation
from xlstm_seq.forecasting.guardrails import Guardrail, baseline_columns, run_guardrail
from xlstm_seq.forecasting.losses import quantiles_for_levels, window_loss
from xlstm_seq.forecasting.models import ALIASES, build_model, patch_len_for
from xlstm_seq.forecasting.panels import (
    Panels,
    build_panels,
    exog_scale,
    forecast_frame,
    long_frame,
    rolling_starts,
    window_batch,
    window_starts,
)
from xlstm_seq.forecasting.persistence import load_forecaster, save_forecaster
from xlstm_seq.forecasting.plots import log_fit
from xlstm_seq.forecasting.settings import check_level_list, check_settings, net_spec
from xlstm_seq.forecasting.training import TrainingHistory, TrainingSettings, train_network
from xlstm_seq.forecasting.validation import (
    DS,
    ID,
    Y,
    check_long_frame,
    check_same_exog,
    check_static,
    future_dates,
)


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
        embedding_dim: Width E of the stack.
        num_blocks: Blocks in the stack.
        num_heads: Heads per block.
        dropout: Dropout inside the network.
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
        hist_exog_list: Historic exogenous columns (known up to the cutoff).
        futr_exog_list: Future-known exogenous columns (known over the horizon too).
        stat_exog_list: Static exogenous columns (one value per series, from ``static_df``).
        max_steps: Training steps (AdamW, cosine decay to a tenth of the learning rate).
        batch_size: Windows per training step.
        learning_rate: AdamW's peak learning rate.
        weight_decay: AdamW's weight decay.
        val_check_steps: Steps between validation checks.
        early_stop_patience_steps: Stop after this many validation checks without improvement; -1 or 0 never
            stops early. With a validation split the best checked weights are kept.
        ema_decay: Keep an exponential moving average of the weights (decay per step, e.g. 0.99) and use it for the
            validation checks, the kept weights and the forecasts; None: the raw weights. Averaging smooths the
            step-to-step noise of small-batch training on small data sets.
        random_seed: Seeds the initial weights and the window sampling: a CPU run is repeatable.
        ensemble: Networks trained alike but with seeds random_seed, random_seed + 1, ...; every forecast is the mean
            of their outputs (the mean forecast's error never exceeds the mean of theirs). Fit time is their sum;
            ``best_val_loss_`` and ``validation_callback`` follow the first.
        device: Where the model trains and forecasts: "auto" (a CUDA device when torch sees one, else the CPU),
            "cpu", "cuda" or "cuda:N". Frames, forecasts and saved weights stay on the CPU either way.
        progress: Show a tqdm progress bar.
        track: Log each fit to MLflow (params, losses, a forecast-vs-actual PNG).
        experiment: MLflow experiment of the fits.
        tracking_uri: MLflow store (default ``MLFLOW_TRACKING_URI`` or ./mlflow.db).
        guardrail: In a fit with a validation split (``val_size`` > 0), score the naive, seasonal naive and DLinear
            forecasts on the same validation windows as the model (``validation_report_``, logged to MLflow) and warn
            (``GuardrailWarning``, both numbers) when the model is not better than the best of them
            (``forecasting.guardrails``). A fit without a validation split has no windows to score: no check.
        fallback: "none" (default): predict serves the model whatever the guardrail found. "baseline": when the
            guardrail fires, predict, cross_validation and save/load serve the best baseline's forecasts instead
            (under the model's alias, with conformal intervals from the baseline's validation errors).
        season_length: Season of the seasonal naive baseline; None: from the frame's freq (hourly 24, daily 7,
            weekly 52, monthly 12, quarterly 4), left out when unknown.
        compile: The compile switch of the network's xLSTM stacks (``xlstm_seq.compiled``): "auto" (default)
            compiles their training pass on a CPU only when ``max_steps`` is long enough to repay the first compile
            (a short fit stays eager); True always; False never (plain eager PyTorch).
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
        ensemble: int = 1,
        device: str = "auto",
        progress: bool = True,
        track: bool = True,
        experiment: str = "xlstm-seq-forecasting",
        tracking_uri: str | None = None,
        guardrail: bool = True,
        fallback: str = "none",
        season_length: int | None = None,
        compile: bool | str = "auto",
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
        self.ensemble = ensemble
        self.device = device
        self.progress = progress
        self.track = track
        self.experiment = experiment
        self.tracking_uri = tracking_uri
        self.guardrail = guardrail
        self.fallback = fallback
        self.season_length = season_length
        self.compile = compile
        # Refused here, not after a fit: a bad setting (level=[150], h=2.5, loss="huber") names itself at once.
        # The arguments are stored as given, so get_params, set_params and sklearn's clone work as before.
        check_settings(self, device=False)

    # ------------------------------------------------------------------ settings
    @property
    def alias_(self) -> str:
        return self.alias or ALIASES.get(self.model, self.model)

    def _lists(self) -> tuple[list[str], list[str], list[str]]:
        return list(self.hist_exog_list or []), list(self.futr_exog_list or []), list(self.stat_exog_list or [])

    def _levels(self) -> list[float]:
        return list(self.level) if self.level is not None else [80, 95]

    def _patch_len(self) -> int:
        """patch_len, or the model's default (16 for xlstm_time, 1 for xlstm_encoder)."""
        return patch_len_for(self.model, self.patch_len)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        df: pd.DataFrame,
        static_df: pd.DataFrame | None = None,
        val_size: int = 0,
        *,
        validation_callback: Callable[[int, float], None] | None = None,
    ) -> XLSTMForecaster:
        """Trains on every series of ``df``; the last ``val_size`` steps of each series are held out for early
        stopping (val_size 0: no validation, the final weights are kept).

        With a validation split and ``guardrail`` on, the model and the naive, seasonal naive and DLinear baselines
        are scored on its windows (``validation_report_``); a model not better than the best baseline warns, and with
        ``fallback="baseline"`` the baseline is served (``served_``).

        With conformal intervals wanted (``intervals="conformal"`` and ``level`` set or ``loss="quantile"``) the
        windows of the validation split calibrate them; without a validation split a first fit without the last
        ``calibration_size`` steps does (its time is ``calibration_seconds_``; ``fit_seconds_`` is the final fit).

        Args:
            df: The long frame (``unique_id``, ``ds``, ``y``, exogenous columns).
            static_df: One row per series with the ``stat_exog_list`` columns.
            val_size: Steps at the end of each series held out for early stopping (and the guardrail).
            validation_callback: Called as ``callback(check, score)`` after every validation check (check 0, 1, ...;
                the score early stopping follows); it may raise to end the fit (a search prunes trials this way).

        Raises:
            ValueError: bad frames (naming the series or column), series shorter than input_size + h
                (+ val_size or calibration_size), or bad settings.
        """
        check_settings(self)
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
            calibration, self.calibration_seconds_ = calibrate_by_refit(self, df, static_df)
        self.freq_ = freq
        self.exog_columns_ = sorted(set(df.columns) - {ID, DS, Y})
        self.ds_kind_ = "int" if pd.api.types.is_integer_dtype(df[DS]) else "datetime"
        position = df.groupby(ID, sort=False).cumcount().to_numpy()
        keep = position < df[ID].map(sizes).to_numpy() - val_size
        train_rows = df[keep]
        self.exog_scale_ = exog_scale(train_rows, hist + futr, static_df, stat)
        self.series_ = list(df[ID].unique())
        panels = build_panels(df, self.mixing, hist, futr, stat, static_df, scale=self.exog_scale_)
        self.n_channels_ = panels.y.shape[1]
        self.quantiles_ = quantiles_for_levels(self._levels()) if self.loss == "quantile" else [0.5]
        self.device_ = resolve_device(self.device)

        train_starts = window_starts(panels, self.input_size, self.h, 0, -val_size if val_size else 0)
        val_starts = window_starts(panels, self.input_size, self.h, -val_size, 0) if val_size else train_starts[:0]
        # Validation on at most 512 windows spread evenly over the held-out part keeps checks cheap.
        if len(val_starts) > 512:
            val_starts = val_starts[np.linspace(0, len(val_starts) - 1, 512).astype(int)]
        nets, histories = [], []
        for member in range(self.ensemble):  # member 0 alone is the single model of ensemble=1
            torch.manual_seed(self.random_seed + member)
            rng = np.random.default_rng(self.random_seed + member)
            net = build_model(self.model, net_spec(self, self.n_channels_)).to(self.device_)
            callback = validation_callback if member == 0 else None
            histories.append(self._train(net, panels, train_starts, val_starts, rng, callback))
            nets.append(net)
        self.net_, self.members_ = nets[0], nets[1:]
        history = histories[0]
        self.fit_seconds_ = sum(h.seconds for h in histories)
        self.steps_trained_ = sum(h.steps for h in histories)
        self.best_val_loss_ = history.best_val if history.val else None
        if self._wants_calibration() and val_size:
            calibration = calibrate(self, panels, validation_windows(panels, self.input_size, self.h, val_size))
        self.calibration_ = calibration  # None: no intervals but the quantile heads
        self.guardrail_: Guardrail | None = None
        if self.guardrail and val_size:
            self.guardrail_ = run_guardrail(self, df, static_df, val_size, panels)
        self._keep_history(df, static_df)
        log_fit(self, panels, history)
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

    @property
    def conformal_scores_(self) -> np.ndarray | None:
        """(n, h) sorted scaled errors of the point forecast on the calibration windows; None when not calibrated."""
        return None if self.calibration_ is None else self.calibration_.scores

    @property
    def cqr_scores_(self) -> np.ndarray | None:
        """(levels, n, h) sorted CQR scores of a calibrated quantile model, widest level first; else None."""
        return None if self.calibration_ is None else self.calibration_.cqr_scores

    @property
    def validation_report_(self) -> pd.DataFrame | None:
        """The guardrail's scores on the validation windows: one row per forecaster (the model's alias, then
        ``naive``, ``seasonal_naive``, ``dlinear``) with ``mse``, ``mae``, ``score`` (the metric that decides) and
        ``windows``; ``attrs`` holds the metric, the best baseline, whether it fired, what predict serves and a note
        on any baseline left out. None when the fit had no validation split (or ``guardrail=False``)."""
        guard = getattr(self, "guardrail_", None)
        if guard is None:
            return None
        report = guard.report.copy()
        report.attrs.update(metric=guard.metric, best_baseline=guard.best_baseline, fired=guard.fired,
                            served=guard.served, note=guard.note)  # fmt: skip
        return report

    @property
    def served_(self) -> str:
        """What predict serves: "model", or the name of the baseline that the guardrail fell back to."""
        guard = getattr(self, "guardrail_", None)
        return "model" if guard is None else guard.served

    def _train(
        self, net: torch.nn.Module, panels: Panels, train_starts: np.ndarray, val_starts: np.ndarray, rng,
        callback=None,
    ) -> TrainingHistory:  # fmt: skip
        """Trains ``net`` in place on the windows at ``train_starts``, checking it on ``val_starts``."""

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
            ema_decay=self.ema_decay, compile=self.compile,
        )  # fmt: skip
        checks = []

        def validation(net: torch.nn.Module) -> float:
            score = self._evaluate(panels, val_starts, net)
            if callback is not None:
                callback(len(checks), score)
            checks.append(score)
            return score

        validation = validation if len(val_starts) else None
        return train_network(net, settings, training_loss, validation, progress=self.progress,
                             description=f"fit {self.alias_}")  # fmt: skip

    def _loss(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        inputs: torch.Tensor,
        loss: str | None = None,
        frequency_weight: float = 0.0,
        step_decay: float = 0.0,
    ) -> torch.Tensor:
        """``window_loss`` (default: the training loss) with this forecaster's quantiles and scale_loss."""
        return window_loss(loss or self.loss, prediction, target, inputs, self.quantiles_,
                           point_index=self._point_index(), scale_loss=self.scale_loss,
                           frequency_weight=frequency_weight, step_decay=step_decay)  # fmt: skip

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

    # ------------------------------------------------------------------ predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise NotFittedError("this XLSTMForecaster is not fitted yet: call fit(df) before predict")

    def _forward_windows(self, panels: Panels, starts: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Forecasts (n, h, C, Q) for windows whose inputs start at ``starts`` (targets not needed)."""
        outs = []
        nets = [self.net_, *getattr(self, "members_", [])]
        for net in nets:
            net.eval()
        with torch.inference_mode():
            for chunk in np.array_split(starts, max(1, -(-len(starts) // batch_size))):
                batch = self._batch(panels, chunk)
                batch.pop("target")
                out = sum(net(batch) for net in nets) / len(nets)  # (n, h, C, Q): the ensemble's mean
                outs.append(out.cpu().numpy())
        out = np.concatenate(outs)
        # Quantile heads are trained independently; sorting keeps the intervals nested.
        return np.sort(out, axis=-1) if out.shape[-1] > 1 else out

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
            check_same_exog(df, self.exog_columns_)
        if static_df is None:
            static_df = self.static_
        elif stat:
            check_static(static_df, stat)
        frame = forecast_frame(df, self.input_size, self.h, self.freq_, hist, futr, futr_df)
        panels = build_panels(frame, self.mixing, hist, futr, stat, static_df, order=self.series_,
                              scale=self.exog_scale_)  # fmt: skip
        starts = panels.offsets[1:] - self.input_size - self.h
        columns = self._served_columns(panels, starts, level)
        return long_frame(panels, columns, starts, self.input_size, self.ds_kind_ == "datetime")

    def update(self, new_df: pd.DataFrame) -> XLSTMForecaster:
        """Appends new observations to the kept history, so that ``predict()`` forecasts from the new end of each
        series. Nothing is refitted: the weights, the exogenous scaling and the calibration stay as fit left them.

        No model here carries a recurrent state from one window to the next: every forecast reads the last
        ``input_size`` steps of a series (RevIN re-normalises each window, and the xLSTM stack starts each window
        from a zero state), and a recurrent state cannot forget the step that leaves the window. So ``update`` keeps
        the last ``input_size`` rows and ``predict`` re-encodes that window: its cost is that of one forecast
        (O(input_size)), whatever the number of new observations, not a constant per observation. The forecasts equal
        ``predict(df=...)`` on the extended frame. For a constant cost per new observation, use
        ``StatefulXLSTMForecaster``, whose network reads each series from its start and keeps its state.

        Args:
            new_df: Rows of fitted series that continue each series' kept history without a gap (the first new
                ``ds`` is the step after the last one seen), with the same exogenous columns as at fit. With
                ``mixing="variates"`` every series gets the same timestamps.

        Raises:
            ValueError: a series fit did not see, a gap or an overlap (naming the series and the expected ``ds``),
                other columns than at fit, or series of a variates model updated unevenly.
        """
        self._check_fitted()
        hist, futr, _ = self._lists()
        check_long_frame(new_df, "new_df", hist + futr, freq=self.freq_)
        check_same_exog(new_df, self.exog_columns_)
        known = set(self.series_)
        unknown = [u for u in new_df[ID].unique() if u not in known]
        if unknown:
            raise ValueError(f"new_df holds series {unknown[0]!r}, which the forecaster was not fitted on")
        last = self.history_.groupby(ID, sort=False)[DS].last()
        first = new_df.groupby(ID, sort=False)[DS].first()
        for uid, ds in first.items():
            expected = future_dates(last[uid], self.freq_, 1)[0]
            datetime = self.ds_kind_ == "datetime"
            if (pd.Timestamp(ds) != pd.Timestamp(expected)) if datetime else int(ds) != int(expected):
                raise ValueError(
                    f"new_df: series {uid!r} starts at ds={ds} but continues the kept history only at ds={expected} "
                    f"(the step after its last row, {last[uid]})"
                )
        if self.mixing == "variates":
            stamps = {uid: tuple(g[DS]) for uid, g in new_df.groupby(ID, sort=False)}
            if len(stamps) != len(known) or len(set(stamps.values())) != 1:
                raise ValueError("mixing='variates' forecasts every series from one window: update every series with "
                                 "the same timestamps")  # fmt: skip
        columns = list(self.history_.columns)
        extended = pd.concat([self.history_, new_df[columns]], ignore_index=True)
        order = {uid: i for i, uid in enumerate(self.series_)}
        extended = extended.sort_values([ID, DS], key=lambda c: c.map(order) if c.name == ID else c, kind="stable")
        self.history_ = extended.groupby(ID, sort=False).tail(self.input_size).reset_index(drop=True)
        return self

    def _check_level(self, level: Sequence[float] | None) -> None:
        """Raises before any work when ``level`` cannot be served (a served baseline always has its intervals)."""
        if self.served_ == "model":
            check_level(self, level)
        else:
            check_level_list(level, "level")

    def _served_columns(self, panels: Panels, starts: np.ndarray, level: Sequence[float] | None) -> dict:
        """The forecast columns (n, h, C) of the windows at ``starts``: the model's, or the baseline's that
        ``fallback="baseline"`` serves."""
        if self.served_ != "model":
            return baseline_columns(self, panels, starts, level)
        return forecast_columns(self, panels, starts, self._forward_windows(panels, starts), level)

    # ------------------------------------------------------------------ evaluation
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
        return cross_validation(self, df, n_windows, step_size, h, static_df, val_size, level, refit)

    def forecast_windows(
        self, df: pd.DataFrame, n_windows: int, step_size: int = 1, static_df: pd.DataFrame | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Array form of a rolling evaluation with the fitted model (no refit), for evaluations over many windows.

        The last ``n_windows`` windows of each series (``step_size`` apart, the last ending at the series end).

        Returns:
            y (n, h, C) actual values and y_hat (n, h, C, Q) forecasts; windows ordered by panel, then time.
        """
        self._check_fitted()
        hist, futr, _ = self._lists()
        check_long_frame(df, "df", hist + futr, freq=self.freq_)
        panels, starts = self._rolling_windows(df, n_windows, step_size, static_df)
        fut = starts[:, None] + self.input_size + np.arange(self.h)  # (n, h)
        if self.served_ != "model":
            return panels.y[fut], baseline_columns(self, panels, starts, None)[self.alias_][..., None]
        return panels.y[fut], self._forward_windows(panels, starts)

    def _rolling_windows(
        self, df: pd.DataFrame, n_windows: int, step: int, static_df: pd.DataFrame | None, windows=None
    ) -> tuple[Panels, np.ndarray]:
        """The panels of a checked frame ``df`` and the starts of its rolling windows (see panels.rolling_starts)."""
        hist, futr, stat = self._lists()
        static = static_df if static_df is not None else self.static_
        panels = build_panels(df, self.mixing, hist, futr, stat, static, order=self.series_, scale=self.exog_scale_)
        return panels, rolling_starts(panels, self.input_size, self.h, n_windows, step, windows)

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
