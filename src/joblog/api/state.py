"""A job's state as validators: the stream's state token and the status routes' ETag.

Both are read from one row: the job's own columns and its
:func:`~joblog.storage.queries.job_state` columns (newest event ID, steps and finished
steps, children, finished children and their latest update), which the resolving
round trip already returns. So a poller's ``If-None-Match`` is answered 304 without
reading the steps, events or children and without building a summary.

* :func:`state_token`: a short hash of what the live stream's state events report (the
  job's status, percent, error and end; its steps; its children). The stream's event
  IDs are ``<newest event id>.<state token>``.
* :func:`entity_tag`: ``W/"<newest event id>.<state token>.<digest>"``: the stream's ID
  of the state plus a digest of the job's other columns (heartbeat, metadata, cancel
  request, ...), so that a 304 never hides a change the body would show. Weak, because
  ``elapsed_seconds`` and ``eta_seconds`` move with the clock between two changes.

Legacy failover rows and events-only IDs have no job row: their tag is a digest of the
body itself (:func:`body_tag`), or of the legacy row (:func:`legacy_token`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from joblog.model import LegacyFailoverJob
from joblog.storage.queries import STATE_COLUMNS
from joblog.storage.schema import job_tracking

__all__ = [
    "MAX_IF_NONE_MATCH",
    "body_tag",
    "entity_tag",
    "legacy_token",
    "list_tag",
    "newest_event",
    "not_modified",
    "state_token",
]

#: The job columns the stream's progress events report (a cancel request among them: the
#: dashboard shows it as it lands).
_REPORTED = ("status", "percent_complete", "error_message", "completed_at", "cancel_requested")
#: Longer ``If-None-Match`` headers are ignored (answered in full, never refused).
MAX_IF_NONE_MATCH = 8192
_MAX_TAGS = 64
#: The state columns in the token (the newest event ID is the stream's cursor instead).
_MARKS = STATE_COLUMNS[1:]


def _digest(parts: Iterable[Any], size: int = 6) -> str:
    text = repr(tuple(parts))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=size).hexdigest()


def state_token(state: Mapping[str, Any]) -> str:
    """The stream's token of a job's state, from a row with its state columns."""
    return _digest([*(state[name] for name in _REPORTED), *(state[c] for c in _MARKS)])


def newest_event(state: Mapping[str, Any]) -> int:
    """The job's newest log event ID (0: none yet)."""
    return int(state[STATE_COLUMNS[0]] or 0)


#: The job columns the tag's last part covers (all but the reported ones).
_OTHER_COLUMNS = tuple(
    column.name for column in job_tracking.columns if column.name not in _REPORTED
)


def entity_tag(state: Mapping[str, Any]) -> str:
    """The weak ETag of everything a job's status body shows (see the module doc)."""
    rest = _digest([tuple(state[name] for name in _OTHER_COLUMNS)])
    return f'W/"{newest_event(state)}.{state_token(state)}.{rest}"'


def legacy_token(legacy: LegacyFailoverJob) -> str:
    """The state token of a legacy failover row: every column of it."""
    return _digest(dataclasses.astuple(legacy))


def body_tag(body: bytes) -> str:
    """A weak ETag for a body without a job row behind it (events-only IDs, legacy rows)."""
    return f'W/"b.{hashlib.blake2b(body, digest_size=9).hexdigest()}"'


def list_tag(items: Iterable[Any]) -> str:
    """A weak ETag for a page of jobs: a digest of every field of every job on it."""
    return f'W/"l.{_digest(items, size=9)}"'


def _opaque(tag: str) -> str:
    """The quoted part of an entity tag, weak or strong (RFC 9110: weak comparison)."""
    return tag[2:] if tag.startswith("W/") else tag


def not_modified(if_none_match: str | None, tag: str) -> bool:
    """True when ``If-None-Match`` names ``tag`` (weakly) or is ``*``.

    A header that is too long, or entries that are not entity tags, never match: the
    client then gets the full body, as if it had sent none.
    """
    if not if_none_match or len(if_none_match) > MAX_IF_NONE_MATCH:
        return False
    wanted = _opaque(tag)
    for count, item in enumerate(if_none_match.split(",")):
        if count >= _MAX_TAGS:
            return False
        candidate = item.strip()
        if candidate == "*":
            return True
        candidate = _opaque(candidate)
        if len(candidate) >= 2 and candidate[0] == candidate[-1] == '"' and candidate == wanted:
            return True
    return False
