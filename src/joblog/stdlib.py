"""Plugging into ``logging`` (and structlog): records emitted inside a job are stored
with its job_id, step_id and external_job_id, without the caller passing anything.

The handler's work on the caller's thread is a ContextVar read, ``getMessage()`` and a
deque append; level mapping, attrs and JSON happen on the writer thread.
"""

from __future__ import annotations

import json
import logging
import math
import traceback
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from joblog._ops import EventRow
from joblog.lifecycle import current_frame
from joblog.model import Level

__all__ = ["MAX_MESSAGE_CHARS", "JobLogHandler", "make_event_row", "structlog_processor"]

#: Longer messages are stored cut, with a visible marker (fits MySQL's TEXT in utf8mb4).
MAX_MESSAGE_CHARS = 16_000
_NO_IDS: tuple[None, None, None] = (None, None, None)
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

#: What the handler queues: (ids, formatted message, record).
RawEvent = tuple[tuple[str | None, int | None, str | None], str, logging.LogRecord]


def level_name(levelno: int) -> str:
    if levelno >= logging.ERROR:
        return Level.ERROR.value
    if levelno >= logging.WARNING:
        return Level.WARN.value
    if levelno >= logging.INFO:
        return Level.INFO.value
    return Level.DEBUG.value


class JobLogHandler(logging.Handler):
    """Stores log records through a tracker's batch writer.

    ``unattributed`` says what to do with records emitted outside any job: "keep"
    (stored with NULL IDs, as the seed's table has them) or "drop";
    ``unattributed_level`` is the minimum level kept for those.
    """

    def __init__(
        self,
        put: Callable[[Any], None],
        *,
        owner: object,
        writer_thread_id: int | None,
        level: int = logging.DEBUG,
        unattributed: str = "keep",
        unattributed_level: int = logging.DEBUG,
    ) -> None:
        super().__init__(level)
        if unattributed not in ("keep", "drop"):
            raise ValueError("unattributed must be 'keep' or 'drop'")
        self._put = put
        self._owner = owner
        self._writer_thread_id = writer_thread_id
        self._keep_unattributed = unattributed == "keep"
        self._unattributed_level = unattributed_level

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
        self._put((ids, message, record))


#: levelno -> stored level for the standard levels (others go through level_name).
_LEVEL_NAMES = {n: level_name(n) for n in (logging.DEBUG, logging.INFO, logging.WARNING,
                                           logging.ERROR, logging.CRITICAL)}  # fmt: skip
#: attrs JSON of a plain record (nothing but its logger's name), per logger name.
_PLAIN_ATTRS: dict[str, str | None] = {}
_PLAIN_ATTRS_MAX = 4096


def make_event_row(item: RawEvent) -> EventRow:
    """Turn a queued record into a log_events row (runs on the writer thread)."""
    ids, message, record = item
    level = _LEVEL_NAMES.get(record.levelno) or level_name(record.levelno)
    ts = datetime.fromtimestamp(record.created, UTC).replace(tzinfo=None)
    if (
        not record.exc_info
        and not record.exc_text
        and not record.stack_info
        and not (record.__dict__.keys() - _STANDARD_ATTRS)
    ):
        # The common case, a record without extras: its attrs JSON depends on the logger only.
        attrs_json = _PLAIN_ATTRS.get(record.name, "")
        if attrs_json == "":
            attrs_json = dumps_attrs({"logger": record.name})
            if len(_PLAIN_ATTRS) < _PLAIN_ATTRS_MAX:
                _PLAIN_ATTRS[record.name] = attrs_json
        return (ids[0], ids[1], ids[2], level, clean_message(message), attrs_json, ts)
    attrs: dict[str, Any] = {"logger": record.name}
    for key, value in record.__dict__.items():
        if key not in _STANDARD_ATTRS and not key.startswith("_"):
            attrs[key] = value
    if record.exc_info and record.exc_info[0] is not None:
        attrs["exc_type"] = record.exc_info[0].__name__
        attrs["exception"] = "".join(traceback.format_exception(*record.exc_info))
    elif record.exc_text:
        attrs["exception"] = record.exc_text
    if record.stack_info:
        attrs["stack"] = record.stack_info
    return (ids[0], ids[1], ids[2], level, clean_message(message), dumps_attrs(attrs), ts)


def clean_message(message: str) -> str:
    """Cut over-long messages with a marker; NUL cannot be stored in PostgreSQL text."""
    if "\x00" in message:
        message = message.replace("\x00", "\ufffd")
    if len(message) > MAX_MESSAGE_CHARS:
        cut = len(message) - MAX_MESSAGE_CHARS
        message = f"{message[:MAX_MESSAGE_CHARS]}… [truncated {cut} characters]"
    return message


def dumps_attrs(attrs: dict[str, Any] | None) -> str | None:
    """JSON every backend accepts: no NaN/Infinity, no NUL, anything unknown as text."""
    if not attrs:
        return None
    try:
        text = json.dumps(attrs, default=_json_default, ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(attrs), default=_json_default, ensure_ascii=False)
    if "\\u0000" in text:
        text = text.replace("\\u0000", "\\ufffd")
    return text


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return repr(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


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
