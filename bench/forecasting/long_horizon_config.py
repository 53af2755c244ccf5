"""The settings of `xlstm-seq forecast benchmark`: the grid, the model settings per data set and horizon, and the
published numbers it is compared with (configs/forecasting/long_horizon.yaml holds the grid; the published numbers
come from published_long_horizon.yaml beside this file)."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xlstm_seq.config import ConfigMixin
from xlstm_seq.devices import resolve_device
from xlstm_seq.forecasting.datasets import LONG_HORIZON
from xlstm_seq.forecasting.losses import LOSSES

BASELINES = ("seasonal_naive", "dlinear", "nf_patchtst", "nf_dlinear")
SPLITS = ("test", "val", "val_backtest")
# The part of the split whose windows each eval_split scores.
SCORED_PART = {"test": "test", "val": "val", "val_backtest": "val"}
OVERRIDE_KEYS = ("input_size", "xlstm", "dlinear", "neuralforecast", "by_horizon")
"""Keys of one ``per_dataset`` entry; ``by_horizon`` maps a horizon to its own ``xlstm``/``dlinear`` changes."""


PUBLISHED = Path(__file__).with_name("published_long_horizon.yaml")
"""The published scores and test batches the grid is compared with (their sources are cited in the file)."""


@functools.lru_cache(maxsize=1)
def published_long_horizon() -> dict[str, Any]:
    """``PUBLISHED`` as read: ``scores`` (model -> data set -> horizon -> [MSE, MAE]) and ``test_batch`` (data set ->
    test batch of the published runs). Callers get copies to change."""
    with PUBLISHED.open() as fh:
        return yaml.safe_load(fh)


def _published_tables() -> dict[str, dict[str, dict[int, list[float]]]]:
    return copy.deepcopy(published_long_horizon()["scores"])


@dataclass
class ModelSettings(ConfigMixin):
    """Keyword arguments of one ``XLSTMForecaster`` in the benchmark (h, input_size and seed come from the grid)."""

    model: str = "xlstm_time"
    """"xlstm_time", "xlstm_time_linear", "xlstm_mixer", "xlstm_encoder" or "dlinear"."""
    backbone: str = "mlstm"
    """"mlstm", "slstm" or "mixed"."""
    mixing: str = "variates"
    """"independent" or "variates"."""
    embedding_dim: int = 64
    num_blocks: int = 1
    num_heads: int = 4
    patch_len: int | None = None
    patch_stride: int | None = None
    """None: non-overlapping patches."""
    moving_avg: int = 25
    revin_subtract_last: bool = False
    """Centre each window on its last value instead of its mean."""
    dropout: float = 0.3
    loss: str = "mae"
    """xLSTMTime trains with L1."""
    valid_loss: str | None = None
    """The loss early stopping follows on the validation split; None: ``loss``."""
    max_steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    val_check_steps: int = 100
    early_stop_patience_steps: int = 3
    freq_loss_weight: float = 0.0
    """Weight of the frequency-domain loss term (FreDF); 0: none."""
    horizon_loss_decay: float = 0.0
    """Training error at forecast step t weighed by t^-p (CARD's signal-decay loss); 0: every step alike."""
    augment_freq_mask: float = 0.0
    """Rate of the FreqMask copies appended to every training batch (FrAug); 0: no augmentation."""
    ema_decay: float | None = None
    """Check, keep and forecast with a moving average of the weights (decay per step); None: the raw weights."""
    ensemble: int = 1
    """Forecasters per seed, trained with seeds ``seed * ensemble + j``; their point forecasts are averaged (fit
    time is their sum). 1: a single model."""
    ensemble_variants: list[dict[str, Any]] = field(default_factory=list)
    """Changes per ensemble member, taken in turn: member j uses ``ensemble_variants[j % len]`` on top of these
    settings (e.g. ``[{}, {backbone: slstm}]``: mLSTM and sLSTM members alternate). Empty: every member alike.
    ``input_size`` may change too (a member that reads only the last ``input_size`` steps of the cell's look-back,
    e.g. ``[{}, {input_size: 336}]``), never beyond the cell's look-back."""

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "val_check_steps", "embedding_dim", "num_blocks", "ensemble"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.loss not in LOSSES or self.valid_loss not in (None, *LOSSES):
            raise ValueError(f"loss and valid_loss must be one of {LOSSES} (valid_loss also None), got "
                             f"{self.loss!r} and {self.valid_loss!r}")  # fmt: skip
        for variant in self.ensemble_variants:
            if not isinstance(variant, dict):
                raise TypeError(f"ensemble_variants holds mappings of setting -> value, got {variant!r}")
            bad = sorted(set(variant) - (set(self.__dataclass_fields__) - set(_SHARED_BY_MEMBERS)) - {"input_size"})
            if bad:
                raise ValueError(
                    f"ensemble_variants: {bad} cannot change between members (the members of an ensemble share "
                    f"{list(_SHARED_BY_MEMBERS)}; the other settings may change)"
                )
            look_back = variant.get("input_size")
            if "input_size" in variant and not (isinstance(look_back, int) and look_back >= 1):
                raise ValueError(f"ensemble_variants: input_size must be an int >= 1, got {look_back!r}")
            settings = {k: v for k, v in variant.items() if k != "input_size"}
            self.replace(**settings, ensemble_variants=[])  # a bad value is named here, as for the settings

    def members(self, input_size: int) -> list[dict[str, Any]]:
        """Keyword arguments of each of the ``ensemble`` forecasters (without the ensemble fields) in a cell of
        look-back ``input_size``; raises ValueError for a member variant that would read further back."""
        base = {k: v for k, v in self.to_dict().items() if k not in ("ensemble", "ensemble_variants")}
        variants = self.ensemble_variants or [{}]
        members = [{"input_size": input_size, **base, **variants[j % len(variants)]} for j in range(self.ensemble)]
        longer = sorted({m["input_size"] for m in members if m["input_size"] > input_size})
        if longer:
            raise ValueError(f"ensemble_variants: input_size {longer} is longer than the look-back {input_size}")
        return members


_SHARED_BY_MEMBERS = ("mixing", "ensemble", "ensemble_variants")
"""Settings every ensemble member shares: their point forecasts are averaged window by window."""


def _published_test_batch() -> dict[str, int]:
    return dict(published_long_horizon()["test_batch"])


def _dlinear_settings() -> ModelSettings:
    return ModelSettings(
        model="dlinear", mixing="independent", dropout=0.0, loss="mse", learning_rate=5e-3, weight_decay=0.0
    )


@dataclass
class LongHorizonConfig(ConfigMixin):
    """The long-horizon benchmark grid; the YAML in configs/forecasting holds the full grid."""

    datasets: list[str] = field(default_factory=lambda: ["etth1", "etth2", "ettm1", "weather", "ili"])
    """Data sets by name (forecasting.datasets.LONG_HORIZON)."""
    horizons: list[int] = field(default_factory=lambda: [96, 192, 336, 720])
    """Horizons for every set but ILI."""
    ili_horizons: list[int] = field(default_factory=lambda: [24, 36, 48, 60])
    """Horizons for ILI."""
    input_size: int = 512
    """Look-back (336 is the other common choice)."""
    ili_input_size: int = 104
    """ILI's look-back: 512 weeks do not fit its 676 training rows (PatchTST used 104 there)."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Seeds of every trained model; the table shows the mean and the spread."""
    xlstm: ModelSettings = field(default_factory=ModelSettings)
    """The xLSTM forecaster."""
    dlinear: ModelSettings = field(default_factory=_dlinear_settings)
    """Our DLinear baseline (same training loop and windows as the xLSTM)."""
    baselines: list[str] = field(default_factory=lambda: ["seasonal_naive", "dlinear"])
    """Any of seasonal_naive, dlinear, nf_patchtst, nf_dlinear (the nf_ ones need neuralforecast)."""
    neuralforecast_max_steps: int = 1000
    """Training steps of the neuralforecast models."""
    neuralforecast: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Keyword arguments of the neuralforecast models by baseline, e.g. ``{nf_patchtst: {hidden_size: 16}}``; they
    replace ours (the same windows per step, ``neuralforecast_max_steps``, the validation split). A ``per_dataset``
    entry may hold its own ``neuralforecast`` changes, e.g. a paper's recipe for that data set."""
    fit_time_steps: int = 0
    """When > 0 (and neuralforecast is installed): wall time of ``fit`` for this many steps, our xLSTM (the settings
    of that cell of the grid) against neuralforecast's PatchTST, same look-back, horizon and windows per step, on the
    first data set."""
    fit_time_horizons: list[int] | None = None
    """Horizons of the fit-time comparison; None: the first data set's first horizon."""
    fit_time_compile: list[Any] = field(default_factory=lambda: ["auto"])
    """Our xLSTM's ``compile`` switch in the fit-time comparison, one row per entry (e.g. ``[false, true, true]``
    times the eager path, the compiled path with the process's first compile (read from inductor's on-disk cache
    when an earlier process filled it), and the compiled path once more with the graphs already built)."""
    fit_time_peer: bool = True
    """Time neuralforecast's PatchTST beside ours in the fit-time comparison."""
    max_test_windows: int | None = None
    """Evaluate on at most this many test windows, evenly spaced (None: all, the papers' protocol)."""
    num_threads: int = 2
    """torch threads."""
    device: str = "auto"
    """Where every model of the run trains and forecasts: "auto" (CUDA when torch sees it, else the CPU), "cpu",
    "cuda" or "cuda:N"; ours through XLSTMForecaster's ``device``, neuralforecast's through Lightning's
    accelerator. The markdown names the device."""
    out: str = "benchmarks/forecasting/long_horizon.md"
    """Markdown file written at the end."""
    experiment: str = "xlstm-seq-forecasting-benchmark"
    """MLflow experiment."""
    published: dict[str, Any] = field(default_factory=_published_tables)
    """Published [MSE, MAE] per model, data set and horizon (default: published_long_horizon.yaml, which cites the
    papers and tables)."""
    per_dataset: dict[str, Any] = field(default_factory=dict)
    """Per-data-set changes on top of the grid-wide settings, e.g. ``{ili: {input_size: 104, xlstm: {dropout: 0.5},
    by_horizon: {24: {xlstm: {learning_rate: 0.0005}}}}}``: ``input_size`` replaces the look-back, ``xlstm`` and
    ``dlinear`` change fields of those settings, ``by_horizon`` changes them for one horizon only."""
    published_test_batch: dict[str, int] = field(default_factory=_published_test_batch)
    """Test batch size of the published PatchTST runs per data set (default: published_long_horizon.yaml, from their
    scripts). Their test loader drops the last incomplete batch (``drop_last=True``), so the published numbers leave
    out the last ``n_windows % batch`` windows; the table adds our MSE on exactly the windows they kept, beside the
    MSE on every window (which met? uses)."""
    eval_split: str = "test"
    """Where the windows are scored: "test" (the reported numbers); "val" (the validation split, for choosing
    settings without looking at the test split; the models still train on the training rows only, and early
    stopping picks their checkpoint on the same validation windows that are scored); or "val_backtest" (the test
    protocol moved back by one validation length: train on the training rows before their last validation-length
    stretch, early-stop on that stretch, score the validation windows, which no training or early stopping saw)."""

    def __post_init__(self) -> None:
        if isinstance(self.xlstm, dict):
            self.xlstm = ModelSettings.from_dict(self.xlstm)
        if isinstance(self.dlinear, dict):
            self.dlinear = ModelSettings.from_dict(self.dlinear)
        unknown = [d for d in self.datasets if d not in LONG_HORIZON]
        if unknown:
            raise ValueError(f"unknown data set(s) {unknown}; known: {sorted(LONG_HORIZON)}")
        bad = [b for b in self.baselines if b not in BASELINES]
        if bad:
            raise ValueError(f"unknown baseline(s) {bad}; known: {list(BASELINES)}")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")
        if self.input_size < 1 or self.ili_input_size < 1 or self.num_threads < 1:
            raise ValueError("input_size, ili_input_size and num_threads must be >= 1")
        if self.fit_time_horizons is not None and (
            not self.fit_time_horizons or any(not isinstance(h, int) or h < 1 for h in self.fit_time_horizons)
        ):
            raise ValueError(f"fit_time_horizons must be None or a non-empty list of horizons >= 1, got "
                             f"{self.fit_time_horizons}")  # fmt: skip
        if not self.fit_time_compile or any(v not in (True, False, "auto") for v in self.fit_time_compile):
            raise ValueError(f"fit_time_compile must be a non-empty list of true, false or auto, got "
                             f"{self.fit_time_compile}")  # fmt: skip
        resolve_device(self.device)  # a bad name, or a device this machine lacks, is named before any work
        if self.eval_split not in SPLITS:
            raise ValueError(f"eval_split must be one of {SPLITS}, got {self.eval_split!r}")
        bad_batch = {k: v for k, v in self.published_test_batch.items()
                     if k not in LONG_HORIZON or not isinstance(v, int) or v < 1}  # fmt: skip
        if bad_batch:
            raise ValueError(f"published_test_batch: unknown data set or batch < 1 in {bad_batch}")
        self._check_neuralforecast(self.neuralforecast, "neuralforecast")
        self._check_per_dataset()

    @staticmethod
    def _check_neuralforecast(settings: Any, where: str) -> None:
        """A mapping of nf_ baseline -> mapping of keyword arguments (the model itself checks the names)."""
        if not isinstance(settings, dict):
            raise TypeError(f"{where} must map a neuralforecast baseline to its keyword arguments, got {settings!r}")
        for label, kwargs in settings.items():
            if label not in BASELINES or not label.startswith("nf_"):
                raise ValueError(f"{where}: unknown neuralforecast baseline {label!r}; known: nf_patchtst, nf_dlinear")
            if not isinstance(kwargs, dict):
                raise TypeError(f"{where}.{label} must be a mapping of keyword arguments, got {kwargs!r}")

    def neuralforecast_kwargs(self, name: str, label: str) -> dict[str, Any]:
        """Keyword arguments of baseline ``label`` (e.g. "nf_patchtst") on data set ``name``, overrides applied."""
        changes = (self.per_dataset.get(name) or {}).get("neuralforecast") or {}
        return {**self.neuralforecast.get(label, {}), **changes.get(label, {})}

    def _check_per_dataset(self) -> None:
        """Every override names a known data set and key, and builds valid settings (errors name the entry)."""
        if not isinstance(self.per_dataset, dict):
            raise TypeError(
                f"per_dataset must be a mapping of data set -> changes, got {type(self.per_dataset).__name__}"
            )
        for name, changes in self.per_dataset.items():
            if name not in LONG_HORIZON:
                raise ValueError(f"per_dataset: unknown data set {name!r}; known: {sorted(LONG_HORIZON)}")
            if not isinstance(changes, dict):
                raise TypeError(f"per_dataset.{name} must be a mapping, got {type(changes).__name__}")
            unknown = sorted(set(changes) - set(OVERRIDE_KEYS))
            if unknown:
                raise ValueError(f"per_dataset.{name}: unknown key(s) {unknown}; valid keys: {list(OVERRIDE_KEYS)}")
            self._check_neuralforecast(changes.get("neuralforecast") or {}, f"per_dataset.{name}.neuralforecast")
            if "input_size" in changes and (not isinstance(changes["input_size"], int) or changes["input_size"] < 1):
                raise ValueError(f"per_dataset.{name}.input_size must be an int >= 1, got {changes['input_size']!r}")
            by_horizon = changes.get("by_horizon") or {}
            if not isinstance(by_horizon, dict):
                raise TypeError(f"per_dataset.{name}.by_horizon must map horizon -> changes, got {by_horizon!r}")
            grid = self.ili_horizons if name == "ili" else self.horizons
            for h, sub in by_horizon.items():
                if not isinstance(sub, dict) or set(sub) - {"xlstm", "dlinear"}:
                    raise ValueError(
                        f"per_dataset.{name}.by_horizon.{h} must hold only 'xlstm'/'dlinear' changes, got {sub!r}"
                    )
                if not isinstance(h, (int, str)) or not str(h).isdigit() or int(h) < 1:
                    raise ValueError(f"per_dataset.{name}.by_horizon: horizon {h!r} is not a positive integer")
            # A horizon of by_horizon outside the grid is allowed: a run of some horizons keeps the others' changes.
            for h in sorted(set(grid) | {int(k) for k in by_horizon}):
                self.settings_for(name, h)  # builds every combination once so that bad fields fail here

    def fit_time_cells(self) -> list[tuple[str, int]]:
        """(data set, horizon) of each fit-time comparison."""
        name = self.datasets[0]
        if self.fit_time_horizons:
            return [(name, h) for h in self.fit_time_horizons]
        return [(name, self.ili_horizons[0] if name == "ili" else self.horizons[0])]

    def settings_for(self, name: str, h: int) -> tuple[int, ModelSettings, ModelSettings]:
        """(look-back, xLSTM settings, DLinear settings) of data set ``name`` at horizon ``h``, overrides applied."""
        L = self.ili_input_size if name == "ili" else self.input_size
        xlstm, dlinear = self.xlstm, self.dlinear
        changes = self.per_dataset.get(name) or {}
        by_horizon = {int(k): v for k, v in (changes.get("by_horizon") or {}).items()}
        for layer in (changes, by_horizon.get(int(h)) or {}):
            for key in ("xlstm", "dlinear"):
                if layer.get(key):
                    base = xlstm if key == "xlstm" else dlinear
                    try:
                        merged = ModelSettings.from_dict({**base.to_dict(), **layer[key]})
                    except (TypeError, ValueError) as err:
                        raise ValueError(f"per_dataset.{name} ({key}, h={h}): {err}") from err
                    xlstm, dlinear = (merged, dlinear) if key == "xlstm" else (xlstm, merged)
        return changes.get("input_size", L), xlstm, dlinear
