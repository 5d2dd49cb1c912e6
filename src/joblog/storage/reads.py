"""Reading: the queries behind resolution, summaries, listings and the log tail.

Rows become the plain dataclasses of :mod:`joblog.model`; timestamps come back as
aware UTC datetimes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

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
from joblog.storage import schema
from joblog.storage.engine import storage_errors

__all__ = ["EventFilter", "JobFilter", "ReadQueries"]

jobs = schema.job_tracking
steps = schema.job_steps
events = schema.log_events
failover = schema.failover_jobs


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Filters for listing jobs; every field is optional."""

    status: Sequence[str] = ()
    job_type: str | None = None
    context_id: str | None = None
    owner: str | None = None
    external_id_prefix: str | None = None
    parent_job_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Filters for a job's log events; every field is optional."""

    min_level: Level | None = None
    step_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    contains: str | None = None


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
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return {"raw": value}
    return value


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
    )


_LEVELS_AT_LEAST = {
    level: [other.value for other in Level if other.rank >= level.rank] for level in Level
}


class ReadQueries:
    """Read-only queries; mixed into :class:`joblog.storage.store.Store`."""

    engine: sa.Engine

    def _all(self, query: sa.Select[Any]) -> list[sa.RowMapping]:
        with storage_errors("reading"), self.engine.connect() as conn:
            return list(conn.execute(query).mappings())

    def _first(self, query: sa.Select[Any]) -> sa.RowMapping | None:
        with storage_errors("reading"), self.engine.connect() as conn:
            return conn.execute(query).mappings().first()

    def job_by_any_id(self, any_id: str) -> tuple[Job, int] | None:
        """Tiers 1 and 2 of resolution: (the job, 1) by UUID, else (newest job, 2) by
        external ID, else None."""
        job = self.get_job(any_id)
        if job is not None:
            return job, 1
        job = self.newest_job_by_external_id(any_id)
        return (job, 2) if job is not None else None

    def summary_details(
        self, job_id: str, recent: int = 20
    ) -> tuple[list[Step], list[LogEvent], list[Job]]:
        """What a summary shows besides the job: its steps, newest events, children."""
        return (
            self.steps_of(job_id),
            self.recent_events(job_id=job_id, limit=recent),
            self.children_of(job_id),
        )

    def get_job(self, job_id: str) -> Job | None:
        row = self._first(sa.select(jobs).where(jobs.c.id == job_id))
        return job_from_row(row) if row else None

    def newest_job_by_external_id(self, external_job_id: str) -> Job | None:
        row = self._first(
            sa.select(jobs)
            .where(jobs.c.external_job_id == external_job_id)
            .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
            .limit(1)
        )
        return job_from_row(row) if row else None

    def running_job_with_external_id(self, external_job_id: str) -> str | None:
        row = self._first(
            sa.select(jobs.c.id)
            .where(
                jobs.c.external_job_id == external_job_id,
                jobs.c.status.in_([JobStatus.PENDING.value, JobStatus.RUNNING.value]),
            )
            .limit(1)
        )
        return str(row["id"]) if row else None

    def job_id_from_events(self, external_job_id: str) -> tuple[bool, str | None]:
        """(any event carries this external ID, the newest such event's job_id)."""
        row = self._first(
            sa.select(events.c.job_id)
            .where(events.c.external_job_id == external_job_id)
            .order_by(events.c.id.desc())
            .limit(1)
        )
        if row is None:
            return False, None
        return True, row["job_id"]

    def get_failover_job(self, job_id: str) -> LegacyFailoverJob | None:
        row = self._first(sa.select(failover).where(failover.c.job_id == job_id))
        return legacy_from_row(row) if row else None

    def steps_of(self, job_id: str) -> list[Step]:
        rows = self._all(sa.select(steps).where(steps.c.job_id == job_id).order_by(steps.c.seq))
        return [step_from_row(row) for row in rows]

    def children_of(self, job_id: str) -> list[Job]:
        rows = self._all(
            sa.select(jobs).where(jobs.c.parent_job_id == job_id).order_by(jobs.c.created_at)
        )
        return [job_from_row(row) for row in rows]

    def recent_events(
        self, *, job_id: str | None = None, external_job_id: str | None = None, limit: int = 20
    ) -> list[LogEvent]:
        """The newest ``limit`` events of a job (by job_id or external ID), oldest first."""
        query = sa.select(events).order_by(events.c.id.desc()).limit(limit)
        if job_id is not None:
            query = query.where(events.c.job_id == job_id)
        elif external_job_id is not None:
            query = query.where(events.c.external_job_id == external_job_id)
        else:
            raise ValueError("recent_events needs job_id or external_job_id")
        return [event_from_row(row) for row in reversed(self._all(query))]

    def list_jobs(
        self,
        filters: JobFilter = JobFilter(),
        *,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
    ) -> list[Job]:
        """Jobs newest first; ``before`` is the (created_at, id) of the previous page's last."""
        query = sa.select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)
        if filters.status:
            query = query.where(jobs.c.status.in_(list(filters.status)))
        if filters.job_type:
            query = query.where(jobs.c.job_type == filters.job_type)
        if filters.context_id:
            query = query.where(jobs.c.context_id == filters.context_id)
        if filters.owner:
            query = query.where(jobs.c.owner == filters.owner)
        if filters.parent_job_id:
            query = query.where(jobs.c.parent_job_id == filters.parent_job_id)
        if filters.external_id_prefix:
            query = query.where(
                jobs.c.external_job_id.startswith(filters.external_id_prefix, autoescape=True)
            )
        if filters.since:
            query = query.where(jobs.c.created_at >= to_naive_utc(filters.since))
        if filters.until:
            query = query.where(jobs.c.created_at < to_naive_utc(filters.until))
        if before is not None:
            created, job_id = to_naive_utc(before[0]), before[1]
            query = query.where(
                sa.or_(
                    jobs.c.created_at < created,
                    sa.and_(jobs.c.created_at == created, jobs.c.id < job_id),
                )
            )
        return [job_from_row(row) for row in self._all(query)]

    def list_events(
        self,
        *,
        job_id: str | None = None,
        external_job_id: str | None = None,
        filters: EventFilter = EventFilter(),
        after_id: int | None = None,
        limit: int = 200,
    ) -> list[LogEvent]:
        """A job's events in insertion order, after ``after_id``."""
        query = sa.select(events).order_by(events.c.id).limit(limit)
        if job_id is not None:
            query = query.where(events.c.job_id == job_id)
        elif external_job_id is not None:
            query = query.where(events.c.external_job_id == external_job_id)
        else:
            raise ValueError("list_events needs job_id or external_job_id")
        if after_id is not None:
            query = query.where(events.c.id > after_id)
        if filters.min_level is not None and filters.min_level is not Level.DEBUG:
            query = query.where(events.c.level.in_(_LEVELS_AT_LEAST[filters.min_level]))
        if filters.step_id is not None:
            query = query.where(events.c.step_id == filters.step_id)
        if filters.since is not None:
            query = query.where(events.c.ts >= to_naive_utc(filters.since))
        if filters.until is not None:
            query = query.where(events.c.ts < to_naive_utc(filters.until))
        if filters.contains:
            query = query.where(events.c.message.contains(filters.contains, autoescape=True))
        return [event_from_row(row) for row in self._all(query)]

    def recent_durations(self, job_type: str, operation: str, limit: int = 50) -> list[float]:
        """Durations in seconds of the newest completed jobs of this type and operation."""
        rows = self._all(
            sa.select(jobs.c.started_at, jobs.c.completed_at)
            .where(
                jobs.c.job_type == job_type,
                jobs.c.operation == operation,
                jobs.c.status == JobStatus.COMPLETED.value,
                jobs.c.started_at.is_not(None),
                jobs.c.completed_at.is_not(None),
            )
            .order_by(jobs.c.created_at.desc())
            .limit(limit)
        )
        return [(row["completed_at"] - row["started_at"]).total_seconds() for row in rows]

    def ping(self) -> None:
        with storage_errors("checking the connection"), self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
