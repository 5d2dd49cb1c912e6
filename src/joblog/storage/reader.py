"""The one read path: statements of :mod:`joblog.storage.queries`, run on a read engine.

The read engine is a plain SQLAlchemy engine in AUTOCOMMIT, without pre-ping and
without reset-on-return, over a bounded pool: a read is one round trip, and every
connection goes back to the pool (nothing is kept per thread, so nothing leaks when a
worker thread retires). A read that meets a connection broken while it idled in the
pool is tried once more on a new one: reads are idempotent, and the failed attempt
invalidated the pool's older connections.

The hot reads of a status request (resolution with the job's state, a summary's
details, a live view's state) take a faster lane: each statement is compiled once and
run on the pooled connection's driver cursor, and the driver's rows become plain dicts
(:func:`~joblog.storage.rows.plain_rows`); SQLAlchemy's per-execution machinery cost
several times the query itself on SQLite. Only statements whose parameters are text or
integers go there (no bind conversion is applied).
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
from joblog.storage.engine import is_storage_error, storage_errors, translate
from joblog.storage.queries import EventFilter, JobFilter
from joblog.storage.replica import ReplicaRoute
from joblog.storage.rows import (
    event_from_row,
    job_from_row,
    legacy_from_row,
    plain_rows,
    step_from_row,
)

__all__ = ["Reader"]

T = TypeVar("T")
_ALL_JOBS = JobFilter()
_ALL_EVENTS = EventFilter()
#: A row of the fast lane: column name to plain value.
PlainRow = dict[str, Any]


class _Compiled:
    """A statement's SQL for one dialect and how to order its parameters."""

    __slots__ = ("defaults", "names", "sql")

    def __init__(self, statement: sa.Executable, dialect: sa.Dialect) -> None:
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        self.sql = str(compiled)
        if "POSTCOMPILE" in self.sql:
            raise ValueError("the fast lane takes no expanding (IN) parameters")
        self.defaults = dict(compiled.params)
        self.names: tuple[str, ...] | None = (
            tuple(compiled.positiontup) if compiled.positiontup is not None else None
        )

    def args(self, params: Mapping[str, Any]) -> Any:
        merged = {**self.defaults, **params} if params else self.defaults
        if self.names is None:
            return merged
        return tuple(merged[name] for name in self.names)


def _a_hit(rows: Rows) -> bool:
    """A :func:`queries.first_hit` statement's answer names something."""
    return bool(rows) and rows[0]["hit"] is not None


def _a_hit_first(results: list[list[PlainRow]]) -> bool:
    """The fast lane's answer to one :func:`queries.first_hit` statement names something."""
    return _a_hit(results[0])


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
        self._compiled: dict[Any, _Compiled] = {}

    # -- the executor ------------------------------------------------------------------------

    def _run(
        self,
        work: Callable[[Any], T],
        *,
        found: Callable[[T], bool] | None = None,
        attempt: Callable[[sa.Engine, Callable[[Any], T]], T] | None = None,
    ) -> T:
        """``work`` on the replica when it may answer (and, with ``found``, did find what
        was asked), else on the primary; ``attempt`` runs it on an engine's connection
        (default: a SQLAlchemy connection; the fast lane: the driver's)."""
        attempt = attempt or self._attempt
        route = self.replica
        if route is not None and route.usable():
            try:
                result = attempt(route.engine, work)
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
        return attempt(self.engine, work)

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

    @staticmethod
    def _attempt_driver(engine: sa.Engine, work: Callable[[Any], T]) -> T:
        """``work(driver connection)`` on a pooled connection of ``engine``, with
        :meth:`_attempt`'s one retry; a connection that broke is thrown away, never
        handed out again."""
        for attempt in (1, 2):
            try:
                with storage_errors("reading"):
                    connection = engine.raw_connection()
                    try:
                        return work(connection.driver_connection)
                    except Exception as error:
                        if is_storage_error(error) and isinstance(
                            translate(error, "reading"), StorageUnavailable
                        ):
                            connection.invalidate()
                        raise
                    finally:
                        connection.close()
            except StorageUnavailable:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def fetch(
        self,
        statements: Sequence[tuple[sa.Executable, Mapping[str, Any]]],
        *,
        found: Callable[[list[list[PlainRow]]], bool] | None = None,
    ) -> list[list[PlainRow]]:
        """The fast lane (see the module doc): fixed statements' rows as plain dicts, in
        one round trip where the backend can (PostgreSQL's pipeline). ``found`` as for
        :meth:`rows`."""
        prepared = []
        for statement, params in statements:
            compiled = self._compiled.get(statement)
            if compiled is None:
                compiled = self._compiled[statement] = _Compiled(statement, self.engine.dialect)
            prepared.append((compiled.sql, compiled.args(params)))

        def work(driver: Any) -> list[list[PlainRow]]:
            return [plain_rows(n, r) for n, r in self.backend.fetch(driver, prepared)]

        return self._run(work, found=found, attempt=self._attempt_driver)

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
    ) -> tuple[str | None, PlainRow | None]:
        """The hit of a :func:`queries.first_hit_with_job` statement, and the job's row
        with its :func:`~joblog.storage.queries.job_state` columns (None: no job row)."""
        (found,) = self.fetch([(statement, {"any_id": any_id})], found=_a_hit_first)
        if not found or found[0]["hit"] is None:
            return None, None
        row = found[0]
        return row["hit"], (row if row["id"] is not None else None)

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

    def job_with_state(self, job_id: str) -> PlainRow | None:
        """The job's row with its :func:`~joblog.storage.queries.job_state` columns."""
        (found,) = self.fetch(
            [(queries.JOB_WITH_STATE, {"job_id": job_id})], found=lambda rows: bool(rows[0])
        )
        return found[0] if found else None

    def summary_details(
        self, job_id: str, recent: int = 20
    ) -> tuple[list[Step], list[LogEvent], list[Job]]:
        """What a summary shows besides the job: its steps, newest events, children."""
        step_rows, event_rows, child_rows = self.fetch(
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
