"""A loguru sink that stores messages like :class:`~joblog.JobLogHandler` stores records.

``logger.add(joblog.loguru_sink(tracker))``: each loguru message becomes a
``logging.LogRecord`` handed to a JobLogHandler, so attribution to the current job and
step, the writer-thread guard, OpenTelemetry span IDs, queueing and row building are the
handler's, written once. loguru's ``extra`` (``logger.bind(...)``) becomes the event's
attrs; an exception (``logger.exception``, ``opt(exception=...)``) is stored with its
traceback as the handler stores ``exc_info``. joblog does not import loguru.

loguru calls a sink on the logging thread, where the current job is known. With
``enqueue=True`` it calls it from its own thread instead, where no job is current: such
messages are stored as unattributed.
"""

from __future__ import annotations

import logging
from typing import Any

from joblog.stdlib import JobLogHandler

__all__ = ["LoguruSink", "loguru_sink"]

#: LogRecord attributes an ``extra`` key must not overwrite; such keys get this prefix.
_RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_PREFIX = "extra_"
_STANDARD_LEVELS = frozenset(logging.getLevelNamesMapping())


class LoguruSink:
    """Callable loguru sink; ``handler`` is the JobLogHandler it hands records to."""

    def __init__(self, handler: JobLogHandler) -> None:
        self.handler = handler

    def __call__(self, message: Any) -> None:
        self.handler.handle(_log_record(message.record))


def loguru_sink(
    tracker: Any = None,
    *,
    url: str | None = None,
    unattributed: str = "keep",
    unattributed_level: int | str = logging.NOTSET,
    **tracker_options: Any,
) -> LoguruSink:
    """A loguru sink storing through ``tracker`` (a Tracker or Client), or through the
    process's shared Tracker for ``url`` (:meth:`joblog.Tracker.shared`, made with
    ``tracker_options``). ``unattributed``: as for :class:`~joblog.JobLogHandler`.
    Levels are filtered by loguru (``logger.add(sink, level="INFO")``), TRACE included."""
    handler = JobLogHandler(
        url,
        tracker=tracker,
        unattributed=unattributed,
        unattributed_level=unattributed_level,
        **tracker_options,
    )
    return LoguruSink(handler)


def _log_record(raw: Any) -> logging.LogRecord:
    """A loguru record dict as the LogRecord logging would have made."""
    exception = raw["exception"]
    record = logging.LogRecord(
        raw["name"] or "loguru",
        raw["level"].no,
        raw["file"].path,
        raw["line"],
        raw["message"],
        None,
        (exception.type, exception.value, exception.traceback) if exception else None,
        raw["function"],
    )
    created = raw["time"].timestamp()
    record.created = created
    record.msecs = (created - int(created)) * 1000
    record.thread = raw["thread"].id
    record.threadName = raw["thread"].name
    record.process = raw["process"].id
    record.processName = raw["process"].name
    level = raw["level"].name
    if level not in _STANDARD_LEVELS:
        record.loguru_level = level  # SUCCESS, TRACE or one's own: the stored level is coarser
    for key, value in raw["extra"].items():
        name = str(key)
        setattr(record, _PREFIX + name if name in _RESERVED else name, value)
    return record
