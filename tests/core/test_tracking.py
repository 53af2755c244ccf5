"""Tracking against real MLflow stores: a temporary SQLite file and a real ``mlflow server``."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import mlflow
import pytest
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient

from xlstm_seq.tracking import (
    MlflowTracker,
    NullTracker,
    Tracker,
    TrackingWarning,
    create_tracker,
    flatten_dict,
)
from xlstm_seq.tracking import (
    provenance as run_info,
)


def _sqlite_uri(path: Path) -> str:
    return f"sqlite:///{path}"


def _figure() -> Figure:
    # A Figure without pyplot needs no GUI backend.
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1, 2], [2, 1, 0])
    return fig


def _artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for info in client.list_artifacts(run_id, path):
        found |= _artifact_paths(client, run_id, info.path) if info.is_dir else {info.path}
    return found


class _CountingLogBatch:
    """Wraps (does not replace) ``MlflowClient.log_batch`` to count the calls that carry metrics."""

    def __init__(self, tracker: MlflowTracker) -> None:
        self.metric_calls = 0
        self._inner = tracker._client.log_batch
        tracker._client.log_batch = self

    def __call__(self, run_id, metrics=(), **kwargs):
        self.metric_calls += bool(metrics)
        return self._inner(run_id, metrics=metrics, **kwargs)


# ----------------------------------------------------------------------------------------- helpers


@dataclasses.dataclass
class _Optim:
    lr: float = 1e-3
    betas: tuple = (0.9, 0.95)


def test_flatten_dict_nested_dataclass_and_leaves():
    flat = flatten_dict(
        {"model": {"num_blocks": 4, "mlstm": {"heads": 2}}, "optim": _Optim(), "empty": {}, "p": Path("a")}
    )
    assert flat == {
        "model.num_blocks": 4,
        "model.mlstm.heads": 2,
        "optim.lr": 1e-3,
        "optim.betas": "[0.9, 0.95]",
        "empty": "{}",
        "p": "a",
    }
    assert flatten_dict({"a": {"b": 1}}, sep="/") == {"a/b": 1}
    with pytest.raises(TypeError):
        flatten_dict([1, 2])


def test_null_tracker_accepts_every_call(tmp_path):
    tracker = NullTracker()
    assert isinstance(tracker, Tracker)
    with tracker as t:
        t.log_params({"a": {"b": 1}})
        t.log_metrics({"loss": 1.0}, step=3)
        t.log_metrics({"loss": 1.0})
        t.log_artifact(tmp_path / "missing.txt", "x")
        t.log_figure(object(), "fig")
        t.log_text("text", "config.yaml")
        t.log_dict({"a": 1}, "d.json")
        t.set_tags({"k": "v"})
        t.flush()
    tracker.close("FAILED")
    tracker.close()
    assert tracker.run_id is None


def test_create_tracker_null_when_disabled_or_not_rank_zero(monkeypatch, tmp_path):
    uri = _sqlite_uri(tmp_path / "mlflow.db")
    assert isinstance(create_tracker("exp", enabled=False, tracking_uri=uri), NullTracker)
    monkeypatch.setenv("RANK", "1")
    assert isinstance(create_tracker("exp", tracking_uri=uri), NullTracker)
    monkeypatch.setenv("RANK", "0")
    with create_tracker("exp", tracking_uri=uri) as tracker:
        assert isinstance(tracker, MlflowTracker)
        assert isinstance(tracker, Tracker)
    assert not (tmp_path / "mlruns" / "fallback").exists()


def test_git_info_never_crashes_without_git(monkeypatch):
    run_info.git_info.cache_clear()
    monkeypatch.setenv("PATH", "")
    try:
        info = run_info.git_info()
    finally:
        run_info.git_info.cache_clear()
    assert info["git.sha"]
    tags = run_info.package_versions()
    assert {"version.python", "version.torch", "version.numpy", "version.mlflow", "version.xlstm_seq"} <= set(tags)


def test_git_revision_is_the_one_a_copy_without_git_is_given(monkeypatch):
    monkeypatch.delenv("XLSTM_SEQ_REVISION", raising=False)
    here = run_info.git_revision()
    assert here and here != "abc1234"
    monkeypatch.setenv("XLSTM_SEQ_REVISION", "abc1234")  # as tools/gpu/device_checks.sh sets it
    assert run_info.git_revision() == "abc1234"


def test_provenance_header_and_tags_name_the_run():
    provenance = run_info.Provenance.capture("xlstm-seq demo --steps 3", packages=("pandas",), threads=1)
    finished = provenance.finish()
    lines = finished.markdown(notes=["one note"])
    assert lines[0] == "Written by `xlstm-seq demo --steps 3`."
    assert any(line.startswith("- date: ") and provenance.revision in line for line in lines)
    assert any("torch" in line and "pandas" in line for line in lines if line.startswith("- versions: "))
    assert lines[-1] == "- one note" and finished.load_end is not None
    tags = finished.tags()
    assert tags["provenance.command"] == "xlstm-seq demo --steps 3" and tags["provenance.threads"] == "1"
    assert "provenance.version.pandas" in tags and "provenance.load_end" in tags


def test_provenance_judges_the_load_at_the_end():
    quiet = run_info.Provenance("c", "r", "s", "d", "h", threads=2, load_start="0.10/0.10/0.10", load_end="2.20/1/1")
    assert not quiet.under_load
    busy = run_info.Provenance("c", "r", "s", "d", "h", threads=1, load_start="0.10/0.10/0.10", load_end="3.00/1/1")
    assert busy.under_load and "other jobs shared the cores" in busy.markdown()[-1]
    assert not run_info.Provenance("c", "r", "s", "d", "h", threads=1, load_start="n/a").under_load


# ------------------------------------------------------------------------------------ SQLite store


def test_run_into_sqlite_store(tmp_path):
    uri = _sqlite_uri(tmp_path / "mlflow.db")
    tracker = create_tracker("unit", "roundtrip", tracking_uri=uri, tags={"purpose": "test"}, flush_every=100)
    batches = _CountingLogBatch(tracker)
    config = {"model": {"num_blocks": 4, "dims": [64, 128]}, "optim": {"lr": 0.001}, "note": "x" * 7000}
    tracker.log_params(config)
    tracker.log_params({"model": {"num_blocks": 4}})  # same value again: fine
    with pytest.warns(TrackingWarning, match="immutable"):
        tracker.log_params({"model": {"num_blocks": 5}})
    for step in range(500):
        tracker.log_metrics({"train/loss": 1.0 / (step + 1), "lr@group0": 0.001}, step=step)
    # 1000 values with flush_every=100: sent as 10 batches, not 1000 calls.
    assert batches.metric_calls == 10
    tracker.log_figure(_figure(), "plots/loss")
    tracker.log_text("model:\n  num_blocks: 4\n", "config.yaml")
    tracker.log_dict({"a": {"b": [1, 2]}}, "resolved.json")
    extra = tmp_path / "notes.txt"
    extra.write_text("hello")
    tracker.log_artifact(extra, "files")
    tracker.set_tags({"phase": "done"})
    tracker.log_metrics({"final": 3.0})
    tracker.close()
    tracker.close()  # idempotent

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "roundtrip"
    history = client.get_metric_history(tracker.run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(500))
    assert len(client.get_metric_history(tracker.run_id, "lr_group0")) == 500  # "@" is not allowed by MLflow
    assert [m.step for m in client.get_metric_history(tracker.run_id, "final")] == [0]
    params = run.data.params
    assert params["model.num_blocks"] == "4"
    assert params["model.dims"] == "[64, 128]"
    assert params["optim.lr"] == "0.001"
    assert len(params["note"]) == 6000 and params["note"].endswith("[truncated]")
    tags = run.data.tags
    for key in ("git.sha", "version.python", "version.torch", "version.mlflow", "version.numpy", "device", "hostname"):
        assert tags[key], key
    assert tags["purpose"] == "test" and tags["phase"] == "done"
    assert _artifact_paths(client, tracker.run_id) == {
        "plots/loss.png",
        "config.yaml",
        "resolved.json",
        "files/notes.txt",
    }
    # Artifacts of a local SQLite store live beside the database, not in the working directory.
    local = client.download_artifacts(tracker.run_id, "config.yaml", str(tmp_path / "dl"))
    assert Path(local).read_text() == "model:\n  num_blocks: 4\n"
    assert run.info.artifact_uri.startswith((tmp_path / "mlruns" / "unit").as_uri())
    png = Path(client.download_artifacts(tracker.run_id, "plots/loss.png", str(tmp_path / "dl")))
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_context_manager_marks_failed_and_flushes(tmp_path):
    uri = _sqlite_uri(tmp_path / "mlflow.db")
    with pytest.raises(RuntimeError, match="boom"), create_tracker("unit", tracking_uri=uri) as tracker:
        tracker.log_metrics({"loss": 2.0}, step=7)
        raise RuntimeError("boom")
    client = MlflowClient(tracking_uri=uri)
    assert client.get_run(tracker.run_id).info.status == "FAILED"
    assert [(m.step, m.value) for m in client.get_metric_history(tracker.run_id, "loss")] == [(7, 2.0)]


def test_tracking_uri_from_environment(monkeypatch, tmp_path):
    uri = _sqlite_uri(tmp_path / "env.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with create_tracker("from-env") as tracker:
        tracker.log_metrics({"x": 1.0}, step=0)
    assert tracker.tracking_uri == uri
    assert MlflowClient(tracking_uri=uri).get_run(tracker.run_id).info.status == "FINISHED"


def test_default_store_is_sqlite_in_cwd(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    with create_tracker("default") as tracker:
        tracker.log_text("hi", "hello.txt")
    assert tracker.tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert (tmp_path / "mlflow.db").is_file()
    assert list((tmp_path / "mlruns").rglob("hello.txt"))


def test_run_while_fluent_run_is_active(monkeypatch, tmp_path):
    uri = _sqlite_uri(tmp_path / "mlflow.db")
    # The fluent API reads the store from the environment; monkeypatch restores it afterwards.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with mlflow.start_run() as outer:
        mlflow.log_param("outer", 1)
        with create_tracker("nested", "inner") as tracker:
            tracker.log_params({"inner": 2})
            tracker.log_metrics({"loss": 1.0}, step=1)
        # The user's run is still the active one and still usable.
        assert mlflow.active_run().info.run_id == outer.info.run_id
        mlflow.log_metric("after", 1.0)
    client = MlflowClient(tracking_uri=uri)
    inner = client.get_run(tracker.run_id)
    assert tracker.run_id != outer.info.run_id
    assert inner.info.status == "FINISHED"
    assert inner.data.params == {"inner": "2"}
    assert inner.data.tags["mlflow.parentRunId"] == outer.info.run_id
    outer_run = client.get_run(outer.info.run_id)
    assert outer_run.data.params == {"outer": "1"} and "after" in outer_run.data.metrics
    assert outer_run.info.status == "FINISHED"


def test_unreachable_server_at_start_keeps_everything_locally(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.warns(TrackingWarning) as record:
        tracker = create_tracker("x", tracking_uri=f"http://127.0.0.1:{port}", fallback_dir=tmp_path / "fb")
        tracker.log_params({"a": {"b": 1}})
        tracker.log_metrics({"loss": 0.5}, step=3)
        tracker.log_text("text", "notes/a.txt")
        tracker.close()
    assert tracker.run_id is None
    messages = [str(w.message) for w in record]
    assert "(start)" in messages[0] and str(tracker.fallback_file) in messages[0]
    assert any("(artifact)" in m and str(tracker.fallback_path / "artifacts") in m for m in messages)
    records = [json.loads(line) for line in tracker.fallback_file.read_text().splitlines()]
    assert {"kind": "param", "key": "a.b", "value": "1", "run_id": None} in records
    assert any(r["kind"] == "metric" and r["key"] == "loss" and r["step"] == 3 for r in records)
    assert any(r["kind"] == "tag" and r["key"] == "git.sha" for r in records)
    assert (tracker.fallback_path / "artifacts" / "notes" / "a.txt").read_text() == "text"
    assert json.loads((tracker.fallback_path / "run.json").read_text())["status"] == "FINISHED"


# ------------------------------------------------------------------------------ real mlflow server


def _group_alive(pgid: int) -> bool:
    """Whether any non-zombie process of the group still runs (zombies may wait for a reaper)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state, ppid, pgrp, ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


class _Server:
    """An ``mlflow server`` subprocess in its own process group."""

    def __init__(self, root: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = root / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        cmd = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", _sqlite_uri(root / "server.db"),
            "--artifacts-destination", str(root / "artifacts"),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--workers", "1",
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.pgid = self.proc.pid

    def wait_healthy(self, timeout: float = 90.0) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {self.proc.returncode}:\n{self.log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return time.monotonic() - start
            except OSError:
                time.sleep(0.25)
        self.stop()
        pytest.fail(f"mlflow server did not answer /health in {timeout} s:\n{self.log.read_text()[-4000:]}")

    def stop(self) -> None:
        """SIGTERM to the whole group, then wait for every member (SIGKILL after 30 s)."""
        for sig, grace in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if self.proc.poll() is not None and not _group_alive(self.pgid):
                    return
                time.sleep(0.1)
        assert not _group_alive(self.pgid), f"mlflow server group {self.pgid} survived SIGKILL"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    server = _Server(tmp_path_factory.mktemp("mlflow_server"))
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


def test_server_roundtrip(mlflow_server, tmp_path):
    assert mlflow_server.proc.poll() is None, "the server was stopped by an earlier test"
    with create_tracker("server", "roundtrip", tracking_uri=mlflow_server.uri, fallback_dir=tmp_path) as tracker:
        tracker.log_params({"model": {"num_blocks": 2}})
        for step in range(300):
            tracker.log_metrics({"loss": float(step)}, step=step)
        tracker.log_figure(_figure(), "loss.png")
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.num_blocks"] == "2"
    assert sorted(m.step for m in client.get_metric_history(tracker.run_id, "loss")) == list(range(300))
    assert _artifact_paths(client, tracker.run_id) == {"loss.png"}
    assert not tracker.fallback_path.exists()


def test_server_dies_mid_run(mlflow_server, tmp_path):
    tracker = create_tracker("server", "dies", tracking_uri=mlflow_server.uri, fallback_dir=tmp_path, flush_every=50)
    for step in range(100):
        tracker.log_metrics({"loss": float(step)}, step=step)
    tracker.flush()
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    assert len(client.get_metric_history(tracker.run_id, "loss")) == 100

    mlflow_server.stop()
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(100, 300):
            tracker.log_metrics({"loss": float(step)}, step=step)
        tracker.log_text("still here", "notes.txt")
        tracker.close()
    elapsed = time.monotonic() - start
    messages = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
    # One warning per kind of failure, not one per flush.
    assert len([m for m in messages if "(metrics)" in m]) == 1, messages
    assert any(str(tracker.fallback_file) in m for m in messages), messages
    records = [json.loads(line) for line in tracker.fallback_file.read_text().splitlines()]
    assert sorted(r["step"] for r in records if r["kind"] == "metric") == list(range(100, 300))
    assert all(r["run_id"] == tracker.run_id for r in records)
    assert (tracker.fallback_path / "artifacts" / "notes.txt").read_text() == "still here"
    assert json.loads((tracker.fallback_path / "run.json").read_text())["status"] == "FINISHED"
    # Short retries and a cool-down: a dead server costs seconds, not MLflow's default minutes.
    assert elapsed < 30, elapsed
