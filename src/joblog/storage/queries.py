"""Every read statement joblog runs, each written once in SQLAlchemy Core.

The resolution tiers' probes are here too (``TIER_*``); :mod:`joblog.resolve` declares
their order, and :func:`first_hit` / :func:`first_hit_with_job` build the one statement
that tries them in that order. Statements with a fixed shape are module constants, so
SQLAlchemy compiles each once; listings are built from their filters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from joblog.model import OPEN_JOB_STATUSES, JobStatus, Level, LogEvent
from joblog.storage import schema
from joblog.storage.dialects import KeyRange, Rare
from joblog.storage.rows import to_naive_utc

__all__ = [
    "CHILDREN_OF",
    "EVENTS_BY_EXTERNAL_ID",
    "FAILOVER_JOB",
    "HIT_SEPARATOR",
    "JOB",
    "JOB_COUNTS",
    "JOB_SORTS",
    "JOB_WITH_STATE",
    "PING",
    "RECENT_DURATIONS",
    "RECENT_EVENTS",
    "RUNNING_WITH_EXTERNAL_ID",
    "SESSION",
    "STATE_COLUMNS",
    "STEPS_OF",
    "TIER_CONTEXT_ID",
    "TIER_EXTERNAL_JOB_ID",
    "TIER_FAILOVER_JOBS",
    "TIER_JOB_ID",
    "TIER_LOG_EVENTS",
    "EventFilter",
    "JobFilter",
    "by_key",
    "event_list",
    "events_of",
    "first_hit",
    "first_hit_with_job",
    "job_list",
    "job_state",
]

jobs = schema.job_tracking
steps = schema.job_steps
events = schema.log_events
failover = schema.failover_jobs
sessions = schema.dashboard_sessions

_any_id = sa.bindparam("any_id", type_=sa.String)
_job_id = sa.bindparam("job_id", type_=sa.String)
_NEWEST = (jobs.c.created_at.desc(), jobs.c.id.desc())

# -- resolution tiers ----------------------------------------------------------------------
# Each probe selects one text column that is non-NULL exactly when the tier knows
# ``:any_id``: the job's ID, '' for events that name no job, the legacy row's job_id.

TIER_JOB_ID = sa.select(jobs.c.id).where(jobs.c.id == _any_id)
TIER_EXTERNAL_JOB_ID = (
    sa.select(jobs.c.id).where(jobs.c.external_job_id == _any_id).order_by(*_NEWEST).limit(1)
)
TIER_CONTEXT_ID = (
    sa.select(jobs.c.id).where(jobs.c.context_id == _any_id).order_by(*_NEWEST).limit(1)
)


def events_of(key: Any, value: Any, after: Any = None, before: Any = None) -> KeyRange:
    """The events whose ``key`` column (job_id, external_job_id or trace_id) is ``value``, with
    ``after < id < before`` (None: open); order such a statement by :func:`by_key` (see
    KeyRange)."""
    return KeyRange(
        key,
        events.c.id,
        value,
        sa.null() if after is None else after,
        sa.null() if before is None else before,
    )


def by_key(key: Any, *, newest_first: bool = False) -> tuple[Any, Any]:
    """``ORDER BY key, id`` (or both descending) for :func:`events_of`."""
    if newest_first:
        return key.desc(), events.c.id.desc()
    return key, events.c.id


TIER_LOG_EVENTS = (
    sa.select(sa.func.coalesce(events.c.job_id, ""))
    .where(events_of(events.c.external_job_id, _any_id))
    .order_by(*by_key(events.c.external_job_id, newest_first=True))
    .limit(1)
)
TIER_FAILOVER_JOBS = sa.select(failover.c.job_id).where(failover.c.job_id == _any_id)

#: Between a tier's position and what it found, in a hit: ``"2:<job id>"``.
HIT_SEPARATOR = ":"


def first_hit(probes: Sequence[sa.Select[Any]]) -> sa.Select[Any]:
    """One row, one column ``hit``: ``"<position>:<value>"`` of the first probe (1-based)
    that finds ``:any_id``, or NULL.

    COALESCE evaluates its arguments in order and stops at the first non-NULL one, so a
    hit on an early tier never runs the later probes (a long job's events are not read
    to answer a lookup by UUID).
    """
    if not 1 <= len(probes) <= 9:
        raise ValueError("between 1 and 9 tiers")
    tagged = [
        sa.literal(f"{position}{HIT_SEPARATOR}", sa.String) + probe.scalar_subquery()
        for position, probe in enumerate(probes, start=1)
    ]
    hit = tagged[0] if len(tagged) == 1 else sa.func.coalesce(*tagged)
    return sa.select(hit.label("hit"))


def first_hit_with_job(probes: Sequence[sa.Select[Any]]) -> sa.Select[Any]:
    """:func:`first_hit` and, when the hit names a job, that job's row and its
    :func:`job_state`: one round trip."""
    located = first_hit(probes).subquery("located")
    job_id = sa.func.substr(located.c.hit, 3)
    return sa.select(located.c.hit, jobs, *job_state(jobs)).select_from(
        located.outerjoin(jobs, jobs.c.id == job_id)
    )


#: The columns :func:`job_state` adds, in order.
STATE_COLUMNS = (
    "state_newest_event",
    "state_steps",
    "state_finished_steps",
    "state_children",
    "state_finished_children",
    "state_child_change",
)


def job_state(job: Any) -> list[sa.ColumnElement[Any]]:
    """What moves a job's live view besides its own row, for the job row ``job`` of the
    enclosing query: its newest event ID, its steps and finished steps (a step starts
    once and finishes once), its children, finished children and their latest update.
    Each an index probe, so a change is seen without reading the steps, events or
    children themselves (the ETag, the stream's state token, the change hub)."""
    child = jobs.alias("state_child")

    def scalar(column: Any, table: Any, *where: Any) -> sa.ScalarSelect[Any]:
        return sa.select(column).select_from(table).where(*where).scalar_subquery()

    own = steps.c.job_id == job.c.id
    kids = Rare(child.c.parent_job_id == job.c.id)
    columns = [
        scalar(sa.func.max(events.c.id), events, events.c.job_id == job.c.id),
        scalar(sa.func.count(steps.c.id), steps, own),
        scalar(sa.func.count(steps.c.completed_at), steps, own),
        scalar(sa.func.count(child.c.id), child, kids),
        scalar(sa.func.count(child.c.completed_at), child, kids),
        scalar(sa.func.max(child.c.updated_at), child, kids),
    ]
    return [column.label(name) for column, name in zip(columns, STATE_COLUMNS, strict=True)]


# -- one job ---------------------------------------------------------------------------------

JOB = sa.select(jobs).where(jobs.c.id == _job_id)
JOB_WITH_STATE = sa.select(jobs, *job_state(jobs)).where(jobs.c.id == _job_id)
STEPS_OF = sa.select(steps).where(steps.c.job_id == _job_id).order_by(steps.c.seq)
RECENT_EVENTS = (
    sa.select(events)
    .where(events_of(events.c.job_id, _job_id))
    .order_by(*by_key(events.c.job_id, newest_first=True))
    .limit(sa.bindparam("limit", type_=sa.Integer))
)
EVENTS_BY_EXTERNAL_ID = (
    sa.select(events)
    .where(events_of(events.c.external_job_id, sa.bindparam("external_job_id", type_=sa.String)))
    .order_by(*by_key(events.c.external_job_id, newest_first=True))
    .limit(sa.bindparam("limit", type_=sa.Integer))
)
CHILDREN_OF = (
    sa.select(jobs).where(Rare(jobs.c.parent_job_id == _job_id)).order_by(jobs.c.created_at)
)
FAILOVER_JOB = sa.select(failover).where(failover.c.job_id == _job_id)
RUNNING_WITH_EXTERNAL_ID = (
    sa.select(jobs.c.id)
    .where(
        jobs.c.external_job_id == sa.bindparam("external_job_id", type_=sa.String),
        jobs.c.status.in_(OPEN_JOB_STATUSES),
    )
    .order_by(jobs.c.created_at, jobs.c.id)  # the first holder, when the origin has several
    .limit(1)
)
RECENT_DURATIONS = (
    sa.select(jobs.c.started_at, jobs.c.completed_at)
    .where(
        jobs.c.job_type == sa.bindparam("job_type", type_=sa.String),
        jobs.c.operation == sa.bindparam("operation", type_=sa.String),
        jobs.c.status == JobStatus.COMPLETED.value,
        jobs.c.started_at.is_not(None),
        jobs.c.completed_at.is_not(None),
    )
    .order_by(jobs.c.created_at.desc())
    .limit(sa.bindparam("limit", type_=sa.Integer))
)
PING = sa.select(sa.literal(1))
#: How many jobs of each type are in each status (the ``joblog_jobs`` gauges).
JOB_COUNTS = sa.select(jobs.c.job_type, jobs.c.status, sa.func.count().label("jobs")).group_by(
    jobs.c.job_type, jobs.c.status
)
#: A dashboard session that has not expired: which token signed it in.
SESSION = sa.select(sessions.c.token_fingerprint).where(
    sessions.c.session_hash == sa.bindparam("session_hash", type_=sa.String),
    sessions.c.expires_at > sa.bindparam("now", type_=sa.DateTime),
)


# -- listings --------------------------------------------------------------------------------


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
    #: True: only jobs without a parent (child jobs, e.g. one per volume, left out).
    top_level: bool = False


#: How a job list may be ordered: by creation time, newest or oldest first.
JOB_SORTS = ("newest", "oldest")


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Filters for log events; every field is optional. ``trace_id`` (32 lowercase hex
    digits) keeps the events of one OpenTelemetry trace."""

    min_level: Level | None = None
    #: Events of any of these steps (empty: of any step or none).
    step_ids: tuple[int, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    contains: str | None = None
    #: OpenTelemetry trace ID (32 lowercase hex digits): only the events of that trace.
    trace_id: str | None = None

    def matches(self, event: LogEvent) -> bool:
        """The same test in Python, for events already read (a live tail's new lines)."""
        if self.min_level is not None and event.level.rank < self.min_level.rank:
            return False
        if self.step_ids and event.step_id not in self.step_ids:
            return False
        if self.since is not None and event.ts < self.since:
            return False
        if self.until is not None and event.ts >= self.until:
            return False
        if self.trace_id is not None and event.trace_id != self.trace_id:
            return False
        return not self.contains or self.contains.lower() in event.message.lower()


_LEVELS_AT_LEAST = {
    level: [other.value for other in Level if other.rank >= level.rank] for level in Level
}


def job_list(
    filters: JobFilter,
    limit: int,
    before: tuple[datetime, str] | None = None,
    sort: str = "newest",
) -> sa.Select[Any]:
    """Jobs newest (or oldest) first; ``before`` is the (created_at, id) of the previous
    page's last row: the page goes on past it in the same order."""
    if sort not in JOB_SORTS:
        raise ValueError(f"sort must be one of {JOB_SORTS}")
    oldest = sort == "oldest"
    order = (jobs.c.created_at, jobs.c.id) if oldest else _NEWEST
    query = sa.select(jobs).order_by(*order).limit(limit)
    if filters.status:
        query = query.where(jobs.c.status.in_(list(filters.status)))
    for column, value in (
        (jobs.c.job_type, filters.job_type),
        (jobs.c.context_id, filters.context_id),
        (jobs.c.owner, filters.owner),
        (jobs.c.parent_job_id, filters.parent_job_id),
    ):
        if value:
            query = query.where(column == value)
    if filters.top_level:
        query = query.where(jobs.c.parent_job_id.is_(None))
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
        if oldest:
            past = sa.or_(
                jobs.c.created_at > created,
                sa.and_(jobs.c.created_at == created, jobs.c.id > job_id),
            )
        else:
            past = sa.or_(
                jobs.c.created_at < created,
                sa.and_(jobs.c.created_at == created, jobs.c.id < job_id),
            )
        query = query.where(past)
    return query


def event_list(
    *,
    job_id: str | None,
    external_job_id: str | None,
    filters: EventFilter,
    after_id: int | None,
    limit: int,
    before_id: int | None = None,
    newest_first: bool = False,
) -> sa.Select[Any]:
    """A job's events (by job, else by external ID; with neither, a trace's events:
    ``filters.trace_id``) in insertion order, between ``after_id`` and ``before_id``
    (both exclusive); ``newest_first`` takes the ``limit`` newest of them (a page of
    older events, read backwards)."""
    if job_id is not None:
        key, value = events.c.job_id, job_id
    elif external_job_id is not None:
        key, value = events.c.external_job_id, external_job_id
    elif filters.trace_id is not None:
        key, value = events.c.trace_id, filters.trace_id
    else:
        raise ValueError("event_list needs job_id, external_job_id or a trace_id filter")
    query = (
        sa.select(events)
        .where(events_of(key, value, after_id, before_id))
        .order_by(*by_key(key, newest_first=newest_first))
        .limit(limit)
    )
    if filters.min_level is not None and filters.min_level is not Level.DEBUG:
        query = query.where(events.c.level.in_(_LEVELS_AT_LEAST[filters.min_level]))
    if filters.step_ids:
        query = query.where(events.c.step_id.in_(filters.step_ids))
    if filters.trace_id is not None:
        query = query.where(events.c.trace_id == filters.trace_id)
    if filters.since is not None:
        query = query.where(events.c.ts >= to_naive_utc(filters.since))
    if filters.until is not None:
        query = query.where(events.c.ts < to_naive_utc(filters.until))
    if filters.contains:
        # Case-insensitive on every backend (PostgreSQL's LIKE alone is not); % _ / literal.
        query = query.where(events.c.message.icontains(filters.contains, autoescape=True))
    if filters.trace_id is not None:
        query = query.where(events.c.trace_id == filters.trace_id)
    return query
