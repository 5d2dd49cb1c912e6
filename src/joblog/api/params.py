"""Query parameters FastAPI's types cannot check alone: datetimes, levels, statuses, cursors.

Each parser raises :class:`InvalidRequest` naming the parameter, so a client learns which
value was wrong; nothing here touches the database. NUL and invalid UTF-8 never reach these
parsers: :class:`~joblog.api.errors.InputGuard` refuses them for every route.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from datetime import UTC, datetime

from joblog._config import MAX_BIGINT, parse_timestamp
from joblog._otel import is_hex_id
from joblog.api.errors import InvalidRequest
from joblog.model import JobStatus, Level

__all__ = [
    "MAX_BIGINT",
    "MAX_TEXT",
    "decode_event_cursor",
    "decode_job_cursor",
    "encode_event_cursor",
    "encode_job_cursor",
    "parse_datetime",
    "parse_level",
    "parse_statuses",
    "parse_text",
    "parse_trace_id",
]

#: The longest free-text filter accepted (IDs, types and search text).
MAX_TEXT = 255
_LISTABLE_STATUSES = {s.value for s in JobStatus if s is not JobStatus.UNKNOWN}


def parse_text(name: str, value: str | None) -> str | None:
    """A filter string of at most MAX_TEXT characters."""
    if value is None or value == "":
        return None
    if len(value) > MAX_TEXT:
        raise InvalidRequest(["query", name], f"at most {MAX_TEXT} characters")
    return value


def parse_trace_id(loc: list[str], value: str | None) -> str | None:
    """An OpenTelemetry trace ID: 32 hex digits (any case), not all zero; lowercase."""
    if value is None or value == "":
        return None
    lowered = value.lower()
    if not is_hex_id(lowered, 32):
        raise InvalidRequest(loc, "a trace ID is 32 hex digits, not all zero")
    return lowered


def parse_datetime(name: str, value: str | None) -> datetime | None:
    """ISO-8601 (``Z`` or an offset; naive means UTC) as an aware UTC datetime."""
    if value is None or value == "":
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        raise InvalidRequest(
            ["query", name], "not an ISO-8601 datetime, e.g. 2026-01-31T12:00:00Z"
        ) from None


def parse_level(value: str | None) -> Level | None:
    if value is None or value == "":
        return None
    try:
        return Level.parse(value)
    except ValueError:
        raise InvalidRequest(
            ["query", "min_level"], "must be DEBUG, INFO, WARN, WARNING or ERROR"
        ) from None


def parse_statuses(values: Iterable[str]) -> list[str]:
    """``?status=a&status=b`` and ``?status=a,b`` alike, each checked against JobStatus."""
    statuses: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name not in _LISTABLE_STATUSES:
                allowed = ", ".join(sorted(_LISTABLE_STATUSES))
                raise InvalidRequest(["query", "status"], f"unknown status: use {allowed}")
            if name not in statuses:
                statuses.append(name)
    return statuses


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(name: str, cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.urlsafe_b64decode(padded.encode("ascii")).decode()
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidRequest(["query", name], "malformed cursor", status_code=400) from None


def encode_job_cursor(created_at: datetime, job_id: str) -> str:
    """An opaque cursor after the job (created_at, id): base64 of ``<iso>|<id>``."""
    return _b64(f"{created_at.astimezone(UTC).isoformat()}|{job_id}")


def decode_job_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None or cursor == "":
        return None
    moment, sep, job_id = _unb64("cursor", cursor).partition("|")
    if not sep or not job_id or len(job_id) > MAX_TEXT or "\x00" in job_id:
        raise InvalidRequest(["query", "cursor"], "malformed cursor", status_code=400)
    try:
        created = datetime.fromisoformat(moment)
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return created.astimezone(UTC), job_id
    except (ValueError, OverflowError):
        raise InvalidRequest(["query", "cursor"], "malformed cursor", status_code=400) from None


def encode_event_cursor(event_id: int) -> str:
    return _b64(f"e{event_id}")


def decode_event_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    text = _unb64("cursor", cursor)
    digits = text[1:]
    if not text.startswith("e") or not (digits.isascii() and digits.isdigit()) or len(text) > 20:
        raise InvalidRequest(["query", "cursor"], "malformed cursor", status_code=400)
    value = int(digits)
    if value > MAX_BIGINT:
        raise InvalidRequest(["query", "cursor"], "malformed cursor", status_code=400)
    return value
