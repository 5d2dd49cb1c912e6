"""A fast path for the reads behind resolution: one round trip per query.

Through SQLAlchemy's pool a single read costs four round trips on PostgreSQL and MariaDB
(pre-ping, BEGIN, the query, ROLLBACK) plus statement building; the status endpoint runs
five of them per request. Here each thread keeps one autocommit DBAPI connection (made by
the engine, so with the same settings), and the hot statements are compiled once per
dialect from the same SQLAlchemy Core expressions the regular path uses. Rows come back
as plain dicts, so the row-to-model functions of :mod:`joblog.storage.reads` are shared.

A read that finds its kept connection broken is retried once on a new connection (reads
are idempotent), which is what the pool's pre-ping did before. In-memory SQLite (one
shared connection) keeps the regular path.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from joblog.model import Job, LogEvent, Step
from joblog.storage import schema
from joblog.storage.engine import Dialect, is_unavailable, raise_storage_error, storage_errors
from joblog.storage.reads import ReadQueries, event_from_row, job_from_row, step_from_row

__all__ = ["FastReadQueries", "FastReads"]

jobs = schema.job_tracking
steps = schema.job_steps
events = schema.log_events

# Tiers 1-3 of resolution in one statement. COALESCE evaluates its arguments in order and
# stops at the first non-NULL one, so a hit on tier 1 or 2 skips the later probes. A tier-3
# row with a NULL job_id (events without a job row) comes out NULL: not found, as before.
_tier_job = sa.select(jobs.c.id).where(jobs.c.id == sa.bindparam("any_id"))
_tier_external = (
    sa.select(jobs.c.id)
    .where(jobs.c.external_job_id == sa.bindparam("any_id"))
    .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
    .limit(1)
)
_tier_events = (
    sa.select(events.c.job_id)
    .where(events.c.external_job_id == sa.bindparam("any_id"))
    .order_by(events.c.id.desc())
    .limit(1)
)
_tiers = [q.scalar_subquery() for q in (_tier_job, _tier_external, _tier_events)]

# Tiers 1 and 2 with the whole job row in one statement: the UUID match, else the newest
# job holding the external ID; "tier" says which matched.
_by_uuid = sa.select(jobs, sa.literal(1).label("tier")).where(jobs.c.id == sa.bindparam("any_id"))
_by_external = sa.select(
    sa.select(jobs, sa.literal(2).label("tier"))
    .where(jobs.c.external_job_id == sa.bindparam("any_id"))
    .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
    .limit(1)
    .subquery()
)
_job_by_any_id = sa.union_all(_by_uuid, _by_external)

QUERIES: dict[str, sa.Select[Any] | sa.CompoundSelect[Any]] = {
    "job_by_any_id": sa.select(_job_by_any_id.subquery())
    .order_by(sa.literal_column("tier"))
    .limit(1),
    "job": sa.select(jobs).where(jobs.c.id == sa.bindparam("job_id")),
    "newest_job_by_external_id": sa.select(jobs)
    .where(jobs.c.external_job_id == sa.bindparam("external_job_id"))
    .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
    .limit(1),
    "events_job_id": sa.select(events.c.job_id)
    .where(events.c.external_job_id == sa.bindparam("external_job_id"))
    .order_by(events.c.id.desc())
    .limit(1),
    "steps_of": sa.select(steps)
    .where(steps.c.job_id == sa.bindparam("job_id"))
    .order_by(steps.c.seq),
    "recent_events": sa.select(events)
    .where(events.c.job_id == sa.bindparam("job_id"))
    .order_by(events.c.id.desc())
    .limit(sa.bindparam("limit", type_=sa.Integer)),
    "job_id_tiers": sa.select(sa.func.coalesce(*_tiers).label("job_id")),
}


def _children_query(dialect: Dialect) -> sa.Select[Any]:
    match: sa.ColumnElement[bool] = jobs.c.parent_job_id == sa.bindparam("job_id")
    if dialect == "sqlite":
        # After ANALYZE, SQLite counts the NULL parent of every top-level job as one value
        # held by all rows, judges the index useless and walks created_at instead (4 ms at
        # 20k jobs). likelihood() tells it the match is rare, so it uses the index.
        match = sa.func.likelihood(match, sa.literal_column("0.001"))
    return sa.select(jobs).where(match).order_by(jobs.c.created_at)


_DATETIME_COLUMNS = frozenset(
    column.name
    for table in (jobs, steps, events)
    for column in table.c
    if isinstance(column.type, sa.DateTime)
)


class _Compiled:
    """One statement compiled for one dialect, with its parameter layout."""

    __slots__ = ("defaults", "order", "sql")

    def __init__(self, query: sa.Select[Any] | sa.CompoundSelect[Any], dialect: sa.Dialect):
        compiled = query.compile(dialect=dialect)
        self.sql = str(compiled)
        self.defaults = dict(compiled.params)
        self.order: list[str] | None = (
            list(compiled.positiontup or []) if compiled.positional else None
        )

    def params(self, values: Mapping[str, Any]) -> Any:
        merged = {**self.defaults, **values}
        if self.order is None:
            return merged
        return tuple(merged[name] for name in self.order)


class FastReads:
    """Per-thread autocommit connections and the compiled hot statements."""

    def __init__(self, engine: sa.Engine, dialect: Dialect) -> None:
        self._engine = engine
        self._dialect = dialect
        self.enabled = not (dialect == "sqlite" and engine.url.database in (None, "", ":memory:"))
        queries = {**QUERIES, "children_of": _children_query(dialect)}
        self._compiled = {name: _Compiled(q, engine.dialect) for name, q in queries.items()}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[Any] = []  # pool proxies of every kept connection, for close()
        self._closed = False
        dbapi = engine.dialect.loaded_dbapi
        self._driver_errors: tuple[type[BaseException], ...] = (dbapi.Error, OSError)
        self._convert: Callable[[str, Any], Any] = _sqlite_value if dialect == "sqlite" else _same

    def rows(self, name: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run statement ``name`` with ``values``; rows as dicts keyed by column name."""
        names, raw = self.tuples(name, values)
        convert = self._convert
        return [
            {key: convert(key, value) for key, value in zip(names, row, strict=True)} for row in raw
        ]

    def tuples(self, name: str, values: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
        """Run statement ``name``: (column names, rows as the driver returns them)."""
        statement = self._compiled[name]
        params = statement.params(values)
        for attempt in (1, 2):
            proxy, cursor, fresh = self._connection()
            try:
                cursor.execute(statement.sql, params)
                names = [d[0] for d in cursor.description]
                return names, cursor.fetchall()
            except self._driver_errors as error:
                self._discard(proxy)
                if attempt == 1 and not fresh and is_unavailable(error):
                    continue  # the kept connection went stale: once more on a new one
                raise_storage_error(error, "reading")
        raise AssertionError("unreachable")

    def rows_many(
        self, statements: list[tuple[str, Mapping[str, Any]]]
    ) -> list[list[dict[str, Any]]]:
        """Several statements; on PostgreSQL in one round trip (pipeline mode)."""
        if self._dialect != "postgresql":
            return [self.rows(name, values) for name, values in statements]
        compiled = [(self._compiled[name], values) for name, values in statements]
        for attempt in (1, 2):
            proxy, _cursor, fresh = self._connection()
            connection: Any = proxy.dbapi_connection
            try:
                cursors = []
                with connection.pipeline():
                    for statement, values in compiled:
                        cursor = connection.cursor()
                        cursor.execute(statement.sql, statement.params(values))
                        cursors.append(cursor)
                results = []
                for cursor in cursors:
                    names = [d[0] for d in cursor.description]
                    results.append(
                        [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
                    )
                    cursor.close()
                return results
            except self._driver_errors as error:
                self._discard(proxy)
                if attempt == 1 and not fresh and is_unavailable(error):
                    continue
                raise_storage_error(error, "reading")
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            proxies, self._open = self._open, []
        for proxy in proxies:
            with contextlib.suppress(Exception):  # a broken one must not fail close()
                proxy.close()

    def _connection(self) -> tuple[Any, Any, bool]:
        """(pool proxy, cursor, made just now) of this thread's kept connection."""
        kept = getattr(self._local, "kept", None)
        if kept is not None:
            return kept[0], kept[1], False  # (pool proxy, the thread's cursor on it)
        try:
            with storage_errors("connecting"):
                proxy = self._engine.raw_connection()
        except self._driver_errors as error:  # raw_connection() leaves driver errors unwrapped
            raise_storage_error(error, "connecting")
        connection: Any = proxy.dbapi_connection
        try:
            connection.rollback()  # leave the pre-ping's transaction, if any
            if self._dialect == "postgresql":
                connection.autocommit = True
            elif self._dialect == "mysql":
                connection.autocommit(True)
        except self._driver_errors as error:
            proxy.invalidate()
            raise_storage_error(error, "connecting")
        proxy.detach()  # ours now: the pool neither pings nor resets it
        with self._lock:
            if self._closed:
                proxy.close()
                raise_storage_error(RuntimeError("the store is closed"), "connecting")
            self._open.append(proxy)
        # One cursor per thread, reused: a new cursor per read costs microseconds.
        cursor = connection.cursor()
        self._local.kept = (proxy, cursor)
        return proxy, cursor, True

    def _discard(self, proxy: Any) -> None:
        self._local.kept = None
        with self._lock:
            if proxy in self._open:
                self._open.remove(proxy)
        with contextlib.suppress(Exception):  # it is broken already
            proxy.close()


def _same(_key: str, value: Any) -> Any:
    return value


def _sqlite_value(key: str, value: Any) -> Any:
    # SQLite keeps timestamps as text; the regular path's type processing parses them.
    if key in _DATETIME_COLUMNS and isinstance(value, str):
        return datetime.fromisoformat(value)
    return value


class FastReadQueries(ReadQueries):
    """The resolution and summary reads through :class:`FastReads`; the rest as before."""

    _fast: FastReads

    def resolve_job_id(self, any_id: str) -> str | None:
        """Tiers 1-3 in one round trip: the internal job ID for ``any_id``, or None."""
        if not self._fast.enabled:
            if self.get_job(any_id) is not None:
                return any_id
            job = self.newest_job_by_external_id(any_id)
            if job is not None:
                return job.id
            return self.job_id_from_events(any_id)[1]
        _names, rows = self._fast.tuples("job_id_tiers", {"any_id": any_id})
        job_id: str | None = rows[0][0] if rows else None
        return job_id

    def job_by_any_id(self, any_id: str) -> tuple[Job, int] | None:
        if not self._fast.enabled:
            return super().job_by_any_id(any_id)
        rows = self._fast.rows("job_by_any_id", {"any_id": any_id})
        return (job_from_row(rows[0]), int(rows[0]["tier"])) if rows else None

    def summary_details(
        self, job_id: str, recent: int = 20
    ) -> tuple[list[Step], list[LogEvent], list[Job]]:
        if not self._fast.enabled:
            return super().summary_details(job_id, recent)
        step_rows, event_rows, child_rows = self._fast.rows_many(
            [
                ("steps_of", {"job_id": job_id}),
                ("recent_events", {"job_id": job_id, "limit": recent}),
                ("children_of", {"job_id": job_id}),
            ]
        )
        return (
            [step_from_row(row) for row in step_rows],
            [event_from_row(row) for row in reversed(event_rows)],
            [job_from_row(row) for row in child_rows],
        )

    def get_job(self, job_id: str) -> Job | None:
        if not self._fast.enabled:
            return super().get_job(job_id)
        rows = self._fast.rows("job", {"job_id": job_id})
        return job_from_row(rows[0]) if rows else None

    def newest_job_by_external_id(self, external_job_id: str) -> Job | None:
        if not self._fast.enabled:
            return super().newest_job_by_external_id(external_job_id)
        rows = self._fast.rows("newest_job_by_external_id", {"external_job_id": external_job_id})
        return job_from_row(rows[0]) if rows else None

    def job_id_from_events(self, external_job_id: str) -> tuple[bool, str | None]:
        if not self._fast.enabled:
            return super().job_id_from_events(external_job_id)
        rows = self._fast.rows("events_job_id", {"external_job_id": external_job_id})
        return (True, rows[0]["job_id"]) if rows else (False, None)

    def steps_of(self, job_id: str) -> list[Step]:
        if not self._fast.enabled:
            return super().steps_of(job_id)
        return [step_from_row(row) for row in self._fast.rows("steps_of", {"job_id": job_id})]

    def children_of(self, job_id: str) -> list[Job]:
        if not self._fast.enabled:
            return super().children_of(job_id)
        return [job_from_row(row) for row in self._fast.rows("children_of", {"job_id": job_id})]

    def recent_events(
        self, *, job_id: str | None = None, external_job_id: str | None = None, limit: int = 20
    ) -> list[LogEvent]:
        if not self._fast.enabled or job_id is None:
            return super().recent_events(
                job_id=job_id, external_job_id=external_job_id, limit=limit
            )
        rows = self._fast.rows("recent_events", {"job_id": job_id, "limit": limit})
        return [event_from_row(row) for row in reversed(rows)]
