"""A background sender: one daemon thread that runs jobs in order from a bounded queue, so that the thread which
submits them (training) never waits for a slow or silent tracking server.

A job is a callable ``job(offline)``. The sender calls ``job(False)``: send, and keep locally what could not be sent.
Whoever gets a job back (a full queue, or :meth:`BackgroundSender.stop` after its time ran out) calls
``job(True)``: keep everything locally, without touching the network.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["BackgroundSender", "Job"]

logger = logging.getLogger(__name__)

Job = Callable[[bool], None]


class BackgroundSender:
    """Runs submitted jobs one after another on a daemon thread.

    Args:
        name: Name of the thread (shown in stack dumps).
        max_jobs: Jobs that may wait at once; :meth:`submit` refuses more rather than block. Default 1000.
    """

    def __init__(self, name: str, max_jobs: int = 1000) -> None:
        self.max_jobs = max(1, int(max_jobs))
        self._queue: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._pending = 0  # queued + running
        self._current: Job | None = None
        self._stopped = False
        self._abandoned = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def abandoned(self) -> bool:
        """True once :meth:`stop` gave up waiting; a job still running on the thread then keeps nothing itself."""
        return self._abandoned

    def on_worker(self) -> bool:
        """Whether the calling code runs on the sender's thread."""
        return threading.current_thread() is self._thread

    def submit(self, job: Job) -> bool:
        """Queues ``job``; False (nothing queued) when ``max_jobs`` wait already or the sender was stopped."""
        with self._cond:
            if self._stopped or len(self._queue) >= self.max_jobs:
                return False
            self._queue.append(job)
            self._pending += 1
            self._cond.notify_all()
            return True

    def wait(self, timeout: float) -> bool:
        """Waits until every job submitted so far has run; False when ``timeout`` seconds passed first."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def stop(self, timeout: float) -> list[Job]:
        """Refuses new jobs, lets the queued ones run for at most ``timeout`` seconds, and ends the thread.

        Returns:
            The jobs that did not finish in time (the one running, then the queued ones, in order); they never run
            on the sender afterwards, so the caller keeps their data with ``job(True)``. Empty when all ran.
        """
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self.wait(timeout):
            return []
        with self._cond:
            left = ([self._current] if self._current is not None else []) + list(self._queue)
            self._pending -= len(self._queue)
            self._queue.clear()
            self._abandoned = True
            self._cond.notify_all()
        return left

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopped:
                    self._cond.wait()
                if not self._queue or self._abandoned:
                    return
                job = self._current = self._queue.popleft()
            try:
                job(False)
            except Exception:  # a job guards its own calls; this is a bug, and it must not end the thread
                logger.exception("a tracking job failed")
            finally:
                with self._cond:
                    self._current = None
                    self._pending -= 1
                    self._cond.notify_all()
