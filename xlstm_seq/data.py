"""The data root: where every loader of xlstm-seq finds its files.

``$XLSTM_SEQ_DATA`` (default ``~/.cache/xlstm_seq``) holds one folder per data set, laid out as the public
mirror in ``../shared/data``. A file missing from the root is downloaded from its public source when the
machine is online; offline, the error names the file expected and where to get it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DATA_ENV = "XLSTM_SEQ_DATA"


@dataclass(frozen=True)
class DataFile:
    """A file under the data root and the public address it can be downloaded from."""

    relpath: str
    url: str | None
    description: str


# The files the core needs; applications register their own in their loaders.
KNOWN_FILES = {
    "etth1": DataFile(
        "ett/ETTh1.csv",
        "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/ETTh1.csv",
        "ETT hourly transformer data, station 1 (Zhou et al., 2021), CC BY-ND 4.0",
    ),
    "air_passengers": DataFile(
        "air_passengers/AirPassengers.csv",
        "https://raw.githubusercontent.com/unit8co/darts/master/datasets/AirPassengers.csv",
        "monthly airline passengers 1949-1960 (Box & Jenkins)",
    ),
}


def data_root() -> Path:
    """The data root: ``$XLSTM_SEQ_DATA`` or ``~/.cache/xlstm_seq``."""
    return Path(os.environ.get(DATA_ENV) or Path.home() / ".cache" / "xlstm_seq").expanduser()


def fetch(name_or_file: str | DataFile, *, download: bool = True, timeout: float = 30.0) -> Path:
    """The local path of a data file, downloading it into the data root when missing and possible.

    Raises:
        FileNotFoundError: the file is not in the data root and could not be downloaded; the message names the
            expected path and the public source.
    """
    entry = KNOWN_FILES[name_or_file] if isinstance(name_or_file, str) else name_or_file
    path = data_root() / entry.relpath
    if path.is_file():
        return path
    expected = f"{entry.description}: expected {path} (data root from ${DATA_ENV}, default ~/.cache/xlstm_seq)"
    if not entry.url:
        raise FileNotFoundError(f"{expected}; this data set has no public download address: place a copy there")
    if download:
        try:
            _download(entry.url, path, timeout)
            return path
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            log.warning("could not download %s: %s", entry.url, err)
    why = "the machine is offline or the download failed" if download else "downloads are off (download=False)"
    raise FileNotFoundError(f"{expected}; {why}: download it from {entry.url} and place it there")


def _download(url: str, path: Path, timeout: float) -> None:
    log.info("downloading %s -> %s", url, path)
    # Open the address before creating any folder, so a failed download leaves the data root as it was.
    with urllib.request.urlopen(url, timeout=timeout) as response:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Download to a temporary file first so an interrupted download never leaves a truncated data file.
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            try:
                shutil.copyfileobj(response, tmp)
            except BaseException:
                Path(tmp.name).unlink(missing_ok=True)
                raise
    Path(tmp.name).replace(path)
