"""``StatefulXLSTMForecaster``: a recurrent xLSTM forecaster that keeps each series' state, so that new observations
cost a constant amount each, whatever the length of the history.

    fc = StatefulXLSTMForecaster(h=24, lags=24).fit(df, val_size=48)   # reads every series from its start
    fc.predict()                      # unique_id, ds, StatefulxLSTM: h steps after the end of each series
    fc.update(new_rows).predict()     # advances the stored states by the new rows only, then forecasts
    fc.predict(df=frame)              # from scratch on another frame (the stored states stay as they are)
    fc.replay(frame)                  # recomputes and stores the states from scratch on ``frame``
    fc.save("model_dir"); StatefulXLSTMForecaster.load("model_dir").update(more_rows)

How it differs from ``XLSTMForecaster``: that one forecasts from the last ``input_size`` steps of a series, re-scaled
per window (RevIN), with the stack started from a zero state, so a new observation means re-encoding the window. This
one scales each series once, with the mean and std of its training rows (kept, never re-fitted), and its network
(``forecasting.stateful_net``) reads the series from its first row with the state carried: the state after the last
row is all a forecast needs, and ``update`` steps it over the new rows alone. It is trained with forking sequences
(MQ-RNN, Wen et al. 2017): every step of a series forecasts the next h values, in chunks of ``chunk_len`` steps
with the state carried and detached between chunks (truncated backpropagation through time).

Only the target column ``y`` is read (no exogenous columns; other columns of a frame are ignored), each series on
its own (one global network over all series). Point forecasts only. With a validation split, the naive and seasonal
naive forecasts are scored on the same validation origins (``validation_report_``) and a model no better than them
warns (``GuardrailWarning``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from xlstm_seq.devices import resolve_device
from xlstm_seq.forecasting.guardrails import GuardrailWarning, season_for_freq
from xlstm_seq.forecasting.models import BACKBONES
from xlstm_seq.forecasting.stateful_net import StatefulNet, lag_features
from xlstm_seq.forecasting.training import TrainingHistory, TrainingSettings, train_network
from xlstm_seq.forecasting.validation import DS, ID, Y, check_long_frame, future_dates, normalise_freq
from xlstm_seq.state import xLSTMState
from xlstm_seq.tracking import create_tracker

LOSSES = ("mse", "mae")
READ_BATCH = 256
"""Series read side by side in one pass of predict(df=...), replay and the validation checks."""


def _positive_int(value: object, name: str) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class StatefulXLSTMForecaster(BaseEstimator):
    """Recurrent xLSTM forecaster with a stored state per series and a constant-cost ``update``.

    Every constructor argument is a scikit-learn parameter (get_params/set_params, ``sklearn.base.clone``).

    Args:
        h: Forecast horizon (steps).
        lags: Values fed to the network at every step (the most recent ``lags`` scaled values, oldest first); the
            state carries everything older.
        embedding_dim: Width E of the stack.
        num_blocks: Blocks in the stack.
        num_heads: Heads per block.
        backbone: "mlstm", "slstm" or "mixed" (alternating blocks).
        dropout: Dropout inside the stack.
        chunk_len: Steps per chunk of truncated backpropagation through time (the gradient reaches this far back; the
            state reaches back to the series' start).
        loss: "mse" or "mae", over every forecast from every step whose targets are training rows (scaled values).
        max_steps: Training steps (AdamW, cosine decay to a tenth of the learning rate); one step is one chunk of a
            batch of series.
        batch_size: Series read side by side per training step (all of them when fewer).
        learning_rate: AdamW's peak learning rate.
        weight_decay: AdamW's weight decay.
        val_check_steps: Steps between validation checks (with ``fit(val_size=...)``).
        early_stop_patience_steps: Stop after this many validation checks without improvement; -1 or 0 never
            stops early. With a validation split the best checked weights are kept.
        ema_decay: Keep and serve an exponential moving average of the weights (decay per step); None: the raw ones.
        random_seed: Seeds the initial weights and the order of the series: a CPU run is repeatable.
        freq: Pandas offset alias or integer step; None infers it from the data.
        alias: Name of the forecast column (default "StatefulxLSTM").
        device: "auto" (a CUDA device when torch sees one, else the CPU), "cpu", "cuda" or "cuda:N".
        progress: Show a tqdm progress bar during fit.
        track: Log each fit to MLflow (params, losses, validation scores, the saved model).
        experiment: MLflow experiment of the fits.
        tracking_uri: MLflow store (default ``MLFLOW_TRACKING_URI`` or ./mlflow.db).
        guardrail: In a fit with a validation split, score the naive (last value) and seasonal naive forecasts on
            the same validation origins as the model (``validation_report_``, logged to MLflow) and warn
            (``GuardrailWarning``, both numbers) when the model is not better than the best of them, by ``loss``.
            The model is served either way (there is no fallback to a baseline here).
        season_length: Season of the seasonal naive baseline; None: from the frame's freq (hourly 24, daily 7,
            weekly 52, monthly 12, quarterly 4), left out when unknown.
    """

    def __init__(
        self,
        h: int = 24,
        lags: int = 1,
        embedding_dim: int = 64,
        num_blocks: int = 2,
        num_heads: int = 4,
        backbone: str = "mlstm",
        dropout: float = 0.0,
        chunk_len: int = 256,
        loss: str = "mse",
        max_steps: int = 500,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        val_check_steps: int = 50,
        early_stop_patience_steps: int = -1,
        ema_decay: float | None = None,
        random_seed: int = 1,
        freq: str | int | None = None,
        alias: str | None = None,
        device: str = "auto",
        progress: bool = True,
        track: bool = True,
        experiment: str = "xlstm-seq-forecasting",
        tracking_uri: str | None = None,
        guardrail: bool = True,
        season_length: int | None = None,
    ):
        self.h = h
        self.lags = lags
        self.embedding_dim = embedding_dim
        self.num_blocks = num_blocks
        self.num_heads = num_heads
        self.backbone = backbone
        self.dropout = dropout
        self.chunk_len = chunk_len
        self.loss = loss
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.val_check_steps = val_check_steps
        self.early_stop_patience_steps = early_stop_patience_steps
        self.ema_decay = ema_decay
        self.random_seed = random_seed
        self.freq = freq
        self.alias = alias
        self.device = device
        self.progress = progress
        self.track = track
        self.experiment = experiment
        self.tracking_uri = tracking_uri
        self.guardrail = guardrail
        self.season_length = season_length
        self._check_settings()

    # ------------------------------------------------------------------ settings
    @property
    def alias_(self) -> str:
        return self.alias or "StatefulxLSTM"

    def _check_settings(self) -> None:
        """Raises ValueError naming the first bad setting."""
        for name in ("h", "lags", "embedding_dim", "num_blocks", "num_heads", "chunk_len", "max_steps", "batch_size",
                     "val_check_steps"):  # fmt: skip
            _positive_int(getattr(self, name), name)
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.embedding_dim % self.num_heads:
            raise ValueError(f"embedding_dim={self.embedding_dim} must be a multiple of num_heads={self.num_heads}")
        for name, low in (("dropout", 0.0), ("learning_rate", 0.0), ("weight_decay", 0.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not value >= low:
                raise ValueError(f"{name} must be a number >= {low}, got {value!r}")
        if not self.dropout < 1:
            raise ValueError(f"dropout must be below 1, got {self.dropout!r}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must be None or in (0, 1), got {self.ema_decay!r}")
        if self.season_length is not None:
            _positive_int(self.season_length, "season_length")
        if isinstance(self.early_stop_patience_steps, bool) or not isinstance(self.early_stop_patience_steps, int):
            raise ValueError(f"early_stop_patience_steps must be an integer, got {self.early_stop_patience_steps!r}")
        normalise_freq(self.freq)

    def _build_net(self) -> StatefulNet:
        return StatefulNet(self.h, self.lags, self.embedding_dim, self.num_blocks, self.num_heads, self.backbone,
                           self.dropout).to(self.device_)  # fmt: skip

    # ------------------------------------------------------------------ fit
    def fit(self, df: pd.DataFrame, val_size: int = 0) -> StatefulXLSTMForecaster:
        """Trains on every series of ``df``, then reads each series to its end and stores its state.

        Args:
            df: The long frame (``unique_id``, ``ds``, ``y``; other columns are ignored).
            val_size: Steps at the end of each series held out of training: the forecasts from the steps before and
                inside them whose targets lie in them score the validation checks (early stopping, the best weights
                kept), ``validation_scores_`` and, with ``guardrail``, ``validation_report_``. 0: no validation, the
                final weights are kept. The scaling statistics come from the rows before them.

        Raises:
            ValueError: a bad frame (naming the series or column), a series shorter than val_size + h + 1, or a bad
                setting.
        """
        self._check_settings()
        if isinstance(val_size, bool) or not isinstance(val_size, (int, np.integer)) or val_size < 0:
            raise ValueError(f"val_size must be a non-negative integer number of steps, got {val_size!r}")
        if 0 < val_size < self.h:
            raise ValueError(f"val_size must be 0 or at least h={self.h}, got {val_size}")
        freq = check_long_frame(df, "df", freq=self.freq)
        sizes = df.groupby(ID, sort=False).size()
        need = int(val_size) + self.h + 1
        short = sizes[sizes < need]
        if len(short):
            raise ValueError(f"series {short.index[0]!r} has {int(short.iloc[0])} rows but val_size + h + 1 = {need} "
                             f"are needed ({len(short)} series too short)")  # fmt: skip
        self.freq_ = freq
        self.ds_kind_ = "int" if pd.api.types.is_integer_dtype(df[DS]) else "datetime"
        self.device_ = resolve_device(self.device)
        self.series_ = list(df[ID].unique())
        values = [g.to_numpy(np.float64) for _, g in df.groupby(ID, sort=False)[Y]]
        ends = [len(v) - int(val_size) for v in values]  # training rows of each series: [0, end)
        self.mean_ = np.array([v[:e].mean() for v, e in zip(values, ends, strict=True)])
        std = np.array([v[:e].std() for v, e in zip(values, ends, strict=True)])
        self.std_ = np.where(std > 0, std, 1.0)
        scaled = [self._scale(v, i) for i, v in enumerate(values)]

        torch.manual_seed(self.random_seed)
        rng = np.random.default_rng(self.random_seed)
        net = self._build_net()
        stream = _ChunkStream(scaled, ends, self.h, self.lags, self.chunk_len, self.batch_size, self.loss, rng,
                              self.device_)  # fmt: skip
        validation = None
        if val_size:

            def validation(scored: torch.nn.Module) -> float:
                return self._validation_scores(scored, scaled, ends, scaled_errors=True)["model"][self.loss]

        settings = TrainingSettings(max_steps=self.max_steps, learning_rate=self.learning_rate,
                                    weight_decay=self.weight_decay, val_check_steps=self.val_check_steps,
                                    early_stop_patience_steps=self.early_stop_patience_steps,
                                    ema_decay=self.ema_decay, compile=False)  # fmt: skip
        history = train_network(net, settings, stream.loss, validation, progress=self.progress,
                                description=f"fit {self.alias_}")  # fmt: skip
        self.net_ = net
        self.fit_seconds_ = history.seconds
        self.steps_trained_ = history.steps
        self.best_val_loss_ = history.best_val if history.val else None
        self.validation_scores_, self.validation_report_ = None, None
        if val_size:
            scores = self._validation_scores(net, scaled, ends, scaled_errors=False, baselines=self.guardrail)
            self.validation_scores_ = scores["model"]
            if self.guardrail:
                self.validation_report_ = self._guardrail(scores)
        self._store(scaled, list(range(len(self.series_))), self._last_ds(df))
        self._log_fit(history, int(val_size))
        return self

    def _scale(self, values: np.ndarray, index: int) -> np.ndarray:
        """A series' values (T,) on the network's scale, with its fit-time statistics (float32)."""
        return ((values - self.mean_[index]) / self.std_[index]).astype(np.float32)

    def _validation_scores(
        self, net: torch.nn.Module, scaled: list[np.ndarray], ends: list[int], *, scaled_errors: bool,
        baselines: bool = False,
    ) -> dict[str, dict[str, float]]:  # fmt: skip
        """MSE and MAE of the forecasts whose h targets lie in the held-out rows [end, len) of each series (from
        every step end - 1, ..., len - h - 1), on the scaled values or, without ``scaled_errors``, the data's scale.

        Returns:
            {"model": {"mse", "mae", "windows"}}, and with ``baselines`` the same for "naive" (the last value) and
            "seasonal_naive" (the last season repeated; left out when the season is unknown or 1) on those origins.
        """
        wanted = [np.arange(e - 1, len(z) - self.h) for z, e in zip(scaled, ends, strict=True)]
        _, _, forecasts = self._read(net, scaled, wanted)
        season = self._season()
        sums: dict[str, list[float]] = {}
        for i, (z, steps, out) in enumerate(zip(scaled, wanted, forecasts, strict=True)):
            ahead = np.arange(self.h)
            target = z[steps[:, None] + 1 + ahead]  # (n, h)
            candidates = {"model": out.cpu().numpy()}
            if baselines:
                candidates["naive"] = np.repeat(z[steps][:, None], self.h, axis=1)
                if season is not None:
                    # From origin p the seasonal naive forecast of p + 1 + j is z[p + 1 + j - season * k], the last
                    # season's value; an origin less than a season into the series repeats what it has (wraps).
                    lag = steps[:, None] - season + 1 + ahead % season
                    candidates["seasonal_naive"] = z[np.where(lag >= 0, lag, steps[:, None])]
            for name, forecast in candidates.items():
                error = forecast.astype(np.float64) - target
                if not scaled_errors:
                    error = error * self.std_[i]
                total = sums.setdefault(name, [0.0, 0.0, 0])
                total[0] += float((error**2).sum())
                total[1] += float(np.abs(error).sum())
                total[2] += error.size
        return {name: {"mse": sq / n, "mae": ab / n, "windows": n // self.h} for name, (sq, ab, n) in sums.items()}

    def _season(self) -> int | None:
        """The seasonal naive baseline's season: ``season_length``, else the frequency's; None when unknown or 1."""
        season = self.season_length or season_for_freq(self.freq_)
        return season if season is not None and season > 1 else None

    def _guardrail(self, scores: dict[str, dict[str, float]]) -> pd.DataFrame:
        """The validation report (the model beside the baselines) and a GuardrailWarning when no better."""
        rows = {self.alias_ if name == "model" else name: s for name, s in scores.items()}
        report = pd.DataFrame.from_dict(rows, orient="index")
        report.index.name = "forecaster"
        metric = self.loss
        baselines = report.drop(index=self.alias_)
        best = baselines[metric].idxmin()
        report.attrs.update(metric=metric, best_baseline=best,
                            fired=bool(report.loc[self.alias_, metric] >= baselines.loc[best, metric]))  # fmt: skip
        if report.attrs["fired"]:
            warnings.warn(
                f"{self.alias_} is not better than the {best} baseline on the validation windows: "
                f"{metric.upper()} {report.loc[self.alias_, metric]:.4f} vs {baselines.loc[best, metric]:.4f} "
                f"({int(report.loc[self.alias_, 'windows'])} windows of h={self.h}); forecasts are served anyway",
                GuardrailWarning,
                stacklevel=3,
            )
        return report

    # ------------------------------------------------------------------ reading series from their start
    def _read(
        self, net: StatefulNet, scaled: list[np.ndarray], wanted: list[np.ndarray] | None = None
    ) -> tuple[xLSTMState, torch.Tensor, list[torch.Tensor]]:
        """Runs ``net`` over each series from its first value, in chunks of ``chunk_len`` with the state carried.

        Returns:
            the state after each series' last value (batch in the order of ``scaled``), the stack's output at that
            step (N, E), and, for ``wanted`` (steps per series), the scaled forecasts from those steps ((n_i, h) each).
        """
        net.eval()
        states: list[xLSTMState | None] = [None] * len(scaled)
        last = [None] * len(scaled)
        forecasts: list[list[torch.Tensor]] = [[] for _ in scaled]
        order = np.argsort([len(z) for z in scaled], kind="stable")  # similar lengths side by side: less padding
        with torch.no_grad():
            for group in np.array_split(order, max(1, -(-len(order) // READ_BATCH))):
                lengths = np.array([len(scaled[i]) for i in group])
                z = torch.zeros(len(group), int(lengths.max()))
                for row, i in enumerate(group):
                    z[row, : lengths[row]] = torch.from_numpy(scaled[i])
                z = z.to(self.device_)
                inputs = lag_features(z, self.lags)  # (B, T, lags)
                # Chunk borders at every chunk_len and at each series' end, where its state is taken.
                borders = sorted(set(range(0, int(lengths.max()), self.chunk_len)) | set(lengths.tolist()))
                state = None
                for lo, hi in zip(borders[:-1], borders[1:], strict=True):
                    hidden, state = net.encode(inputs[:, lo:hi], state)  # (B, hi - lo, E)
                    for row in np.flatnonzero(lengths == hi):
                        i = group[row]
                        states[i], last[i] = state.select(int(row)), hidden[row, -1]
                    if wanted is None:
                        continue
                    for row, i in enumerate(group):
                        steps = wanted[i][(wanted[i] >= lo) & (wanted[i] < hi)]
                        if len(steps):
                            at = torch.as_tensor(steps - lo, device=self.device_)
                            forecasts[i].append(net.forecast(hidden[row, at], inputs[row, lo + at, -1]))
        empty = torch.zeros(0, self.h, device=self.device_)
        return (xLSTMState.cat(states), torch.stack(last),
                [torch.cat(f) if f else empty for f in forecasts])  # fmt: skip

    def _store(self, scaled: list[np.ndarray], rows: list[int], last_ds: list) -> None:
        """Reads the series ``scaled`` (those of ``series_[rows]``) from their start and stores their states."""
        state, hidden, _ = self._read(self.net_, scaled)
        recent = torch.stack([self._recent(torch.from_numpy(z)) for z in scaled]).to(self.device_)
        if not hasattr(self, "state_") or len(rows) == len(self.series_):
            order = np.argsort(rows)
            self.state_ = state.select(torch.as_tensor(order, device=self.device_))
            self.last_hidden_, self.recent_ = hidden[order], recent[order]
            self.last_ds_ = [last_ds[j] for j in order]
            return
        self._write_rows(rows, state, hidden, recent)
        for j, row in enumerate(rows):
            self.last_ds_[row] = last_ds[j]

    def _recent(self, z: torch.Tensor) -> torch.Tensor:
        """The last ``lags`` scaled values (lags,), zeros before the series' start."""
        padded = torch.cat([torch.zeros(self.lags, dtype=torch.float32), z.float()])
        return padded[-self.lags :]

    def _write_rows(self, rows: list[int], state: xLSTMState, hidden: torch.Tensor, recent: torch.Tensor) -> None:
        """Overwrites the stored state, last output and recent values of the series at ``rows``."""
        index = torch.as_tensor(rows, device=self.device_)
        for stored_block, new_block in zip(self.state_.blocks, state.blocks, strict=True):
            for stored, new in zip(stored_block.tensors(), new_block.tensors(), strict=True):
                stored[index] = new
        self.last_hidden_[index] = hidden
        self.recent_[index] = recent

    @staticmethod
    def _last_ds(df: pd.DataFrame) -> list:
        return list(df.groupby(ID, sort=False)[DS].last())

    # ------------------------------------------------------------------ streaming
    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise NotFittedError("this StatefulXLSTMForecaster is not fitted yet: call fit(df) first")

    def _rows_of(self, df: pd.DataFrame, name: str) -> list[int]:
        """The positions in ``series_`` of the series of ``df``; a series fit did not see is named."""
        position = {uid: i for i, uid in enumerate(self.series_)}
        unknown = [u for u in df[ID].unique() if u not in position]
        if unknown:
            raise ValueError(f"{name} holds series {unknown[0]!r}, which the forecaster was not fitted on")
        return [position[u] for u in df[ID].unique()]

    def _same_ds_kind(self, df: pd.DataFrame, name: str) -> None:
        integer = pd.api.types.is_integer_dtype(df[DS])
        if integer != (self.ds_kind_ == "int"):
            kind = "integer steps" if self.ds_kind_ == "int" else "timestamps"
            raise ValueError(f"{name} column 'ds' must hold {kind}, as the frame fit saw, got dtype {df[DS].dtype}")

    def update(self, new_df: pd.DataFrame) -> StatefulXLSTMForecaster:
        """Advances the stored state of each series of ``new_df`` by its new rows; ``predict()`` then forecasts from
        the new end. Nothing is refitted (weights and scaling stay as fit left them), and no older row is read
        again: the cost is the stack's steps over the new rows, a constant per observation whatever the length of
        the history. The forecasts equal ``predict(df=...)`` on the extended frame (to float32 rounding).

        Args:
            new_df: Rows that continue fitted series without a gap (the first new ``ds`` of a series is the step after
                its last one seen); series without new rows keep their state.

        Raises:
            ValueError: a bad frame, a series fit did not see, or a gap or an overlap (naming the series and the
                expected ``ds``).
        """
        self._check_fitted()
        check_long_frame(new_df, "new_df", freq=self.freq_)
        self._same_ds_kind(new_df, "new_df")
        rows = self._rows_of(new_df, "new_df")
        groups = new_df.groupby(ID, sort=False)
        for row, (uid, group) in zip(rows, groups, strict=True):
            first = group[DS].iloc[0]
            expected = future_dates(self.last_ds_[row], self.freq_, 1)[0]
            if pd.Timestamp(first) != pd.Timestamp(expected) if self.ds_kind_ == "datetime" else first != expected:
                raise ValueError(
                    f"new_df: series {uid!r} starts at ds={first} but continues the stored state only at "
                    f"ds={expected} (the step after its last row, {self.last_ds_[row]})"
                )
        values = [self._scale(g.to_numpy(np.float64), row) for row, (_, g) in zip(rows, groups[Y], strict=True)]
        counts = np.array([len(v) for v in values])
        with torch.no_grad():
            for count in np.unique(counts):  # series with as many new rows advance together
                members = np.flatnonzero(counts == count)
                index = [rows[j] for j in members]
                at = torch.as_tensor(index, device=self.device_)
                z = torch.from_numpy(np.stack([values[j] for j in members])).to(self.device_)  # (B, count)
                recent = self.recent_[at]  # (B, lags)
                inputs = lag_features(z, self.lags, before=recent[:, 1:])  # (B, count, lags)
                hidden, state = self.net_.encode(inputs, self.state_.select(at))
                self._write_rows(index, state, hidden[:, -1], torch.cat([recent, z], dim=1)[:, -self.lags :])
        for row, (_, ds) in zip(rows, groups[DS], strict=True):
            self.last_ds_[row] = ds.iloc[-1]
        return self

    def replay(self, df: pd.DataFrame) -> StatefulXLSTMForecaster:
        """Recomputes from scratch, and stores, the state of each series of ``df`` after its last row (reading it
        from its first row, with the fit-time scaling); later updates continue from there. Series not in ``df``
        keep their state. Its cost grows with the length of ``df``, as a refit of the state should.

        Raises:
            ValueError: a bad frame or a series fit did not see.
        """
        self._check_fitted()
        check_long_frame(df, "df", freq=self.freq_)
        self._same_ds_kind(df, "df")
        rows = self._rows_of(df, "df")
        scaled = [self._scale(g.to_numpy(np.float64), row) for row, (_, g) in zip(rows, df.groupby(ID, sort=False)[Y],
                                                                                    strict=True)]  # fmt: skip
        self._store(scaled, rows, self._last_ds(df))
        return self

    # ------------------------------------------------------------------ predict
    def predict(self, df: pd.DataFrame | None = None) -> pd.DataFrame:
        """Forecasts h steps after the end of each series: from the stored states (``df`` None), or from scratch on
        ``df`` (each of its series read from its first row, with the fit-time scaling; the stored states stay).

        Returns:
            ``unique_id``, ``ds`` and the alias column, series in the order fit saw them.

        Raises:
            ValueError: a bad frame or a series fit did not see (with ``df``).
        """
        self._check_fitted()
        if df is None:
            rows = list(range(len(self.series_)))
            hidden, last_value, last_ds = self.last_hidden_, self.recent_[:, -1], self.last_ds_
        else:
            check_long_frame(df, "df", freq=self.freq_)
            self._same_ds_kind(df, "df")
            found = self._rows_of(df, "df")
            groups = df.groupby(ID, sort=False)
            scaled = [self._scale(g.to_numpy(np.float64), row) for row, (_, g) in zip(found, groups[Y], strict=True)]
            _, hidden, _ = self._read(self.net_, scaled)
            last_value = torch.tensor([z[-1] for z in scaled], device=self.device_)
            order = np.argsort(found)  # the order fit saw
            rows = [found[j] for j in order]
            hidden, last_value = hidden[order], last_value[order]
            last_ds = [g.iloc[-1] for _, g in groups[DS]]
            last_ds = [last_ds[j] for j in order]
        with torch.no_grad():
            out = self.net_.forecast(hidden, last_value).cpu().numpy().astype(np.float64)  # (N, h) scaled
        out = out * self.std_[rows, None] + self.mean_[rows, None]
        return self._frame(rows, last_ds, out)

    def _frame(self, rows: list[int], last_ds: list, forecasts: np.ndarray) -> pd.DataFrame:
        """The long forecast frame of the series at ``rows`` (forecasts (N, h))."""
        dates = np.concatenate([future_dates(ds, self.freq_, self.h) for ds in last_ds])
        ids = np.repeat(np.array([self.series_[r] for r in rows], dtype=object), self.h)
        frame = pd.DataFrame({ID: ids, DS: dates, self.alias_: forecasts.reshape(-1)})
        if self.ds_kind_ == "int":
            frame[DS] = frame[DS].astype(np.int64)
        return frame

    def forecast_steps(self, df: pd.DataFrame, first: int) -> np.ndarray:
        """Forecasts from every step of ``df`` from the ``first``-th row of each series on, in one pass from scratch
        (what ``update`` one row at a time followed by ``predict`` gives at each step), for evaluations over many
        forecast origins.

        Returns:
            (N, n, h) forecasts on the data's scale from rows first, ..., first + n - 1 of each series (the series of
            ``df`` in the order fit saw them; every series needs the same number of rows).
        """
        self._check_fitted()
        check_long_frame(df, "df", freq=self.freq_)
        found = self._rows_of(df, "df")
        order = np.argsort(found)
        groups = list(df.groupby(ID, sort=False)[Y])
        scaled = [self._scale(groups[j][1].to_numpy(np.float64), found[j]) for j in order]
        if len({len(z) for z in scaled}) != 1:
            raise ValueError("forecast_steps: every series of df needs the same number of rows")
        if not 0 <= first < len(scaled[0]):
            raise ValueError(f"forecast_steps: first={first} must be a row of the series (0..{len(scaled[0]) - 1})")
        wanted = [np.arange(first, len(z)) for z in scaled]
        _, _, forecasts = self._read(self.net_, scaled, wanted)
        rows = [found[j] for j in order]
        out = torch.stack(forecasts).cpu().numpy().astype(np.float64)  # (N, n, h)
        return out * self.std_[rows, None, None] + self.mean_[rows, None, None]

    # ------------------------------------------------------------------ tracking and persistence
    def _log_fit(self, history: TrainingHistory, val_size: int) -> None:
        """One MLflow run of the fit (nothing when ``track`` is off): settings, losses per step, validation scores,
        fit time and the saved model."""
        import tempfile

        with create_tracker(self.experiment, run_name=f"{self.alias_}-fit", enabled=self.track,
                            tracking_uri=self.tracking_uri) as tracker:  # fmt: skip
            tracker.log_params({**self.get_params(), "freq_inferred": str(self.freq_), "n_series": len(self.series_),
                                "val_size": val_size})  # fmt: skip
            tracker.set_tags({"forecasting.model": "stateful_xlstm", "forecasting.backbone": self.backbone})
            for step, value in enumerate(history.train):
                tracker.log_metrics({"train/loss": value}, step=step)
            for step, value in history.val:
                tracker.log_metrics({"val/loss": value}, step=step)
            tracker.log_metrics({"fit/seconds": self.fit_seconds_, "fit/steps": self.steps_trained_})
            if self.validation_scores_ is not None:
                tracker.log_metrics({f"val/{k}": float(v) for k, v in self.validation_scores_.items()})
            if self.validation_report_ is not None:  # the model beside the baselines on the validation origins
                for name, row in self.validation_report_.iterrows():
                    tracker.log_metrics({f"guardrail/{name}/{k}": float(row[k]) for k in ("mse", "mae")})
                tracker.set_tags({"guardrail.fired": self.validation_report_.attrs["fired"],
                                  "guardrail.metric": self.loss})  # fmt: skip
            if self.track:
                with tempfile.TemporaryDirectory() as tmp:
                    tracker.log_artifact(self.save(Path(tmp) / "model"), "model")

    def save(self, path: str | Path) -> Path:
        """Writes ``config.json`` (parameters, scaling, series, last timestamps, checksums), ``model.safetensors``
        and ``state.safetensors`` (each series' state, last output and recent values) into the folder ``path``, so
        that a loaded forecaster goes on streaming where this one is. Nothing is pickled; an earlier save at
        ``path`` is replaced only once the new one is complete; a folder holding other files is refused."""
        from xlstm_seq.forecasting.stateful_persistence import save_stateful

        self._check_fitted()
        return save_stateful(self, path)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> StatefulXLSTMForecaster:
        """Restores a forecaster written by :meth:`save` (on ``device``; None: the saved setting). A missing file
        raises FileNotFoundError, an edited or mismatched one ValueError, each naming the file."""
        from xlstm_seq.forecasting.stateful_persistence import load_stateful

        return load_stateful(cls, path, device)


class _ChunkStream:
    """The training chunks of truncated backpropagation through time: batches of series read from their start,
    ``chunk_len`` steps per training step, the state carried (and detached) from one chunk to the next. Every step
    forecasts the next h values; targets beyond a series' training rows are masked out."""

    def __init__(self, scaled, ends, h, lags, chunk_len, batch_size, loss, rng, device):
        self.scaled, self.ends, self.h, self.lags = scaled, ends, h, lags
        self.chunk_len, self.batch_size, self.loss_name, self.rng, self.device = (
            chunk_len, batch_size, loss, rng, device)  # fmt: skip
        self.queue: list[int] = []
        self.position = self.steps = 0

    def _next_batch(self) -> None:
        """Takes the next series (a fresh shuffle when the last is used up) and lays out their inputs and targets."""
        take = min(self.batch_size, len(self.scaled))
        if len(self.queue) < take:
            self.queue = list(self.rng.permutation(len(self.scaled)))
        batch, self.queue = self.queue[:take], self.queue[take:]
        ends = np.array([self.ends[i] for i in batch])
        self.steps = int(ends.max()) - 1  # the last step with a training target is end - 2
        z = torch.zeros(len(batch), self.steps + self.h + 1)
        valid = torch.zeros_like(z, dtype=torch.bool)
        for row, i in enumerate(batch):
            z[row, : ends[row]] = torch.from_numpy(self.scaled[i][: ends[row]])
            valid[row, : ends[row]] = True
        self.inputs = lag_features(z[:, : self.steps], self.lags).to(self.device)  # (B, steps, lags)
        self.targets = z[:, 1:].unfold(1, self.h, 1)[:, : self.steps].to(self.device)  # (B, steps, h)
        self.mask = valid[:, 1:].unfold(1, self.h, 1)[:, : self.steps].to(self.device)  # (B, steps, h)
        self.state = None
        # A first chunk of random length moves the chunk borders from one pass to the next.
        self.position = 0
        self.first = int(self.rng.integers(max(1, self.chunk_len // 2), self.chunk_len + 1))

    def loss(self, net: StatefulNet) -> torch.Tensor:
        """The masked loss of the next chunk (one training step)."""
        if self.position >= self.steps:
            self._next_batch()
        lo = self.position
        hi = min(self.steps, lo + (self.first if lo == 0 else self.chunk_len))
        out, _, state = net(self.inputs[:, lo:hi], self.state)  # (B, hi - lo, h)
        self.state, self.position = state.detach(), hi
        error = out - self.targets[:, lo:hi]
        error = error**2 if self.loss_name == "mse" else error.abs()
        mask = self.mask[:, lo:hi]
        return (error * mask).sum() / mask.sum().clamp(min=1)
