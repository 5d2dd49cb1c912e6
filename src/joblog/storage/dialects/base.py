"""The interface every backend module implements, with the behaviour most share.

:class:`Backend` names every decision that depends on the database: engine settings,
how a driver error is classified, the bulk insert of log events, the batch-key claim,
several reads in one round trip, the migration lock, online DDL, the housekeeping
lease and (PostgreSQL) time partitions of log_events.
Everything else in joblog is written once, in SQLAlchemy Core, for all of them. A new
backend is one module beside this one and one entry in the package's registry.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import Null
from sqlalchemy.sql.functions import FunctionElement

from joblog._config import MAX_BIGINT

if TYPE_CHECKING:
    from alembic.operations import Operations
    from sqlalchemy.sql.compiler import SQLCompiler

    from joblog._ops import EventRow
    from joblog.storage.dialects.pg_partitions import EventPartitions

__all__ = [
    "Backend",
    "DialectName",
    "ErrorKind",
    "KeyRange",
    "Purpose",
    "Rare",
    "RawResult",
    "Rows",
]

#: The rows of one read, as mappings of column name to value.
Rows = Sequence[Mapping[Any, Any]]
#: The column names and the row tuples of one read, as the driver returned them.
RawResult = tuple[tuple[str, ...], Sequence[Sequence[Any]]]

DialectName = Literal["sqlite", "postgresql", "mysql"]
#: What an engine is for: reads (autocommit, no pre-ping), writes, or a migration run.
Purpose = Literal["read", "write", "migrate"]


class ErrorKind(enum.Enum):
    """How a driver error is treated; :func:`joblog.storage.engine.translate` maps it."""

    UNAVAILABLE = "unavailable"  # not reachable, or the link broke: retry later
    TRANSIENT = "transient"  # a lock timeout, a deadlock, a restart: retry later
    CONFLICT = "conflict"  # a unique constraint refused the row
    REJECTED = "rejected"  # a value the database refuses (type, size, encoding, FK)
    PERMANENT = "permanent"  # anything else that will fail again the same way


class Backend:
    """The default behaviour; each backend module overrides what differs."""

    name: ClassVar[DialectName]
    #: The driver SQLAlchemy should use when a URL names only the database.
    default_driver: ClassVar[str]

    # -- engines ------------------------------------------------------------------------

    def url_options(self, url: sa.URL) -> tuple[sa.URL, dict[str, Any]]:
        """``url`` without joblog's own query parameters, and the connect arguments they
        stand for (ConfigError for a bad value)."""
        return url, {}

    def engine_kwargs(self, url: sa.URL, purpose: Purpose) -> dict[str, Any]:
        """Keyword arguments for :func:`sqlalchemy.create_engine`."""
        return {}

    def prepare_engine(self, engine: sa.Engine, purpose: Purpose) -> None:
        """Install event listeners the backend needs (SQLite pragmas, BEGIN IMMEDIATE)."""

    def is_private_memory(self, url: sa.URL) -> bool:
        """True when the database exists only inside one engine (in-memory SQLite)."""
        return False

    # -- errors ---------------------------------------------------------------------------

    def classify(self, error: BaseException) -> ErrorKind | None:
        """The kind of a DBAPI error of this backend's driver; None: use PEP 249's classes."""
        return None

    # -- writing --------------------------------------------------------------------------

    def insert_events(self, connection: sa.Connection, rows: Sequence[EventRow]) -> None:
        """Bulk-insert log events with the driver's fastest path."""
        raise NotImplementedError

    def claim_batch_key(self, connection: sa.Connection, batch_key: str, now: datetime) -> bool:
        """Record ``batch_key`` in the caller's transaction in one statement; False when
        it was already there (the batch was stored before)."""
        raise NotImplementedError

    # -- reading --------------------------------------------------------------------------

    def run_many(
        self, connection: sa.Connection, statements: Sequence[tuple[sa.Executable, dict[str, Any]]]
    ) -> list[Rows]:
        """Several reads; one after another unless the backend can send them at once."""
        return [list(connection.execute(stmt, params).mappings()) for stmt, params in statements]

    # -- replicas (PostgreSQL streaming replication) ------------------------------------

    #: Whether a read replica of this backend can be used (:mod:`joblog.storage.replica`).
    read_replicas: ClassVar[bool] = False

    def pooled_url(self, url: sa.URL) -> sa.URL:
        """``url`` as used through a transaction pooler (the Store was given a direct URL
        beside it): what the pooler cannot keep across transactions is turned off."""
        return url

    def write_position(self, connection: sa.Connection) -> int | None:
        """Where the primary's log of changes stands now (None: the backend has none)."""
        return None

    def replay_position(self, connection: sa.Connection) -> int | None:
        """How far a replica has replayed the primary's log (a primary: its own position)."""
        return None

    def fetch(self, dbapi: Any, statements: Sequence[tuple[str, Any]]) -> list[RawResult]:
        """Compiled reads run on a DBAPI connection: each one's column names and row
        tuples, as the driver returns them. One after another unless the backend can
        send them at once."""
        results: list[RawResult] = []
        for sql, args in statements:
            cursor = dbapi.cursor()
            try:
                cursor.execute(sql, args)
                names = tuple(column[0] for column in cursor.description)
                results.append((names, cursor.fetchall()))
            finally:
                cursor.close()
        return results

    # -- schema changes -----------------------------------------------------------------

    @contextlib.contextmanager
    def migration_lock(self, connection: sa.Connection, name: str) -> Iterator[None]:
        """Hold a lock that serialises migrations of one database across processes."""
        yield

    # -- housekeeping ---------------------------------------------------------------------

    @contextlib.contextmanager
    def housekeeping_lease(self, engine: sa.Engine, task: str) -> Iterator[bool]:
        """Try once, without waiting, to take the lease on ``task`` (``reap``, ``prune``,
        ...) for this database, across every process and server using it. Yields whether
        this caller holds it; it is held until the block ends (or its connection breaks)."""
        raise NotImplementedError
        yield False  # pragma: no cover

    def event_partitions(self) -> EventPartitions | None:
        """Time partitioning of ``log_events``, where the backend has it (PostgreSQL)."""
        return None

    def add_column_online(self, op: Operations, table: str, column_ddl: str) -> None:
        """Add a nullable column without blocking writers; may be run again."""
        op.execute(f"ALTER TABLE {table} ADD COLUMN {column_ddl}")

    def create_index_online(
        self,
        op: Operations,
        name: str,
        table: str,
        columns: Sequence[str],
        *,
        unique: bool = False,
        where: str | None = None,
    ) -> None:
        """Build an index without blocking writers; may be run again. ``where`` makes it
        partial (PostgreSQL and SQLite; MariaDB has no partial indexes)."""
        kind = "UNIQUE INDEX" if unique else "INDEX"
        partial = f" WHERE {where}" if where else ""
        op.execute(f"CREATE {kind} IF NOT EXISTS {name} ON {table} ({', '.join(columns)}){partial}")

    def drop_index_online(self, op: Operations, name: str, table: str) -> None:
        op.execute(f"DROP INDEX IF EXISTS {name}")

    def drop_column_online(
        self, op: Operations, table: str, column: str, indexes: Sequence[str] = ()
    ) -> None:
        """Drop a column and the indexes over it (indexes first: SQLite drops only a
        column that no index refers to) without blocking writers where the backend can."""
        for index in indexes:
            self.drop_index_online(op, index, table)
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")


class Rare(FunctionElement[bool]):
    """A condition that few rows meet (``rare(parent_job_id = :id)``).

    Plain SQL on most backends; SQLite's planner gets a likelihood hint (see
    :mod:`joblog.storage.dialects.sqlite`).
    """

    inherit_cache = True
    name = "rare"
    type = sa.Boolean()
    # A comparison, not a boolean value: without this, MySQL's compiler (no native
    # boolean) renders ``(parent_job_id = %s) = 1``, which no index serves (a full scan
    # of job_tracking for every children lookup).
    _is_implicitly_boolean = True


@compiles(Rare)
def _compile_rare(element: Rare, compiler: SQLCompiler, **kw: Any) -> str:
    (condition,) = element.clauses
    return str(compiler.process(condition, **kw))


#: Set on an engine's SQLAlchemy dialect when its ``log_events`` is partitioned.
PARTITIONED_EVENTS = "joblog_partitioned_events"


class KeyRange(FunctionElement[bool]):
    """``key = :value AND id > :after AND id < :before``: one job's (or external ID's)
    log events between two IDs, for a statement ordered by ``(key, id)``.

    Plain SQL on SQLite and MariaDB, whose index on ``key`` already ends in the primary
    key. On PostgreSQL with a plain ``log_events``, written as row comparisons
    ``(key, id) > (:value, :after) AND (key, id) < (:value, :before)``: with ``key =
    :value`` the planner treats ``key`` as a constant, reads ``ORDER BY key, id`` as
    ``ORDER BY id``, and for an old job under millions of newer events walks the primary
    key (backwards, or forwards from the stream's last ID) filtering ``key``; the row
    comparisons are served by the ``(key, id)`` index alone, which then gives the order
    as well. On a partitioned ``log_events`` the plain form again: the planner estimates
    a row comparison at one row, so it sorted the Append of every partition's matches (all
    20,000 events of an old job, 5 ms) instead of merging each partition's ``(key, id)``
    index (0.03 ms; EXPLAIN ANALYZE, 1M newer events); with ``key = :value`` it knows the
    count. The Store marks its engines' dialects (:data:`PARTITIONED_EVENTS`).

    An open bound (``NULL`` in the clauses, so that the statement's cache key tells it
    apart) is left out there, and is the constant 0 or 2^63-1 elsewhere: a parameter in
    its place made PostgreSQL's generic plan of a prepared statement (psycopg prepares a
    statement on its fifth run) estimate the range at 0.5% of the job's events, one row,
    and sort an old job's 20,000 events again for every summary (2.3 ms instead of 0.04).
    """

    inherit_cache = True
    name = "key_range"
    type = sa.Boolean()
    _is_implicitly_boolean = True  # see Rare


def _key_range_parts(
    element: KeyRange, compiler: SQLCompiler, **kw: Any
) -> tuple[str, str, str, str | None, str | None]:
    """key, id, value, and the bounds' SQL (None where open)."""
    key, id_, value, after, before = element.clauses
    bounds = [
        None if isinstance(bound, Null) else str(compiler.process(bound, **kw))
        for bound in (after, before)
    ]
    return (
        str(compiler.process(key, **kw)),
        str(compiler.process(id_, **kw)),
        str(compiler.process(value, **kw)),
        bounds[0],
        bounds[1],
    )


def _plain_key_range(key: str, id_: str, value: str, after: str | None, before: str | None) -> str:
    return " AND ".join(
        [
            f"{key} = {value}",
            *([f"{id_} > {after}"] if after is not None else []),
            *([f"{id_} < {before}"] if before is not None else []),
        ]
    )


@compiles(KeyRange)
def _compile_key_range(element: KeyRange, compiler: SQLCompiler, **kw: Any) -> str:
    return _plain_key_range(*_key_range_parts(element, compiler, **kw))


@compiles(KeyRange, "postgresql")
def _compile_key_range_pg(element: KeyRange, compiler: SQLCompiler, **kw: Any) -> str:
    key, id_, value, after, before = _key_range_parts(element, compiler, **kw)
    if getattr(compiler.dialect, PARTITIONED_EVENTS, False):
        return _plain_key_range(key, id_, value, after, before)
    low = "0" if after is None else after
    high = str(MAX_BIGINT) if before is None else before
    return f"({key}, {id_}) > ({value}, {low}) AND ({key}, {id_}) < ({value}, {high})"
