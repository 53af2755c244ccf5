"""`xlstm-seq demo` and the quickstarts on a fresh machine: no network and no data root.

The package ships AirPassengers whole and the first 4,320 rows of ETTh1 (xlstm_seq/data/); the loaders fall back
to them when the data root has no file, and the full data sets still come from the data root or a download.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from xlstm_seq.data import BUNDLED_DIR, KNOWN_FILES, bundled_path, fetch, is_bundled

REPO = Path(__file__).resolve().parents[2]
MIRROR = Path(os.environ.get("XLSTM_SEQ_DATA", "/nonexistent"))
AIR_PASSENGERS_SHA256 = "5f8b316b84545d9cfb05612298df8415ce4c44421c7012d109465564b07ebc06"
ETTH1_ROWS = 4320

# Run in the child process before anything else: every socket connection fails, as on a machine with no network.
NO_NETWORK = """
import socket, sys
def refuse(*args, **kwargs):
    raise OSError("network disabled by the offline test")
socket.socket.connect = refuse
socket.create_connection = refuse
from xlstm_seq.cli.main import console
sys.exit(console(sys.argv[1:]))
"""


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty data root and a urlopen that always fails; returns the data root."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network disabled by the offline test")

    root = tmp_path / "empty_data_root"
    root.mkdir()
    monkeypatch.setenv("XLSTM_SEQ_DATA", str(root))
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return root


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_package_data_glob_ships_every_bundled_file():
    tomllib = pytest.importorskip("tomllib")
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["xlstm_seq"]
    shipped = sorted(p.relative_to(REPO / "xlstm_seq").as_posix() for p in BUNDLED_DIR.iterdir() if p.is_file())
    assert {"data/AirPassengers.csv", f"data/ETTh1_first_{ETTH1_ROWS}.csv", "data/README.md"} <= set(shipped)
    for name in shipped:
        assert any(fnmatch.fnmatch(name, g) for g in globs), f"{name} matches no package-data glob of {globs}"
    for entry in KNOWN_FILES.values():
        if entry.bundled is not None:
            assert bundled_path(entry) is not None, entry.bundled


def test_bundled_air_passengers_is_the_published_file():
    path = bundled_path(KNOWN_FILES["air_passengers"])
    assert _sha256(path) == AIR_PASSENGERS_SHA256
    if (MIRROR / "air_passengers/AirPassengers.csv").is_file():
        assert path.read_bytes() == (MIRROR / "air_passengers/AirPassengers.csv").read_bytes()


def test_bundled_etth1_is_a_verbatim_slice():
    lines = bundled_path(KNOWN_FILES["etth1"]).read_bytes().splitlines(keepends=True)
    assert lines[0] == b"date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT\n" and len(lines) == ETTH1_ROWS + 1
    assert lines[1].startswith(b"2016-07-01 00:00:00,") and lines[-1].startswith(b"2016-12-27 23:00:00,")
    full = MIRROR / "ett/ETTh1.csv"
    if full.is_file():
        assert full.read_bytes().startswith(b"".join(lines))


def test_fetch_reads_the_bundled_copy_when_the_root_has_none_and_says_so(offline, caplog):
    with caplog.at_level(logging.INFO, logger="xlstm_seq.data"):
        path = fetch("etth1")
    assert is_bundled(path) and path.name == f"ETTh1_first_{ETTH1_ROWS}.csv"
    assert "reading the copy bundled with xlstm-seq" in caplog.text
    # Where the whole file is needed, the excerpt is refused and the error names the file and its source.
    with pytest.raises(FileNotFoundError, match=r"ett/ETTh1.csv.*offline or the download failed"):
        fetch("etth1", bundled=False)
    # A copy in the data root wins over the bundled one.
    (offline / "ett").mkdir()
    (offline / "ett/ETTh1.csv").write_text("date,OT\n2016-07-01 00:00:00,1.0\n")
    assert fetch("etth1") == offline / "ett/ETTh1.csv" and not is_bundled(fetch("etth1"))


def test_load_air_passengers_offline_gives_the_same_frame(offline, monkeypatch):
    pd = pytest.importorskip("pandas")
    from xlstm_seq.forecasting import load_air_passengers

    df = load_air_passengers()
    assert len(df) == 144 and df["y"].sum() == 40363 and df["ds"].iloc[0].strftime("%Y-%m") == "1949-01"
    assert list(df.columns) == ["unique_id", "ds", "y"] and df["y"].dtype == "float64"
    if (MIRROR / "air_passengers/AirPassengers.csv").is_file():
        monkeypatch.setenv("XLSTM_SEQ_DATA", str(MIRROR))
        pd.testing.assert_frame_equal(df, load_air_passengers(download=False))


def test_the_long_horizon_loader_never_reads_the_excerpt(offline):
    pytest.importorskip("pandas")
    from xlstm_seq.forecasting import load_long_horizon

    with pytest.raises(FileNotFoundError, match=r"ett/ETTh1.csv"):
        load_long_horizon("etth1")


def test_the_demo_data_path_runs_offline(offline):
    from xlstm_seq.demo import load_series

    series, path = load_series("etth1", "OT")
    assert is_bundled(path) and series.shape == (ETTH1_ROWS,) and series.dtype.name == "float32"
    assert series[0] == pytest.approx(30.531, abs=1e-3)


def test_xlstm_seq_demo_runs_with_no_network_and_no_data_root(tmp_path):
    root = tmp_path / "empty_data_root"
    root.mkdir()
    env = dict(os.environ, XLSTM_SEQ_DATA=str(root), MPLBACKEND="Agg",
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")  # fmt: skip
    # All three parts (core, forecast, rl), tracked as `make demo` does; the core at a few steps to stay quick.
    args = ["demo", "--steps", "5", "test_length=100", "chunk_length=40", "batch_size=8"]
    result = subprocess.run(
        [sys.executable, "-c", NO_NETWORK, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert f"ETTh1_first_{ETTH1_ROWS}.csv (the copy bundled with xlstm-seq)" in out
    assert "== forecast ==" in out and "AirPassengers, last 12 months held out" in out
    assert "== rl ==" in out and "XLSTMPPO on CartPoleNoVel-v1" in out
    assert not list(root.iterdir()), "the demo wrote into the data root"
