"""Tracking never blocks training: a tracking server that accepts connections and never answers (a loopback socket)
costs a short run no more than seconds, and everything the run logged is kept in the local fallback folder."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient  # noqa: F401 (imported here: its import time is no server's fault)

from xlstm_seq import xLSTMConfig
from xlstm_seq.demo import DemoConfig, run_demo
from xlstm_seq.tracking import MlflowTracker, TrackingWarning, create_tracker


class _LoopbackServer:
    """Listens on 127.0.0.1; ``answer_health`` answers ``GET /health`` with 200, every other request is read and
    never answered (the connection stays open until the server is closed)."""

    def __init__(self, answer_health: bool = False) -> None:
        self.answer_health = answer_health
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.uri = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self._held.append(conn)
            if self.answer_health:
                threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.settimeout(5)
            request = conn.recv(65536)
            if request.startswith(b"GET /health "):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK")
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in [self._sock, *self._held]:
            with contextlib.suppress(OSError):
                conn.close()


@pytest.fixture
def silent_server() -> Iterator[_LoopbackServer]:
    server = _LoopbackServer()
    yield server
    server.close()


@pytest.fixture
def hanging_api() -> Iterator[_LoopbackServer]:
    server = _LoopbackServer(answer_health=True)
    yield server
    server.close()


def _records(fallback_file: Path) -> list[dict]:
    return [json.loads(line) for line in fallback_file.read_text().splitlines()]


def _time_spent_in_tracker_calls(monkeypatch) -> list[float]:
    """Wraps the MlflowTracker methods training calls; returns the list their durations are appended to."""
    spent: list[float] = []
    for name in ("__init__", "log_params", "set_tags", "log_metrics", "log_artifact", "flush", "close"):
        method = getattr(MlflowTracker, name)

        def timed(*args, _method=method, **kwargs):
            start = time.monotonic()
            try:
                return _method(*args, **kwargs)
            finally:
                spent.append(time.monotonic() - start)

        monkeypatch.setattr(MlflowTracker, name, timed)
    return spent


def test_a_short_run_at_a_silent_server_takes_its_untracked_time_and_keeps_its_metrics(
    silent_server, tmp_path, monkeypatch
):
    """A few seconds of `xlstm-seq demo` training, tracked at a server that never answers: the training thread
    spends next to no time in tracker calls (before, the tracker's first call waited 3 x 30 s), the run takes about
    its untracked time, and every metric is in the fallback file."""
    monkeypatch.chdir(tmp_path)
    config = DemoConfig(
        model=xLSTMConfig(embedding_dim=32, num_blocks=1, num_heads=4, backend="torch"),
        steps=50,
        test_length=48,
        chunk_length=20,
        batch_size=8,
        context_length=48,
    )
    start = time.monotonic()
    run_demo(config, track=False, out=lambda line: None)
    untracked = time.monotonic() - start

    monkeypatch.setenv("MLFLOW_TRACKING_URI", silent_server.uri)
    spent = _time_spent_in_tracker_calls(monkeypatch)
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_demo(config, track=True, out=lambda line: None)
    tracked = time.monotonic() - start

    assert len(spent) > 50 and sum(spent) < 2.0, (sum(spent), max(spent))
    # Wall clock on a shared 2-core machine varies with the other jobs' load; the run no longer waits minutes.
    assert tracked < 2 * untracked + 5.0, (tracked, untracked)
    messages = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
    assert any("(start)" in m and "did not answer GET" in m for m in messages), messages
    (run_folder,) = (tmp_path / "mlruns" / "fallback").iterdir()
    records = _records(run_folder / "metrics.jsonl")
    assert sorted(r["step"] for r in records if r["key"] == "train/loss") == list(range(50))
    assert any(r["kind"] == "param" and r["key"] == "model.num_blocks" and r["value"] == "1" for r in records)
    assert (run_folder / "artifacts" / "config.yaml").is_file()
    assert (run_folder / "artifacts" / "model_state_dict.pt").is_file()
    assert json.loads((run_folder / "run.json").read_text())["status"] == "FINISHED"


def test_logging_at_a_silent_server_never_waits(silent_server, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrackingWarning)
        start = time.monotonic()
        tracker = create_tracker("x", tracking_uri=silent_server.uri, fallback_dir=tmp_path, flush_every=10)
        for step in range(200):
            tracker.log_metrics({"loss": float(step)}, step=step)  # 20 flushes handed to the sender
        tracker.log_params({"a": 1})
        artifact = tmp_path / "weights.bin"
        artifact.write_bytes(b"w" * 1000)
        tracker.log_artifact(artifact, "model")
        artifact.unlink()  # the caller may delete its file at once: the tracker staged it
        logging_seconds = time.monotonic() - start
        tracker.flush()  # waits (at most flush_timeout) for the sender, which keeps everything locally
        tracker.close()
    total = time.monotonic() - start
    assert logging_seconds < 1.0, logging_seconds
    assert total < tracker.probe_timeout + 5.0, total
    records = _records(tracker.fallback_file)
    assert sorted(r["step"] for r in records if r["kind"] == "metric") == list(range(200))
    assert (tracker.fallback_path / "artifacts" / "model" / "weights.bin").read_bytes() == b"w" * 1000
    assert tracker.run_id is None


def test_close_gives_up_on_a_server_that_hangs_and_keeps_everything_once(hanging_api, tmp_path):
    """A server that answers the reachability check but never answers an API call: close waits close_timeout,
    keeps the unsent data locally, and the sender's late failure does not write it a second time."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker = MlflowTracker(
            "x", tracking_uri=hanging_api.uri, fallback_dir=tmp_path, http_timeout=2, http_retries=0,
            close_timeout=0.5, default_tags=False, tags={"purpose": "test"},
        )  # fmt: skip
        tracker.log_params({"a": 1})
        for step in range(5):
            tracker.log_metrics({"loss": float(step)}, step=step)
        start = time.monotonic()
        tracker.close()
        closing = time.monotonic() - start
        assert closing < 1.5, closing
        kept = _records(tracker.fallback_file)
        time.sleep(3.0)  # the sender's call times out meanwhile; what it held is already kept
    assert _records(tracker.fallback_file) == kept
    assert {"kind": "tag", "key": "purpose", "value": "test", "run_id": None} in kept
    assert {"kind": "param", "key": "a", "value": "1", "run_id": None} in kept
    assert sorted(r["step"] for r in kept if r["kind"] == "metric") == list(range(5))
    assert json.loads((tracker.fallback_path / "run.json").read_text())["status"] == "FINISHED"
    messages = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
    assert any("did not take it within close_timeout=0.5 s" in m for m in messages), messages


def test_a_full_queue_keeps_data_locally_at_once(hanging_api, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker = MlflowTracker(
            "x", tracking_uri=hanging_api.uri, fallback_dir=tmp_path, http_timeout=2, http_retries=0,
            close_timeout=0.5, default_tags=False, max_queued=2, flush_every=1,
        )  # fmt: skip
        start = time.monotonic()
        for step in range(20):
            tracker.log_metrics({"loss": float(step)}, step=step)
        assert time.monotonic() - start < 1.0
        tracker.close()
        time.sleep(2.5)
    records = _records(tracker.fallback_file)
    assert sorted(r["step"] for r in records if r["kind"] == "metric") == list(range(20))
    assert any("(queue)" in str(w.message) for w in caught)
