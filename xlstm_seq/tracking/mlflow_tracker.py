"""An MLflow ``Tracker``: one run per tracker, metrics buffered and sent in batches, never fatal, never in the way.

Store: ``tracking_uri`` if given, else ``MLFLOW_TRACKING_URI`` (also what ``mlflow.set_tracking_uri``
sets), else a local SQLite file ``sqlite:///<cwd>/mlflow.db`` (no server; MLflow 3's file store is
in maintenance mode and is not used). New experiments in a local SQLite store keep their artifacts
next to the database, in ``<db folder>/mlruns/<experiment>``.

Only ``MlflowClient`` is used, never the fluent API, so a run the user has already started with
``mlflow.start_run()`` is left alone (our run is tagged as its child when both use the same store).

A remote store (a tracking server) is talked to from one background thread: the training thread only
puts work on a bounded queue and never waits for the network. The run starts with a quick reachability check
of the server (``probe_timeout``, 3 s by default) so that a server that accepts connections and never answers
costs seconds, on that thread, not minutes. ``flush()`` waits for the queue (at most ``flush_timeout``, and not
at all once a wait timed out, until the server answers again); ``close()`` waits at most ``close_timeout`` and
keeps locally whatever is still unsent. Artifacts are staged (hard-linked or copied) when logged, so the caller
may delete its file at once. A local store (SQLite or a folder) is written on the calling thread.

Failures: every call to MLflow is guarded. When one fails the tracker warns once per kind of
failure (a ``TrackingWarning`` naming the local fallback folder) and the run goes on: metrics,
params and tags that could not be sent are appended to ``<fallback>/metrics.jsonl`` and artifacts
are copied to ``<fallback>/artifacts``. After a connection failure the server is left alone for a
cool-down (30 s, doubling up to 10 min) instead of paying for a timeout on every flush. Against an
HTTP server the tracker bounds MLflow's timeout (10 s per request) and retries (2; MLflow's default is 7 with
exponential backoff, about 4 minutes) for its own calls, unless the ``MLFLOW_HTTP_REQUEST_*`` variables are set
by the user.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import posixpath
import re
import shutil
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from xlstm_seq.tracking.base import TrackingWarning, flatten_dict
from xlstm_seq.tracking.provenance import run_info_tags
from xlstm_seq.tracking.sender import BackgroundSender, Job

__all__ = ["MlflowTracker", "resolve_tracking_uri", "default_tracking_uri"]

logger = logging.getLogger(__name__)

# MLflow's limits (mlflow.utils.validation); restated so that importing this module stays cheap.
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_KEY_LENGTH = 250
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100

_TRUNCATED = "...[truncated]"
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")
_STATUSES = ("FINISHED", "FAILED", "KILLED")
# MLflow error codes that mean "the server refused this request", not "the server is gone".
_REJECTIONS = {"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "BAD_REQUEST", "INVALID_STATE"}
_COOLDOWN_START_S = 30.0
_COOLDOWN_MAX_S = 600.0

_open_trackers: weakref.WeakSet[MlflowTracker] = weakref.WeakSet()


def default_tracking_uri() -> str:
    """``sqlite:///<abs cwd>/mlflow.db``: an embedded store in the current directory."""
    return f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """The argument if given, else ``MLFLOW_TRACKING_URI``, else :func:`default_tracking_uri`."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a local ``sqlite:///`` URI, else None."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path).resolve()


def _safe_key(key: Any) -> str:
    """A metric/param/tag name MLflow accepts: bad characters become ``_``, at most 250 characters."""
    key = _BAD_KEY_CHARS.sub("_", str(key))
    key = posixpath.normpath(key).lstrip("/") if key else key
    if key in ("", ".") or key.startswith(".."):
        key = "_" + key
    return key[:MAX_KEY_LENGTH]


def _truncate(value: Any, limit: int) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - len(_TRUNCATED)] + _TRUNCATED


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _close_open_trackers() -> None:
    # A run left open at interpreter exit still gets its buffered metrics and an end status.
    for tracker in list(_open_trackers):
        tracker.close()


atexit.register(_close_open_trackers)


class MlflowTracker:
    """A ``Tracker`` that logs one MLflow run.

    Args:
        experiment: Experiment name; created when missing (restored when deleted).
        run_name: Run name; MLflow picks one when None.
        tracking_uri: Store URI. Default: ``MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``.
        tags: Extra run tags; they override the default ones.
        default_tags: Add git SHA, package versions, device and hostname as tags. Default True.
        artifact_location: Artifact root for a *new* experiment. Default: ``<db folder>/mlruns/<name>``
            for a local SQLite store, the server's choice otherwise.
        fallback_dir: Where data that could not be sent is kept. Default: ``<db folder>/mlruns/fallback``
            for a local SQLite store, else ``<cwd>/mlruns/fallback``; each run gets a subfolder.
        flush_every: Send buffered metrics once this many values are waiting. Default 1000 (one batch).
        flush_interval: ... or when this many seconds passed since the last send. Default 5.0.
        http_retries: MLflow HTTP retries for this tracker's calls (when ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``
            is unset). Default 2.
        http_timeout: MLflow's HTTP timeout in seconds, for connecting and for each read (when
            ``MLFLOW_HTTP_REQUEST_TIMEOUT`` is unset). Default 10.
        probe_timeout: An HTTP server must answer a first request (``GET /health``; any answer will do) within this
            many seconds, connecting and reading each, or the run is kept locally. Default 3.0.
        background: Talk to the store from a background thread. Default (None): for every store but a local one
            (SQLite file or folder).
        flush_timeout: The longest :meth:`flush` waits for the background thread, in seconds. Default 10.0.
        close_timeout: The longest :meth:`close` waits for the background thread, in seconds; what is unsent by
            then is kept locally. Default 60.0.
        max_queued: Sends that may wait for the background thread; beyond it data is kept locally at once.
            Default 1000.
    """

    def __init__(
        self,
        experiment: str,
        run_name: str | None = None,
        *,
        tracking_uri: str | None = None,
        tags: Mapping[str, Any] | None = None,
        default_tags: bool = True,
        artifact_location: str | None = None,
        fallback_dir: str | Path | None = None,
        flush_every: int = 1000,
        flush_interval: float = 5.0,
        http_retries: int = 2,
        http_timeout: int = 10,
        probe_timeout: float = 3.0,
        background: bool | None = None,
        flush_timeout: float = 10.0,
        close_timeout: float = 60.0,
        max_queued: int = 1000,
    ) -> None:
        self.experiment = experiment
        self.run_name = run_name
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.flush_every = max(1, int(flush_every))
        self.flush_interval = float(flush_interval)
        self.probe_timeout = float(probe_timeout)
        self.flush_timeout = float(flush_timeout)
        self.close_timeout = float(close_timeout)
        self._db_path = _sqlite_path(self.tracking_uri)
        self._is_http = self.tracking_uri.startswith(("http://", "https://"))
        self._http_env = {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(int(http_retries)),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.2",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(http_timeout)),
        }
        base = self._db_path.parent if self._db_path is not None else Path.cwd().resolve()
        self._fallback_root = Path(fallback_dir) if fallback_dir is not None else base / "mlruns" / "fallback"
        self._fallback: Path | None = None
        self._fallback_records = 0
        self._lock = threading.RLock()  # the caller's side: buffer, params, submitting
        self._io_lock = threading.RLock()  # fallback files and warnings, written from either thread
        self._buffer: list[tuple[str, float, int, int]] = []
        self._keys: dict[str, str] = {}
        self._params: dict[str, str] = {}
        self._warned: set[str] = set()
        self._last_flush = time.monotonic()
        self._down_until = 0.0
        self._cooldown = _COOLDOWN_START_S
        self._closed = False
        self._slow = False
        self._client: Any = None
        self._run_id: str | None = None
        self.experiment_id: str | None = None
        self._started = threading.Event()
        self._staging: Path | None = None
        self._staged = 0
        if background is None:
            background = not self._is_local_store()
        self._sender = BackgroundSender(f"mlflow-tracker-{experiment}", max_queued) if background else None
        self._start(tags or {}, default_tags, artifact_location)
        _open_trackers.add(self)

    def _is_local_store(self) -> bool:
        """A SQLite file or a folder on this machine: nothing to wait for, so it is written on the calling thread."""
        uri = self.tracking_uri
        return self._db_path is not None or uri.startswith("file:") or "://" not in uri and uri != "databricks"

    # ----------------------------------------------------------------------------------------- start

    def _start(self, user_tags: Mapping[str, Any], default_tags: bool, artifact_location: str | None) -> None:
        tags: dict[str, str] = {}
        if default_tags:
            tags.update(self._context_tags())
            tags.update(run_info_tags())
            if tags.get("git.sha", "unknown") != "unknown":
                tags["mlflow.source.git.commit"] = tags["git.sha"]
        tags.update({str(k): str(v) for k, v in user_tags.items()})
        tags = {_safe_key(k): _truncate(v, MAX_TAG_VAL_LENGTH) for k, v in tags.items()}
        # The fluent run of the caller's thread (the background thread has none of its own).
        parent = self._fluent_parent_run_id()

        def create_run() -> None:
            from mlflow.tracking import MlflowClient

            if self._is_http:
                self._probe()
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
            self.experiment_id = self._get_or_create_experiment(artifact_location)
            if parent is not None:
                tags["mlflow.parentRunId"] = parent
            run = self._client.create_run(self.experiment_id, run_name=self.run_name, tags=tags)
            self._run_id = run.info.run_id
            self.run_name = run.info.run_name

        def start(offline: bool) -> None:
            try:
                if not self._call("start", create_run, force=True, offline=offline):
                    self._client = None
                    # The tags are kept locally, so that the run can be reconstructed from the fallback file.
                    self._write_fallback([{"kind": "tag", "key": k, "value": v} for k, v in tags.items()])
            finally:
                self._started.set()

        self._submit(start)

    def _probe(self) -> None:
        """Raises ConnectionError unless the HTTP server answers within ``probe_timeout`` (any status will do)."""
        import requests

        url = self.tracking_uri.rstrip("/") + "/health"
        try:
            requests.get(url, timeout=(self.probe_timeout, self.probe_timeout), allow_redirects=False).close()
        except requests.exceptions.SSLError:
            return  # it answered; MLflow's own TLS settings decide whether to trust it
        except requests.exceptions.RequestException as err:
            raise ConnectionError(
                f"the tracking server did not answer GET {url} within {self.probe_timeout:g} s ({type(err).__name__})"
            ) from err

    def _get_or_create_experiment(self, artifact_location: str | None) -> str:
        from mlflow.exceptions import MlflowException

        experiment = self._client.get_experiment_by_name(self.experiment)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                logger.warning("restoring deleted MLflow experiment %r", self.experiment)
                self._client.restore_experiment(experiment.experiment_id)
            return experiment.experiment_id
        if artifact_location is None and self._db_path is not None:
            folder = re.sub(r"[^\w.\-]", "_", self.experiment) or "default"
            artifact_location = (self._db_path.parent / "mlruns" / folder).as_uri()
        try:
            return self._client.create_experiment(self.experiment, artifact_location=artifact_location)
        except MlflowException as err:
            # Another process created it between our lookup and our create.
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return self._client.get_experiment_by_name(self.experiment).experiment_id

    def _fluent_parent_run_id(self) -> str | None:
        """The id of a run started with ``mlflow.start_run()`` in this thread, if it uses our store."""
        try:
            import mlflow

            active = mlflow.active_run()
            if active is None:
                return None
            fluent_uri = resolve_tracking_uri(mlflow.get_tracking_uri())
        except Exception as err:  # never let the fluent API stop a run
            logger.debug("could not read the active MLflow run: %s", err)
            return None
        fluent_db = _sqlite_path(fluent_uri)
        same_store = fluent_db == self._db_path if fluent_db is not None else fluent_uri == self.tracking_uri
        return active.info.run_id if same_store else None

    @staticmethod
    def _context_tags() -> dict[str, str]:
        """MLflow's own source tags (user, entry point) as the fluent API would set them."""
        try:
            from mlflow.tracking.context.registry import resolve_tags

            return {k: str(v) for k, v in resolve_tags({}).items()}
        except Exception as err:  # an internal MLflow API: never let it stop a run
            logger.debug("could not resolve MLflow context tags: %s", err)
            return {}

    # -------------------------------------------------------------------------------- guarded calls

    @property
    def run_id(self) -> str | None:
        """The MLflow run id, or None when the run could not be created.

        Against a server the run is created on the background thread; this waits for that (at most
        ``close_timeout`` seconds) while the tracker is open.
        """
        if self._sender is not None and not self._closed and not self._started.is_set():
            self._started.wait(self.close_timeout)
        return self._run_id

    @property
    def fallback_path(self) -> Path:
        """The folder where this run keeps what could not be sent (created on first use)."""
        with self._io_lock:
            if self._fallback is None:
                name = self._run_id or f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{self.run_name or 'run'}"
                self._fallback = self._fallback_root.resolve() / _safe_key(name).replace("/", "_")
            return self._fallback

    @property
    def fallback_file(self) -> Path:
        """The JSONL file of metrics, params and tags that could not be sent."""
        return self.fallback_path / "metrics.jsonl"

    @contextlib.contextmanager
    def _http_settings(self) -> Iterator[None]:
        # MLflow reads its HTTP retry settings from the environment on every request; override them
        # only while our own call runs and only where the user has not chosen them.
        if not self._is_http:
            yield
            return
        added = [k for k in self._http_env if k not in os.environ]
        for key in added:
            os.environ[key] = self._http_env[key]
        try:
            yield
        finally:
            for key in added:
                os.environ.pop(key, None)

    def _available(self) -> bool:
        return self._client is not None and self._run_id is not None and time.monotonic() >= self._down_until

    def _call(self, kind: str, fn: Callable[[], Any], *, force: bool = False, offline: bool = False) -> bool:
        """Runs one MLflow call; on failure warns once per ``kind`` and returns False.

        ``offline``: the call is not tried (the server did not take earlier data in time); warns and returns False.
        """
        if offline:
            self._warn(kind, f"the server did not take it within close_timeout={self.close_timeout:g} s")
            return False
        if not force and not self._available():
            reason = "no run" if self._run_id is None else "server unavailable since an earlier failure"
            self._warn(kind, reason)
            return False
        try:
            with self._http_settings():
                fn()
        except Exception as err:
            rejected = getattr(err, "error_code", None) in _REJECTIONS
            if not rejected:
                self._down_until = time.monotonic() + self._cooldown
                self._cooldown = min(2 * self._cooldown, _COOLDOWN_MAX_S)
            self._warn(kind, err)
            return False
        self._cooldown = _COOLDOWN_START_S
        self._slow = False
        return True

    def _submit(self, job: Job) -> None:
        """Runs ``job`` on the background thread (or here, for a local store or after close)."""
        if self._sender is None:
            job(False)
        elif self._closed:
            # Late data after close: sent at once, unless the server already failed to take the run's last data.
            job(self._sender.abandoned)
        elif not self._sender.submit(job):
            self._warn("queue", f"more than {self._sender.max_jobs} sends wait for the server")
            job(True)

    def _wait(self, timeout: float) -> None:
        """Waits (at most ``timeout`` s) for the background thread; once a wait timed out, it does not wait again
        until a call succeeds: a silent server costs one wait, not one per flush."""
        if self._sender is None or self._slow:
            return
        if not self._sender.wait(timeout):
            self._slow = True
            self._warn(
                "slow",
                f"the server at {self.tracking_uri} has not taken the run's data for {timeout:g} s; training goes on "
                "without waiting for it (what it never takes is kept locally at close)",
                kept=False,
            )

    def _warn(self, kind: str, err: BaseException | str, *, kept: bool = True) -> None:
        """Warns once per ``kind``; ``kept`` says the data went to the fallback folder (else it was dropped)."""
        with self._io_lock:
            if kind in self._warned:
                logger.debug("MLflow tracking (%s) failed again: %s", kind, err)
                return
            self._warned.add(kind)
        text = str(err).strip()
        message = text.splitlines()[0][:500] if text else type(err).__name__
        if kept:
            where = {"artifact": self.fallback_path / "artifacts", "close": self.fallback_path / "run.json"}.get(
                kind, self.fallback_file
            )
            message = (
                f"MLflow tracking failed ({kind}) for run {self._run_id or self.run_name!r} at {self.tracking_uri}: "
                f"{message}. Training goes on; what could not be sent is kept in {where}"
            )
        else:
            message = f"MLflow tracking ({kind}): {message}"
        warnings.warn(message, TrackingWarning, stacklevel=4)

    def _keeps_locally(self) -> bool:
        """False on the background thread after close gave up on it: close kept that job's data already."""
        return not (self._sender is not None and self._sender.abandoned and self._sender.on_worker())

    def _write_fallback(self, records: list[dict[str, Any]]) -> None:
        if not records or not self._keeps_locally():
            return
        try:
            with self._io_lock:
                self.fallback_path.mkdir(parents=True, exist_ok=True)
                with self.fallback_file.open("a", encoding="utf-8") as f:
                    for record in records:
                        f.write(json.dumps({"run_id": self._run_id, **record}) + "\n")
                self._fallback_records += len(records)
        except OSError as err:
            # The last resort failed too: say so loudly, but do not stop training.
            self._warn("fallback", err)

    # ------------------------------------------------------------------------------------- logging

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Logs parameters, flattened (``{"model": {"dim": 4}}`` -> ``model.dim``).

        Values longer than MLflow's limit (6000 characters) are truncated (log the full config with
        :meth:`log_text`). A key logged again with the same value is skipped; with a different value
        it is refused by MLflow (params are immutable), so it is skipped with a warning.
        """
        flat = flatten_dict(params)
        with self._lock:
            new: dict[str, str] = {}
            for key, value in flat.items():
                key, text = _safe_key(key), _truncate(value, MAX_PARAM_VAL_LENGTH)
                old = self._params.get(key)
                if old is None:
                    new[key] = text
                elif old != text:
                    self._warn(
                        "param changed",
                        f"param {key!r} was logged as {old!r}; params are immutable, {text!r} is not logged",
                        kept=False,
                    )
            self._params.update(new)
            if new:
                self._submit(lambda offline: self._send_params_or_tags("params", new, offline))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Sets run tags; values become strings (at most 8000 characters)."""
        items = {_safe_key(k): _truncate(v, MAX_TAG_VAL_LENGTH) for k, v in tags.items()}
        with self._lock:
            if items:
                self._submit(lambda offline: self._send_params_or_tags("tags", items, offline))

    def _send_params_or_tags(self, kind: str, items: dict[str, str], offline: bool) -> None:
        from mlflow.entities import Param, RunTag

        pairs = list(items.items())
        for i, chunk in enumerate(_chunks(pairs, MAX_PARAMS_TAGS_PER_BATCH)):
            if kind == "params":
                entities = {"params": [Param(k, v) for k, v in chunk]}
            else:
                entities = {"tags": [RunTag(k, v) for k, v in chunk]}
            if not self._call(kind, lambda e=entities: self._client.log_batch(self._run_id, **e), offline=offline):
                rest = pairs[i * MAX_PARAMS_TAGS_PER_BATCH :]
                self._write_fallback([{"kind": kind[:-1], "key": k, "value": v} for k, v in rest])
                return

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Buffers scalar metrics at ``step`` (0 when None, as in MLflow).

        Sent when ``flush_every`` values wait or ``flush_interval`` seconds passed, and on
        :meth:`flush` / :meth:`close`. Values are converted with ``float()`` (0-d tensors work);
        a value that cannot be converted is dropped with a warning.
        """
        timestamp = int(time.time() * 1000)
        step = 0 if step is None else int(step)
        with self._lock:
            for key, value in metrics.items():
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    self._warn("metric value", f"metric {key!r} = {value!r} is not a number and is dropped", kept=False)
                    continue
                name = self._keys.get(key)
                if name is None:
                    name = self._keys[key] = _safe_key(key)
                self._buffer.append((name, number, timestamp, step))
            # After close nothing flushes later (no atexit either), so late values are sent at once.
            due = (
                self._closed
                or len(self._buffer) >= self.flush_every
                or time.monotonic() - self._last_flush >= self.flush_interval
            )
            if due:
                self._submit_buffer()

    def _submit_buffer(self, final: bool = False) -> None:
        """Hands the buffered metrics to be sent (``final``: once more even during a cool-down)."""
        with self._lock:
            self._last_flush = time.monotonic()
            pending, self._buffer = self._buffer, []
            if pending or final:
                self._submit(lambda offline: self._send_metrics(pending, offline, final))

    def _send_metrics(self, pending: list[tuple[str, float, int, int]], offline: bool, final: bool = False) -> None:
        from mlflow.entities import Metric

        if final and not offline:
            self._down_until = 0.0  # the last chance: try the server once more, even during a cool-down
        for i, chunk in enumerate(_chunks(pending, MAX_METRICS_PER_BATCH)):
            batch = [Metric(k, v, ts, s) for k, v, ts, s in chunk]
            if not self._call(
                "metrics", lambda b=batch: self._client.log_batch(self._run_id, metrics=b), offline=offline
            ):
                rest = pending[i * MAX_METRICS_PER_BATCH :]
                self._write_fallback(
                    [{"kind": "metric", "key": k, "value": v, "timestamp": ts, "step": s} for k, v, ts, s in rest]
                )
                return

    def flush(self) -> None:
        """Sends buffered metrics now (in batches of 1000); what fails goes to the fallback file.

        Against a server this waits for the background thread, at most ``flush_timeout`` seconds (and not at all
        after a wait timed out, until the server answers again).
        """
        self._submit_buffer()
        self._wait(self.flush_timeout)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Logs a local file or folder (its contents) under ``artifact_path`` of the run.

        Against a server the file is staged first (a hard link or a copy), so it may be deleted once this returns.
        """
        path = Path(path)
        if not path.exists():
            self._warn("artifact missing", f"{path} does not exist and is not logged", kept=False)
            return
        with self._lock:
            if self._sender is None or self._closed:
                self._submit(lambda offline: self._send_artifact(path, artifact_path, offline))
                return
            staged = self._stage(path)
            if staged is None:  # could not stage it: keep it locally now rather than risk losing it
                self._copy_to_fallback(path, artifact_path)
                return
            self._submit(lambda offline: self._send_artifact(staged, artifact_path, offline, staged=True))

    def _stage(self, path: Path) -> Path | None:
        """A private copy of ``path`` (hard links where the file system allows), under the same name."""
        try:
            if self._staging is None:
                self._staging = Path(tempfile.mkdtemp(prefix="xlstm_seq_tracker_"))
            self._staged += 1
            target = self._staging / str(self._staged) / path.name
            target.parent.mkdir()
            if path.is_dir():
                shutil.copytree(path, target, copy_function=_link_or_copy)
            else:
                _link_or_copy(str(path), str(target))
            return target
        except OSError as err:
            self._warn("fallback", f"could not stage {path} for sending: {err}")
            return None

    def _send_artifact(self, path: Path, artifact_path: str | None, offline: bool, staged: bool = False) -> None:
        try:
            if path.is_dir():
                send = lambda: self._client.log_artifacts(self._run_id, str(path), artifact_path)  # noqa: E731
            else:
                send = lambda: self._client.log_artifact(self._run_id, str(path), artifact_path)  # noqa: E731
            if not self._call("artifact", send, offline=offline):
                self._copy_to_fallback(path, artifact_path)
        finally:
            if staged and self._keeps_locally():
                shutil.rmtree(path.parent, ignore_errors=True)

    def _copy_to_fallback(self, path: Path, artifact_path: str | None) -> None:
        if not self._keeps_locally():
            return
        target = self.fallback_path / "artifacts" / (artifact_path or "")
        try:
            if path.is_dir():
                shutil.copytree(path, target, dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name)
        except OSError as err:
            self._warn("fallback", err)

    def _log_generated(self, name: str, write: Callable[[Path], None]) -> None:
        """Writes a file named ``name`` (may contain folders) with ``write`` and logs it as an artifact."""
        relative = posixpath.normpath(name.replace("\\", "/")).lstrip("/")
        folder, filename = posixpath.split(relative)
        with tempfile.TemporaryDirectory(prefix="xlstm_seq_artifact_") as tmp:
            local = Path(tmp) / filename
            write(local)
            self.log_artifact(local, folder or None)

    def log_figure(self, fig: Any, name: str) -> None:
        """Saves a matplotlib figure as PNG and logs it as ``name`` (``.png`` appended when missing).

        The figure is not closed (it belongs to the caller).
        """
        if not Path(name).suffix:
            name = f"{name}.png"
        self._log_generated(name, lambda p: fig.savefig(p, format="png", bbox_inches="tight"))

    def log_text(self, text: str, name: str) -> None:
        """Logs ``text`` as the artifact file ``name`` (UTF-8), e.g. the resolved YAML as ``config.yaml``."""
        self._log_generated(name, lambda p: p.write_text(text, encoding="utf-8"))

    def log_dict(self, data: Mapping[str, Any], name: str) -> None:
        """Logs a mapping as YAML (``name`` ending in ``.yaml``/``.yml``) or JSON (otherwise)."""
        # A JSON round trip turns paths, enums and other objects into strings that YAML can dump.
        plain = json.loads(json.dumps(data, default=str))
        if name.endswith((".yaml", ".yml")):
            import yaml

            text = yaml.safe_dump(plain, sort_keys=False)
        else:
            text = json.dumps(plain, indent=2)
        self.log_text(text, name)

    # ------------------------------------------------------------------------------------------ end

    def close(self, status: str = "FINISHED") -> None:
        """Flushes and ends the run with ``status`` (FINISHED, FAILED or KILLED). Idempotent.

        The final flush tries the server once more even during a cool-down; if the run cannot be
        ended on the server, a ``run.json`` with the status is written beside the fallback file.
        Against a server this waits at most ``close_timeout`` seconds; what is unsent by then is kept locally.
        """
        status = status.upper()
        if status not in _STATUSES:
            raise ValueError(f"status must be one of {_STATUSES}, got {status!r}")
        with self._lock:
            if self._closed:
                return
            self._submit_buffer(final=True)
            self._submit(lambda offline: self._end_run(status, offline))
            self._closed = True
            _open_trackers.discard(self)
        if self._sender is None:
            return
        left = self._sender.stop(self.close_timeout)
        if left:
            self._down_until = float("inf")  # late data after close goes straight to the fallback folder
            for job in left:
                job(True)
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)

    def _end_run(self, status: str, offline: bool) -> None:
        ended = self._call("close", lambda: self._client.set_terminated(self._run_id, status), offline=offline)
        if not ended or self._fallback_records:
            self._write_run_file(status)
        if self._fallback_records and self._keeps_locally():
            logger.warning(
                "MLflow run %s: %d records could not be sent and are kept in %s",
                self._run_id,
                self._fallback_records,
                self.fallback_file,
            )

    def _write_run_file(self, status: str) -> None:
        if not self._keeps_locally():
            return
        info = {
            "run_id": self._run_id,
            "run_name": self.run_name,
            "experiment": self.experiment,
            "tracking_uri": self.tracking_uri,
            "status": status,
            "end_time": int(time.time() * 1000),
        }
        try:
            with self._io_lock:
                self.fallback_path.mkdir(parents=True, exist_ok=True)
                (self.fallback_path / "run.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
        except OSError as err:
            self._warn("fallback", err)

    def __enter__(self) -> MlflowTracker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.close("KILLED")
        else:
            self.close("FAILED")

    def __repr__(self) -> str:
        return f"MlflowTracker(experiment={self.experiment!r}, run_id={self._run_id!r}, uri={self.tracking_uri!r})"


def _link_or_copy(src: str, dst: str) -> str:
    """A hard link of ``src`` at ``dst`` (instant, no extra space), or a copy where the file system has none."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst
