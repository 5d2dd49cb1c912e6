"""What the Tracker (in process) and the Client (over HTTP) share as owners of jobs.

Both keep the jobs running here, own a batch writer and a logging handler, take the same
step specs and store direct events the same way; each says only how its handler is made,
which job is "ours" and what it releases on close.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Mapping
from typing import Any, Generic, Self, TypeVar

from joblog._otel import current_span_ids
from joblog._storable import clean_message
from joblog.lifecycle import JobLifecycle
from joblog.model import Level, PlannedStep
from joblog.stdlib import JobLogHandler
from joblog.writer import BatchWriter, WriterStats

__all__ = ["STDLIB_LEVELS", "Ids", "JobOwner", "StepSpec", "as_planned"]

StepSpec = str | PlannedStep | tuple[str, float]
Ids = tuple[Any, Any, Any]
STDLIB_LEVELS = {
    Level.DEBUG: logging.DEBUG,
    Level.INFO: logging.INFO,
    Level.WARN: logging.WARNING,
    Level.ERROR: logging.ERROR,
}

J = TypeVar("J", bound=JobLifecycle[Any])


def as_planned(spec: StepSpec) -> PlannedStep:
    """A planned step from a name, a (name, weight) pair or a PlannedStep (not validated)."""
    if isinstance(spec, PlannedStep):
        return spec
    if isinstance(spec, tuple):
        return PlannedStep(str(spec[0]), float(spec[1]))
    return PlannedStep(str(spec))


class JobOwner(Generic[J]):
    """What the Tracker and the Client share: running jobs, the logging handler, the writer."""

    writer: BatchWriter
    _running: dict[str, J]
    _lock: threading.Lock
    _handler: JobLogHandler | None
    _handler_target: logging.Logger | None
    _closed: bool

    def _new_handler(self, level: int) -> JobLogHandler:
        raise NotImplementedError

    def install_logging(
        self, logger: logging.Logger | None = None, level: int = logging.DEBUG
    ) -> JobLogHandler:
        """Attach the handler to ``logger`` (the root logger by default). Idempotent.

        Lower the logger's own level too if DEBUG records should reach the handler.
        """
        target = logger if logger is not None else logging.getLogger()
        if self._handler is None:
            self._handler = self._new_handler(level)
        if self._handler_target is not None and self._handler_target is not target:
            self._handler_target.removeHandler(self._handler)
        if self._handler not in target.handlers:
            target.addHandler(self._handler)
        self._handler_target = target
        return self._handler

    def uninstall_logging(self) -> None:
        if self._handler is not None and self._handler_target is not None:
            self._handler_target.removeHandler(self._handler)
        self._handler_target = None

    def _current_ids(self) -> Ids:
        """The current job's IDs if it is one of ours."""
        raise NotImplementedError

    def log_event(self, level: str, message: str, attrs: Mapping[str, Any] | None = None) -> None:
        """Store one event directly (without logging), attributed to the current job."""
        ids = self._current_ids()
        record = logging.makeLogRecord(
            {
                "name": "joblog",
                "levelno": STDLIB_LEVELS[Level.parse(level)],
                "msg": clean_message(message),
                **(attrs or {}),
            }
        )
        self.writer.put_event((ids, record.msg, record, current_span_ids()))

    def job_ended(self, job: J) -> None:
        with self._lock:
            self._running.pop(job.id, None)

    def running_jobs(self) -> list[J]:
        with self._lock:
            return list(self._running.values())

    def stats(self) -> WriterStats:
        """The writer's counters: queued, written, batches, retries, dropped, failed, ..."""
        return self.writer.stats()

    def close(self, timeout: float | None = 30.0) -> None:
        """Detach logging, store everything queued, and release the connections."""
        if self._closed:
            return
        self._closed = True
        exit_hook = getattr(self, "_exit_hook", None)
        if exit_hook is not None:
            atexit.unregister(exit_hook)
        self.uninstall_logging()
        self.writer.close(timeout)
        self._release()

    def _abandon(self) -> None:
        """Forget this owner without storing anything: a forked child's copy, whose writer
        thread stayed in the parent (which stores what was queued before the fork)."""
        self._closed = True

    def _flush_at_exit(self, timeout: float) -> None:
        """At interpreter exit, store what is queued (at most ``timeout`` seconds) even
        if the program never called close(): a crash keeps its outcome. The writer is a
        daemon thread, so without this the last events and job endings would be lost."""
        ref = weakref.ref(self)

        def flush_at_exit() -> None:
            owner = ref()
            if owner is not None and not owner._closed:
                owner.close(timeout)

        self._exit_hook = flush_at_exit
        atexit.register(flush_at_exit)

    def _release(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
