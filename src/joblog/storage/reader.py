"""The one read path: statements of :mod:`joblog.storage.queries`, run on a read engine.

The read engine is a plain SQLAlchemy engine in AUTOCOMMIT, without pre-ping and
without reset-on-return, over a bounded pool: a read is one round trip, and every
connection goes back to the pool (nothing is kept per thread, so nothing leaks when a
worker thread retires). A read that meets a connection broken while it idled in the
pool is tried once more on a new one: reads are idempotent, and the failed attempt
invalidated the pool's older connections.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from joblog.exceptions import JobLogError, StorageUnavailable
from joblog.model import Job, LegacyFailoverJob, LogEvent, Step
from joblog.storage import queries
from joblog.storage.dialects import Backend
from joblog.storage.dialects.base import Rows
from joblog.storage.engine import storage_errors
from joblog.storage.queries import EventFilter, JobFilter
from joblog.storage.replica import ReplicaRoute
from joblog.storage.rows import event_from_row, job_from_row, legacy_from_row, step_from_row

__all__ = ["Reader"]

T = TypeVar("T")
_ALL_JOBS = JobFilter()
_ALL_EVENTS = EventFilter()


def _a_hit(rows: Rows) -> bool:
    """A :func:`queries.first_hit` statement's answer names something."""
    return bool(rows) and rows[0]["hit"] is not None


class Reader:
    """Read-only queries, as model objects.

    With a ``replica`` route (:mod:`joblog.storage.replica`), reads go to a PostgreSQL
    replica when it may answer them, else to ``engine`` (the primary's read pool). A read
    whose answer may mean "not found" passes ``found`` (does the answer hold it?) and is
    asked of the primary when the replica's does not: replica lag never makes a new job
    a 404.
    """

    def __init__(
        self, engine: sa.Engine, backend: Backend, *, replica: ReplicaRoute | None = None
    ) -> None:
        self.engine = engine
        self.backend = backend
        self.replica = replica

    # -- the executor ------------------------------------------------------------------------

    def _run(
        self, work: Callable[[sa.Connection], T], *, found: Callable[[T], bool] | None = None
    ) -> T:
        route = self.replica
        if route is not None and route.usable():
            try:
                result = self._attempt(route.engine, work)
            except JobLogError as error:
                route.failed(error)
            else:
                if found is None or found(result):
                    route.stats.replica_reads += 1
                    return result
                route.missed()
            route.stats.primary_reads += 1
        elif route is not None:
            route.stats.primary_reads += 1
        return self._attempt(self.engine, work)

    @staticmethod
    def _attempt(engine: sa.Engine, work: Callable[[sa.Connection], T]) -> T:
        for attempt in (1, 2):
            try:
                with storage_errors("reading"), engine.connect() as conn:
                    return work(conn)
            except StorageUnavailable as error:
                cause = error.__cause__
                stale = isinstance(cause, sa.exc.DBAPIError) and cause.connection_invalidated
                if attempt == 2 or not stale:
                    raise
        raise AssertionError("unreachable")

    def rows(
        self,
        statement: sa.Executable,
        params: Mapping[str, Any] | None = None,
        *,
        found: Callable[[Rows], bool] | None = None,
    ) -> Rows:
        """Run one statement; its rows as mappings. ``found``: whether the rows hold what
        was looked for (see the class doc)."""
        return self._run(
            lambda conn: list(conn.execute(statement, dict(params or {})).mappings()),
            found=found,
        )

    def rows_many(self, statements: Sequence[tuple[sa.Executable, dict[str, Any]]]) -> list[Rows]:
        """Several statements, in one round trip where the backend can (PostgreSQL)."""
        return self._run(lambda conn: self.backend.run_many(conn, statements))

    # -- resolution ----------------------------------------------------------------------------

    def first_hit(self, statement: sa.Select[Any], any_id: str) -> str | None:
        """The ``hit`` of a :func:`queries.first_hit` statement for ``any_id``."""
        found = self.rows(statement, {"any_id": any_id}, found=_a_hit)
        return found[0]["hit"] if found else None

    def first_hit_with_job(
        self, statement: sa.Select[Any], any_id: str
    ) -> tuple[str | None, Job | None]:
        """The hit of a :func:`queries.first_hit_with_job` statement, and the job row."""
        found = self.rows(statement, {"any_id": any_id}, found=_a_hit)
        if not found or found[0]["hit"] is None:
            return None, None
        row = found[0]
        return row["hit"], (job_from_row(row) if row["id"] is not None else None)

    # -- one job -------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Job | None:
        found = self.rows(queries.JOB, {"job_id": job_id}, found=bool)
        return job_from_row(found[0]) if found else None

    def get_failover_job(self, job_id: str) -> LegacyFailoverJob | None:
        found = self.rows(queries.FAILOVER_JOB, {"job_id": job_id}, found=bool)
        return legacy_from_row(found[0]) if found else None

    def running_job_with_external_id(self, external_job_id: str) -> str | None:
        found = self.rows(queries.RUNNING_WITH_EXTERNAL_ID, {"external_job_id": external_job_id})
        return str(found[0]["id"]) if found else None

    def steps_of(self, job_id: str) -> list[Step]:
        return [step_from_row(row) for row in self.rows(queries.STEPS_OF, {"job_id": job_id})]

    def children_of(self, job_id: str) -> list[Job]:
        return [job_from_row(row) for row in self.rows(queries.CHILDREN_OF, {"job_id": job_id})]

    def state_of(self, job_id: str) -> tuple[Job | None, list[Step], list[Job]]:
        """The job, its steps and its children (what a live view's state is made of)."""
        job_rows, step_rows, child_rows = self.rows_many(
            [
                (queries.JOB, {"job_id": job_id}),
                (queries.STEPS_OF, {"job_id": job_id}),
                (queries.CHILDREN_OF, {"job_id": job_id}),
            ]
        )
        return (
            job_from_row(job_rows[0]) if job_rows else None,
            [step_from_row(row) for row in step_rows],
            [job_from_row(row) for row in child_rows],
        )

    def summary_details(
        self, job_id: str, recent: int = 20
    ) -> tuple[list[Step], list[LogEvent], list[Job]]:
        """What a summary shows besides the job: its steps, newest events, children."""
        step_rows, event_rows, child_rows = self.rows_many(
            [
                (queries.STEPS_OF, {"job_id": job_id}),
                (queries.RECENT_EVENTS, {"job_id": job_id, "limit": recent}),
                (queries.CHILDREN_OF, {"job_id": job_id}),
            ]
        )
        return (
            [step_from_row(row) for row in step_rows],
            [event_from_row(row) for row in reversed(event_rows)],
            [job_from_row(row) for row in child_rows],
        )

    def recent_events(
        self, *, job_id: str | None = None, external_job_id: str | None = None, limit: int = 20
    ) -> list[LogEvent]:
        """The newest ``limit`` events of a job (by job_id or external ID), oldest first."""
        if job_id is not None:
            found = self.rows(queries.RECENT_EVENTS, {"job_id": job_id, "limit": limit})
        elif external_job_id is not None:
            found = self.rows(
                queries.EVENTS_BY_EXTERNAL_ID, {"external_job_id": external_job_id, "limit": limit}
            )
        else:
            raise ValueError("recent_events needs job_id or external_job_id")
        return [event_from_row(row) for row in reversed(found)]

    def recent_durations(self, job_type: str, operation: str, limit: int = 50) -> list[float]:
        """Durations in seconds of the newest completed jobs of this type and operation."""
        found = self.rows(
            queries.RECENT_DURATIONS, {"job_type": job_type, "operation": operation, "limit": limit}
        )
        return [(row["completed_at"] - row["started_at"]).total_seconds() for row in found]

    # -- listings ------------------------------------------------------------------------------

    def list_jobs(
        self,
        filters: JobFilter = _ALL_JOBS,
        *,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
        sort: str = "newest",
    ) -> list[Job]:
        """Jobs newest (``sort="oldest"``: oldest) first; ``before`` is the (created_at, id)
        of the previous page's last."""
        statement = queries.job_list(filters, limit, before, sort)
        return [job_from_row(row) for row in self.rows(statement)]

    def list_events(
        self,
        *,
        job_id: str | None = None,
        external_job_id: str | None = None,
        filters: EventFilter = _ALL_EVENTS,
        after_id: int | None = None,
        before_id: int | None = None,
        newest_first: bool = False,
        limit: int = 200,
    ) -> list[LogEvent]:
        """A job's events (or, with neither ID, a trace's: ``filters.trace_id``) in
        insertion order, between ``after_id`` and ``before_id``; ``newest_first``: the
        ``limit`` newest of them (still returned oldest first)."""
        statement = queries.event_list(
            job_id=job_id,
            external_job_id=external_job_id,
            filters=filters,
            after_id=after_id,
            limit=limit,
            before_id=before_id,
            newest_first=newest_first,
        )
        found = [event_from_row(row) for row in self.rows(statement)]
        return found[::-1] if newest_first else found

    def job_counts(self) -> list[tuple[str, str, int]]:
        """(job_type, status, number of jobs) for every pair present."""
        return [
            (str(row["job_type"]), str(row["status"]), int(row["jobs"]))
            for row in self.rows(queries.JOB_COUNTS)
        ]

    def session_token(self, session_hash: str, now: datetime) -> str | None:
        """The token fingerprint of an unexpired dashboard session, or None."""
        found = self.rows(queries.SESSION, {"session_hash": session_hash, "now": now})
        return str(found[0]["token_fingerprint"]) if found else None

    def ping(self) -> None:
        self.rows(queries.PING)
