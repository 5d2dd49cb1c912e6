"""Rows to the plain dataclasses of :mod:`joblog.model`, in one place for every read.

Timestamps come back as aware UTC datetimes; JSON columns decoded (LONGTEXT JSON of
an adopted MariaDB database arrives as text and is parsed here).

:func:`plain_rows` turns a driver's own rows (the reader's fast path, which skips
SQLAlchemy's result processing) into the values SQLAlchemy would have given: naive UTC
datetimes where SQLite returns text, decoded JSON where SQLite and MariaDB return text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import DATETIME as SQLITE_DATETIME

from joblog.model import (
    Job,
    JobStatus,
    LegacyFailoverJob,
    Level,
    LogEvent,
    PlannedStep,
    Step,
    StepStatus,
)

__all__ = [
    "event_from_row",
    "job_from_row",
    "legacy_from_row",
    "plain_rows",
    "step_from_row",
    "to_naive_utc",
]


def to_naive_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _json(value: Any) -> Any:
    # JSON columns come back decoded, except LONGTEXT attrs of older rows read raw.
    if isinstance(value, str | bytes):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            pass
        try:  # what orjson refuses and Python's json takes (NaN, Infinity)
            return json.loads(value)
        except ValueError:
            return {"raw": value if isinstance(value, str) else value.decode("utf-8", "replace")}
    return value


def _columns_of(kind: type[sa.types.TypeEngine[Any]]) -> frozenset[str]:
    from joblog.storage.schema import metadata

    return frozenset(
        column.name
        for table in metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, kind)
    )


#: Column names whose values are timestamps / JSON in every joblog table.
TIMESTAMP_COLUMNS = _columns_of(sa.DateTime)
JSON_COLUMNS = _columns_of(sa.JSON)
_SQLITE_DIALECT = sa.create_mock_engine("sqlite://", None).dialect
_SQLITE_TIMESTAMP = SQLITE_DATETIME().result_processor(_SQLITE_DIALECT, None)  # type: ignore[no-untyped-call]


def _timestamp(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:  # a format of SQLAlchemy's own that fromisoformat does not read
        assert _SQLITE_TIMESTAMP is not None
        parsed: datetime | None = _SQLITE_TIMESTAMP(text)
        return parsed


def plain_rows(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """A driver's rows as dicts of the values a SQLAlchemy read gives (see the module doc)."""
    stamps = [i for i, name in enumerate(names) if name in TIMESTAMP_COLUMNS]
    documents = [i for i, name in enumerate(names) if name in JSON_COLUMNS]
    out = []
    for row in rows:
        if stamps or documents:
            values = list(row)
            for i in stamps:
                if values[i].__class__ is str:
                    values[i] = _timestamp(values[i])
            for i in documents:
                if isinstance(values[i], str | bytes):
                    values[i] = _json(values[i])
            row = values
        out.append(dict(zip(names, row, strict=True)))
    return out


def job_from_row(row: Mapping[Any, Any]) -> Job:
    planned = _json(row["planned_steps"]) or []
    created = _aware(row["created_at"])
    assert created is not None
    return Job(
        id=row["id"],
        job_type=row["job_type"],
        operation=row["operation"],
        status=JobStatus(row["status"]),
        created_at=created,
        parent_job_id=row["parent_job_id"],
        external_job_id=row["external_job_id"],
        context_id=row["context_id"],
        owner=row["owner"],
        percent_complete=int(row["percent_complete"] or 0),
        metadata=_json(row["metadata"]),
        error_message=row["error_message"],
        started_at=_aware(row["started_at"]),
        completed_at=_aware(row["completed_at"]),
        updated_at=_aware(row["updated_at"]),
        heartbeat_at=_aware(row["heartbeat_at"]),
        cancel_requested=bool(row["cancel_requested"]),
        planned_steps=tuple(
            PlannedStep(str(p["name"]), float(p.get("weight", 1.0))) for p in planned
        ),
    )


def step_from_row(row: Mapping[Any, Any]) -> Step:
    return Step(
        id=int(row["id"]),
        job_id=row["job_id"],
        seq=int(row["seq"]),
        name=row["name"],
        status=StepStatus(row["status"]),
        started_at=_aware(row["started_at"]),
        completed_at=_aware(row["completed_at"]),
        error_message=row["error_message"],
        weight=float(row["weight"]),
        allow_failure=bool(row["allow_failure"]),
    )


def event_from_row(row: Mapping[Any, Any]) -> LogEvent:
    ts = _aware(row["ts"])
    assert ts is not None
    return LogEvent(
        id=int(row["id"]),
        job_id=row["job_id"],
        step_id=row["step_id"],
        external_job_id=row["external_job_id"],
        level=Level(row["level"]),
        message=row["message"],
        attrs=_json(row["attrs"]),
        ts=ts,
        trace_id=row.get("trace_id"),
        span_id=row.get("span_id"),
    )


def legacy_from_row(row: Mapping[Any, Any]) -> LegacyFailoverJob:
    return LegacyFailoverJob(
        id=int(row["id"]),
        job_id=row["job_id"],
        vm_id=row["vm_id"],
        job_type=row["job_type"],
        status=row["status"],
        source_vm_name=row["source_vm_name"],
        error_message=row["error_message"],
        created_at=_aware(row["created_at"]),
        updated_at=_aware(row["updated_at"]),
        completed_at=_aware(row["completed_at"]),
        started_at=_aware(row.get("started_at")),
        destination_vm_id=row.get("destination_vm_id"),
    )
