"""Plugging into ``logging`` (and structlog): records emitted inside a job are stored
with its job_id, step_id and external_job_id, without the caller passing anything.

The handler's work on the caller's thread is a ContextVar read, ``getMessage()``, the
active OpenTelemetry span's IDs (only in a process that uses OpenTelemetry) and a deque
append; level mapping, attrs and JSON happen on the writer thread.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from joblog._ops import EventRow
from joblog._otel import NO_SPAN, SpanIds, current_span_ids
from joblog._storable import MAX_MESSAGE_CHARS, as_text, clean_message, clean_text, dumps_attrs
from joblog.lifecycle import current_frame
from joblog.model import Level

if TYPE_CHECKING:
    from joblog.owner import JobOwner

__all__ = [
    "MAX_MESSAGE_CHARS",
    "JobLogHandler",
    "clean_message",
    "clean_text",
    "dumps_attrs",
    "make_event_row",
    "structlog_processor",
]

_NO_IDS: tuple[None, None, None] = (None, None, None)
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

#: What the handler queues: (ids, formatted message, record, OpenTelemetry span IDs).
RawEvent = tuple[tuple[str | None, int | None, str | None], str, logging.LogRecord, SpanIds]


def _level_number(level: int | str) -> int:
    """A level given as a number or a name ("WARNING", "25"), as logging's own config does."""
    if isinstance(level, int):
        return level
    text = str(level).strip()
    if text.isdigit():
        return int(text)
    number = logging.getLevelNamesMapping().get(text.upper())
    if number is None:
        raise ValueError(f"unknown level: {level!r}")
    return number


def level_name(levelno: int) -> str:
    if levelno >= logging.ERROR:
        return Level.ERROR.value
    if levelno >= logging.WARNING:
        return Level.WARN.value
    if levelno >= logging.INFO:
        return Level.INFO.value
    return Level.DEBUG.value


class JobLogHandler(logging.Handler):
    """Stores log records, attributed to the current job, through a tracker's batch writer.

    Built from a database ``url``, it uses the process's shared Tracker for that URL
    (:meth:`joblog.Tracker.shared`), so ``logging.config.dictConfig`` can make it::

        {"class": "joblog.JobLogHandler", "url": "sqlite:///jobs.db", "level": "INFO"}

    and code that runs jobs with ``joblog.Tracker.shared("sqlite:///jobs.db")`` has its
    records stored with its jobs' IDs. Extra keyword arguments are that tracker's options
    (``batch_size``, ``durability``, ...). ``tracker``: use this Tracker (or
    :class:`joblog.client.Client`) instead of a URL. Records of jobs another tracker runs
    are left to that tracker's handler.

    ``unattributed`` says what to do with records emitted outside any job: "keep"
    (stored with NULL IDs, as the seed's table has them) or "drop";
    ``unattributed_level`` is the minimum level kept for those. Formatters are not used:
    the stored message is ``record.getMessage()``, the record's extras become attrs.
    """

    #: Seconds :meth:`flush` waits for the queue to be stored.
    flush_timeout = 5.0

    def __init__(
        self,
        url: str | None = None,
        level: int | str = logging.DEBUG,
        *,
        tracker: JobOwner[Any] | None = None,
        unattributed: str = "keep",
        unattributed_level: int | str = logging.DEBUG,
        **tracker_options: Any,
    ) -> None:
        super().__init__(level)
        if unattributed not in ("keep", "drop"):
            raise ValueError("unattributed must be 'keep' or 'drop'")
        self._keep_unattributed = unattributed == "keep"
        self._unattributed_level = _level_number(unattributed_level)
        self._put: Callable[[Any], None]
        self._owner: object
        self._writer_thread_id: int | None
        if tracker is not None:
            if url is not None or tracker_options:
                raise TypeError("give a url (with tracker options) or a tracker, not both")
            self._put = tracker.writer.put_event
            self._owner = tracker
            self._writer_thread_id = tracker.writer.thread_id
        else:
            from joblog import _shared
            from joblog._config import DEFAULT_URL

            _shared.bind_handler(self, url or DEFAULT_URL, tracker_options)

    @property
    def tracker(self) -> Any:
        """The Tracker (or Client) whose jobs this handler stores records for."""
        return self._owner

    def flush(self) -> None:
        """Wait (at most :attr:`flush_timeout` seconds) until queued records are stored."""
        owner: Any = getattr(self, "_owner", None)  # None: its construction failed
        if not getattr(owner, "_closed", True):
            owner.flush(self.flush_timeout)

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: emit only appends to a thread-safe deque.
        if self.filters:
            filtered = self.filter(record)
            if not filtered:
                return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self._writer_thread_id:
            return  # the writer's own records (and its driver's) would loop back
        frame = current_frame()
        if frame is None:
            if not self._keep_unattributed or record.levelno < self._unattributed_level:
                return
            ids: tuple[str | None, int | None, str | None] = _NO_IDS
        elif frame.job.owner is not self._owner:
            return  # another tracker's job: its own handler stores it
        else:
            ids = frame.ids
        try:
            message = record.getMessage()
        except Exception:  # bad %-args must not lose the event
            message = f"{record.msg!s} {record.args!r}"
        self._put((ids, message, record, current_span_ids()))


#: levelno -> stored level for the standard levels (others go through level_name).
_LEVEL_NAMES = {n: level_name(n) for n in (logging.DEBUG, logging.INFO, logging.WARNING,
                                           logging.ERROR, logging.CRITICAL)}  # fmt: skip
#: attrs JSON of a plain record (nothing but its logger's name), per logger name.
_PLAIN_ATTRS: dict[str, str | None] = {}
_PLAIN_ATTRS_MAX = 4096
_EPOCH = datetime(1970, 1, 1)


def make_event_row(item: RawEvent) -> EventRow:
    """Turn a queued record into a log_events row (runs on the writer thread).

    Never raises and never drops the line: every text is made storable (NUL and lone
    surrogates replaced), attrs that cannot be rendered are stored as their best-effort
    text, and if even that fails the row keeps the message with a note in its attrs.
    """
    ids, message, record, span = item
    try:
        return _event_row(ids, message, record, span)
    except Exception as error:  # a record whose attrs defeat every rendering
        note = {
            "logger": as_text(getattr(record, "name", "?")),
            "joblog_error": as_text(repr(error)),
        }
        ts = datetime.fromtimestamp(getattr(record, "created", 0.0) or 0.0, UTC)
        level = level_name(getattr(record, "levelno", logging.INFO))
        return (ids[0], ids[1], ids[2], level, clean_message(as_text(message)), json.dumps(note),
                ts.replace(tzinfo=None), *span)  # fmt: skip


def _event_row(
    ids: tuple[str | None, int | None, str | None],
    message: str,
    record: logging.LogRecord,
    span: SpanIds = NO_SPAN,
) -> EventRow:
    level = _LEVEL_NAMES.get(record.levelno) or level_name(record.levelno)
    # The naive UTC time of ``created`` (as fromtimestamp(created, UTC) without its tzinfo,
    # at half the cost).
    ts = _EPOCH + timedelta(seconds=record.created)
    fields = record.__dict__
    extras = fields.keys() - _STANDARD_ATTRS
    if not extras and not record.exc_info and not record.exc_text and not record.stack_info:
        # The common case, a record without extras: its attrs JSON depends on the logger only.
        attrs_json = _PLAIN_ATTRS.get(record.name, "")
        if attrs_json == "":
            attrs_json = dumps_attrs({"logger": record.name})
            if len(_PLAIN_ATTRS) < _PLAIN_ATTRS_MAX:
                _PLAIN_ATTRS[record.name] = attrs_json
        return (ids[0], ids[1], ids[2], level, clean_message(message), attrs_json, ts, *span)
    attrs: dict[str, Any] = {"logger": record.name}
    if extras:
        # In the order the caller gave them (a set has none of its own).
        for key in fields if len(extras) > 1 else extras:
            if key in extras and not key.startswith("_"):
                attrs[key] = fields[key]
    if record.exc_info and record.exc_info[0] is not None:
        attrs["exc_type"] = record.exc_info[0].__name__
        try:
            attrs["exception"] = "".join(traceback.format_exception(*record.exc_info))
        except Exception as error:  # an exception whose __str__ raises
            attrs["exception"] = f"<traceback could not be rendered: {error!r}>"
    elif record.exc_text:
        attrs["exception"] = record.exc_text
    if record.stack_info:
        attrs["stack"] = record.stack_info
    return (ids[0], ids[1], ids[2], level, clean_message(message), dumps_attrs(attrs), ts, *span)


def structlog_processor(
    tracker: Any,
) -> Callable[[Any, str, MutableMapping[str, Any]], MutableMapping[str, Any]]:
    """A structlog processor that adds the current job's IDs to the event dict and
    stores the event through ``tracker``. Place it before the renderer."""

    def process(
        _logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        frame = current_frame()
        if frame is not None and frame.job.owner is tracker:
            job_id, step_id, external_job_id = frame.ids
            event_dict.setdefault("job_id", job_id)
            if step_id is not None:
                event_dict.setdefault("step_id", step_id)
            if external_job_id is not None:
                event_dict.setdefault("external_job_id", external_job_id)
        tracker.store_structlog_event(method_name, dict(event_dict))
        return event_dict

    return process
