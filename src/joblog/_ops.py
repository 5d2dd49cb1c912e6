"""What the batch writer carries: row changes in order, and the sink that applies them.

The in-process tracker and the HTTP client both queue these; the database store and
the HTTP event shipper both implement :class:`Sink`. Nothing here knows SQL or HTTP, so
importing the client never loads SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

__all__ = [
    "EVENT_COLUMNS",
    "EventRow",
    "InsertEvents",
    "InsertJob",
    "InsertStep",
    "Op",
    "Sink",
    "UpdateJob",
    "UpdateStep",
    "one_by_one",
]

#: Column order of an :data:`EventRow`.
EVENT_COLUMNS = (
    "job_id",
    "step_id",
    "external_job_id",
    "level",
    "message",
    "attrs",
    "ts",
    "trace_id",
    "span_id",
)

#: (job_id, step_id, external_job_id, level, message, attrs as JSON text or None, naive UTC
#: ts, OpenTelemetry trace_id and span_id as lowercase hex or None)
EventRow = tuple[
    str | None, int | None, str | None, str, str, str | None, datetime, str | None, str | None
]


@dataclass(frozen=True, slots=True)
class InsertJob:
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UpdateJob:
    job_id: str
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class InsertStep:
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UpdateStep:
    step_id: int
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class InsertEvents:
    rows: list[EventRow]


Op = InsertJob | UpdateJob | InsertStep | UpdateStep | InsertEvents


def one_by_one(ops: Sequence[Op]) -> list[Op]:
    """``ops`` with every event an op of its own, in order: what is stored one by one when
    a batch fails. The writer and ``joblog drain`` key the N-th of them ``<batch key>:N``,
    so a batch split by one and shipped again by the other is stored once."""
    single: list[Op] = []
    for op in ops:
        if isinstance(op, InsertEvents):
            single.extend(InsertEvents([row]) for row in op.rows)
        else:
            single.append(op)
    return single


class Sink(Protocol):
    """Where a batch writer sends its batches: a database, or a joblog server."""

    def apply_batch(self, ops: Sequence[Op], batch_key: str | None = None) -> bool:
        """Apply ``ops`` atomically; False when ``batch_key`` was applied before.

        Raises :class:`~joblog.exceptions.StorageError` (``transient`` says whether the
        same batch may succeed later) and nothing else.
        """
        ...
