"""Forecasting data sets from the data root (``$XLSTM_SEQ_DATA``), as wide tables and Nixtla long frames.

Long-horizon sets (``load_long_horizon``) follow the convention of Informer, Autoformer, DLinear and
PatchTST: ETT hourly and 15-minute sets split 12/4/4 months, the others 70/10/20 % in time order; every
column is standardised with the mean and std of the training rows, and metrics are computed on that
scale. A validation or test window may take its look-back from the part before it (the papers' overlap).

Short-horizon sets: ``load_air_passengers`` (monthly, 144 values) and ``load_m4`` (Hourly, Weekly).
A file missing from the data root is downloaded from its public source when there is one and the
machine is online; otherwise the error names the expected file. AirPassengers also ships inside the
package (``xlstm_seq/data/``), so it loads offline with no data root at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from xlstm_seq.data import DataFile, data_root, fetch
from xlstm_seq.forecasting.validation import DS, ID, Y

_ETT_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/{}.csv"
# The multivariate benchmark files of Lai et al. (LSTNet): no header and no dates. Autoformer's release of the same
# rows adds a date column (the start and step below) and names the last column OT; read here the same way.
_LAI_URL = "https://raw.githubusercontent.com/laiguokun/multivariate-time-series-data/master/{0}/{0}.txt.gz"


@dataclass(frozen=True)
class LongHorizonSpec:
    """Where a long-horizon set lives and how it is split."""

    candidates: tuple[str, ...]
    """Paths under the data root, tried in order (a compressed copy first)."""
    download: DataFile
    """The file fetched when no candidate is present."""
    split: str
    """"ett_hour", "ett_minute" (12/4/4 months) or "ratio" (70/10/20 %)."""
    season: int
    """Seasonal period for the seasonal-naive baseline."""
    horizons: tuple[int, ...] = (96, 192, 336, 720)
    undated: tuple[str, str] | None = None
    """(first timestamp, step) given to a download without dates, as Autoformer's release dates its copy."""


def _ett(name: str, split: str, season: int) -> LongHorizonSpec:
    folder = f"ett/{name}.csv"
    return LongHorizonSpec(
        (folder + ".xz", folder),
        DataFile(folder, _ETT_URL.format(name), f"{name} (ETDataset, Zhou et al. 2021, CC BY-ND 4.0)"),
        split,
        season,
    )


def _lai(name: str, folder: str, season: int, start: str, step: str) -> LongHorizonSpec:
    return LongHorizonSpec(
        (f"{folder}/{folder}.csv.xz", f"{folder}/{folder}.csv", f"{folder}/{folder}.txt.gz"),
        DataFile(f"{folder}/{folder}.txt.gz", _LAI_URL.format(folder), f"{name} (Lai et al. 2018 benchmark copy)"),
        "ratio",
        season,
        undated=(start, step),
    )


LONG_HORIZON: dict[str, LongHorizonSpec] = {
    "etth1": _ett("ETTh1", "ett_hour", 24),
    "etth2": _ett("ETTh2", "ett_hour", 24),
    "ettm1": _ett("ETTm1", "ett_minute", 96),
    "ettm2": _ett("ETTm2", "ett_minute", 96),
    "weather": LongHorizonSpec(
        ("weather/weather.csv.xz", "weather/weather.csv"),
        DataFile("weather/weather.csv", None, "Weather (Max Planck Jena, 2020, as in Autoformer's release)"),
        "ratio",
        144,
    ),
    "ili": LongHorizonSpec(
        ("illness/national_illness.csv", "illness/national_illness.csv.xz"),
        DataFile("illness/national_illness.csv", None, "ILI (US CDC ILINet, as in Autoformer's release)"),
        "ratio",
        52,
        horizons=(24, 36, 48, 60),
    ),
    "exchange": _lai("Exchange", "exchange_rate", 1, "1990-01-01", "D"),
    "electricity": _lai("Electricity", "electricity", 24, "2016-07-01 02:00", "h"),
    "traffic": _lai("Traffic", "traffic", 24, "2016-07-01 02:00", "h"),
}


@dataclass
class LongHorizonData:
    """A standardised long-horizon set: ``values`` (T, N) in time order and the split borders."""

    name: str
    dates: np.ndarray  # (T,) timestamps (or integers when the file has no dates)
    columns: list[str]
    values: np.ndarray  # (T, N) float32, standardised with the training rows' statistics
    mean: np.ndarray  # (N,)
    std: np.ndarray  # (N,)
    borders: dict[str, tuple[int, int]]  # target rows of train/val/test: [start, end)
    season: int
    horizons: tuple[int, ...]

    def to_long(self, end: int | None = None, start: int = 0, integer_ds: bool = False) -> pd.DataFrame:
        """Nixtla long frame (unique_id = column name, ds, y) of rows [start, end).

        ``integer_ds`` uses the row number as ds: the Weather file has a few missing 10-minute rows, and the
        papers' windows run over rows, not over calendar time.
        """
        end = len(self.values) if end is None else end
        dates = np.arange(len(self.values)) if integer_ds else self.dates
        n_rows, n_cols = end - start, len(self.columns)
        return pd.DataFrame(
            {
                ID: np.repeat(np.array(self.columns, dtype=object), n_rows),
                DS: np.tile(dates[start:end], n_cols),
                Y: self.values[start:end].T.reshape(-1),
            }
        )


def _locate(spec: LongHorizonSpec, download: bool) -> str:
    root = data_root()
    for rel in spec.candidates:
        if (root / rel).is_file():
            return str(root / rel)
    try:
        return str(fetch(spec.download, download=download))
    except FileNotFoundError as err:
        others = [str(root / rel) for rel in spec.candidates if rel != spec.download.relpath]
        if not others:
            raise
        raise FileNotFoundError(f"{err} (or a CSV copy with a date column first: {' or '.join(others)})") from None


def split_borders(split: str, n: int) -> dict[str, tuple[int, int]]:
    """Target rows of each part: ETT 12/4/4 months (30-day months), else 70/10/20 % (test and train rounded
    down, validation takes the rest)."""
    if split in ("ett_hour", "ett_minute"):
        month = 30 * 24 * (4 if split == "ett_minute" else 1)
        train, val, test = 12 * month, 16 * month, 20 * month
        if n < test:
            raise ValueError(f"an ETT split needs {test} rows, the file has {n}")
        return {"train": (0, train), "val": (train, val), "test": (val, test)}
    if split == "ratio":
        n_train, n_test = int(n * 0.7), int(n * 0.2)
        return {"train": (0, n_train), "val": (n_train, n - n_test), "test": (n - n_test, n)}
    raise ValueError(f"split must be 'ett_hour', 'ett_minute' or 'ratio', got {split!r}")


def load_long_horizon(name: str, *, download: bool = True) -> LongHorizonData:
    """Loads a long-horizon set by name (see ``LONG_HORIZON``), split and standardised by training statistics.

    Raises:
        ValueError: unknown name.
        FileNotFoundError: the file is missing and cannot be downloaded (the message names the expected path).
    """
    key = name.lower()
    if key not in LONG_HORIZON:
        raise ValueError(f"unknown long-horizon data set {name!r}; known: {sorted(LONG_HORIZON)}")
    spec = LONG_HORIZON[key]
    path = _locate(spec, download)
    if path.endswith(".txt.gz"):
        raw = pd.read_csv(path, header=None)
        start, step = spec.undated
        dates = pd.date_range(start, periods=len(raw), freq=step).to_numpy()
        columns = [str(c) for c in range(raw.shape[1] - 1)] + ["OT"]
        values = raw.to_numpy(np.float64)
    else:
        raw = pd.read_csv(path)
        date_col = raw.columns[0]
        dates = pd.to_datetime(raw[date_col]).to_numpy()
        columns = [str(c) for c in raw.columns[1:]]
        values = raw.iloc[:, 1:].to_numpy(np.float64)
    borders = split_borders(spec.split, len(values))
    train = values[borders["train"][0] : borders["train"][1]]
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    end = borders["test"][1]
    return LongHorizonData(
        name=key,
        dates=dates[:end],
        columns=columns,
        values=((values[:end] - mean) / std).astype(np.float32),
        mean=mean,
        std=std,
        borders=borders,
        season=spec.season,
        horizons=spec.horizons,
    )


def load_air_passengers(*, download: bool = True) -> pd.DataFrame:
    """AirPassengers as a long frame: unique_id "AirPassengers", monthly ds (month starts), y passengers.

    Reads the data root's ``air_passengers/AirPassengers.csv`` when there is one, else the byte-identical copy
    bundled with the package (no download needed); the log names the copy read.

    Returns:
        144 rows, 1949-01 to 1960-12 (thousands of passengers, 104 to 622).
    """
    raw = pd.read_csv(fetch("air_passengers", download=download))
    return pd.DataFrame({ID: "AirPassengers", DS: pd.to_datetime(raw.iloc[:, 0]), Y: raw.iloc[:, 1].astype(np.float64)})


M4_GROUPS = {"hourly": ("Hourly", 48, 24), "weekly": ("Weekly", 13, 1)}
"""M4 groups here: (file prefix, horizon, seasonal period used by MASE in M4)."""


def load_m4(group: str, *, download: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, int, int]:
    """M4 Hourly or Weekly as long frames with an integer ds per series.

    Returns:
        (train_df, test_df, horizon, season); test ds continue the train ds of each series.
    """
    key = group.lower()
    if key not in M4_GROUPS:
        raise ValueError(f"M4 group must be one of {sorted(M4_GROUPS)}, got {group!r}")
    prefix, horizon, season = M4_GROUPS[key]
    frames = []
    for part in ("train", "test"):
        rel = f"m4/{prefix}-{part}.csv"
        path = data_root() / (rel + ".xz") if (data_root() / (rel + ".xz")).is_file() else None
        if path is None:
            url = f"https://raw.githubusercontent.com/Mcompetitions/M4-methods/master/Dataset/{part.title()}/{prefix}-{part}.csv"
            path = fetch(DataFile(rel, url, f"M4 {prefix} {part} (Makridakis et al. 2020)"), download=download)
        frames.append(pd.read_csv(path))
    out = []
    for raw, offset in ((frames[0], None), (frames[1], "train")):
        ids = raw.iloc[:, 0].to_numpy()
        values = raw.iloc[:, 1:].to_numpy(np.float64)
        mask = ~np.isnan(values)
        counts = mask.sum(axis=1)
        ds = np.concatenate([np.arange(c) for c in counts])
        if offset is not None:
            train_len = out[0].groupby(ID, sort=False).size().reindex(ids).to_numpy()
            ds = ds + np.repeat(train_len, counts)
        out.append(pd.DataFrame({ID: np.repeat(ids, counts), DS: ds.astype(np.int64), Y: values[mask]}))
    return out[0], out[1], horizon, season
