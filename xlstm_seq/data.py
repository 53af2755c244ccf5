"""The data root: where every loader of xlstm-seq finds its files.

``$XLSTM_SEQ_DATA`` (default ``~/.cache/xlstm_seq``) holds one folder per data set, laid out as the public
mirror in ``../shared/data``. A file missing from the root is downloaded from its public source when the
machine is online; offline, the error names the file expected and where to get it.

Two small files ship inside the package (``xlstm_seq/data/``, sources and licences in its README.md), so that
the demo and the quickstarts run with no network and no data root: AirPassengers whole, and the first 4,320
rows of ETTh1 (a verbatim excerpt; the long-horizon loader never reads it). A ``DataFile`` that names such a
copy falls back to it when the data root has no file of its own, and the log says which copy was read.
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
BUNDLED_DIR = Path(__file__).with_name("data")
"""The copies shipped inside the package (see its README.md for their sources and licences)."""


@dataclass(frozen=True)
class DataFile:
    """A file under the data root and the public address it can be downloaded from."""

    relpath: str
    """Path under the data root."""
    url: str | None
    """Public download address; None when there is none (the file must be placed by hand)."""
    description: str
    """What the file is, its source and licence (quoted in errors)."""
    bundled: str | None = None
    """Name of a copy in ``xlstm_seq/data/`` read when the data root has no file; None when none ships."""


# The files the core needs; applications register their own in their loaders.
KNOWN_FILES = {
    "etth1": DataFile(
        "ett/ETTh1.csv",
        "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/ETTh1.csv",
        "ETT hourly transformer data, station 1 (Zhou et al., 2021), CC BY-ND 4.0",
        # Its first 4,320 rows (six months), enough for the demo; the full file comes from the root or a download.
        bundled="ETTh1_first_4320.csv",
    ),
    "air_passengers": DataFile(
        "air_passengers/AirPassengers.csv",
        "https://raw.githubusercontent.com/unit8co/darts/master/datasets/AirPassengers.csv",
        "monthly airline passengers 1949-1960 (Box & Jenkins)",
        bundled="AirPassengers.csv",  # the whole file, byte-identical to the download
    ),
}


def data_root() -> Path:
    """The data root: ``$XLSTM_SEQ_DATA`` or ``~/.cache/xlstm_seq``."""
    return Path(os.environ.get(DATA_ENV) or Path.home() / ".cache" / "xlstm_seq").expanduser()


def bundled_path(entry: DataFile) -> Path | None:
    """The package's own copy of ``entry`` (in ``xlstm_seq/data/``), or None when none ships."""
    if entry.bundled is None:
        return None
    path = BUNDLED_DIR / entry.bundled
    return path if path.is_file() else None


def is_bundled(path: str | Path) -> bool:
    """Whether ``path`` is one of the copies shipped inside the package rather than a file of the data root."""
    return Path(path).resolve().parent == BUNDLED_DIR.resolve()


def fetch(name_or_file: str | DataFile, *, download: bool = True, bundled: bool = True, timeout: float = 30.0) -> Path:
    """The local path of a data file: the data root's copy, else the package's own copy, else a download.

    Args:
        name_or_file: a name of ``KNOWN_FILES`` or a ``DataFile``.
        download: download a missing file into the data root when the machine is online.
        bundled: read the copy shipped in ``xlstm_seq/data/`` (``DataFile.bundled``) when the data root has
            none, before any download; ETTh1's is an excerpt, so pass False where the whole file is needed.
        timeout: seconds to wait for the download server.

    Raises:
        FileNotFoundError: the file is not in the data root, no copy ships with the package, and it could not be
            downloaded; the message names the expected path and the public source.
    """
    entry = KNOWN_FILES[name_or_file] if isinstance(name_or_file, str) else name_or_file
    path = data_root() / entry.relpath
    if path.is_file():
        log.info("reading %s from the data root: %s", entry.relpath, path)
        return path
    shipped = bundled_path(entry) if bundled else None
    if shipped is not None:
        root = data_root()
        log.info(
            "%s is not in the data root %s; reading the copy bundled with xlstm-seq: %s", entry.relpath, root, shipped
        )
        return shipped
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
