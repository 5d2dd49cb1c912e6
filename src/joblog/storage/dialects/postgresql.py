"""PostgreSQL (psycopg 3): COPY for events, pipelined reads, advisory locks, CONCURRENTLY.

``prepare_threshold`` (psycopg's auto-prepare after N executions of a statement) can be
set per database URL, ``?prepare_threshold=none`` turning it off: PgBouncer in
transaction pooling mode hands each transaction any server connection, where a
statement prepared on another one does not exist.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from joblog._ops import EVENT_COLUMNS
from joblog.exceptions import ConfigError, StorageError
from joblog.storage import schema
from joblog.storage.dialects.base import Backend, ErrorKind, Purpose, RawResult, Rows
from joblog.storage.dialects.pg_partitions import EVENT_PARTITIONS, EventPartitions

if TYPE_CHECKING:
    from alembic.operations import Operations

    from joblog._ops import EventRow

__all__ = ["NETWORK_TIMEOUT_S", "PostgreSQL", "prepare_threshold_of"]

#: Seconds a server connection may stay silent mid-request before it counts as broken.
NETWORK_TIMEOUT_S = 30
LOCK_TIMEOUT_S = 120.0
_COPY = f"COPY log_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "08000", "08003", "08006", "08001"})
_TRANSIENT_STATES = frozenset({"40001", "40P01", "55P03", "57014", "55006"})


_WRITE_POSITION = sa.text("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")
_REPLAY_POSITION = sa.text(
    "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
    " ELSE pg_current_wal_insert_lsn() END - '0/0'::pg_lsn"
)


def prepare_threshold_of(url: sa.URL) -> tuple[sa.URL, int | str | None]:
    """``url`` without joblog's ``prepare_threshold`` query parameter, and its value
    (``"default"`` when absent: psycopg's own default)."""
    raw = url.query.get("prepare_threshold")
    if raw is None:
        return url, "default"
    text = str(raw[-1] if isinstance(raw, tuple) else raw).strip().lower()
    value: int | None = None if text in ("none", "off", "") else int(text)
    return url.difference_update_query(["prepare_threshold"]), value


class PostgreSQL(Backend):
    name = "postgresql"
    default_driver = "postgresql+psycopg"
    read_replicas = True

    def url_options(self, url: sa.URL) -> tuple[sa.URL, dict[str, Any]]:
        """``?prepare_threshold=none`` (or a number) sets psycopg's ``prepare_threshold``:
        ``none`` for PgBouncer in transaction mode, which cannot keep prepared statements."""
        try:
            url, threshold = prepare_threshold_of(url)
        except ValueError as error:
            raise ConfigError(f"prepare_threshold must be a number or none: {error}") from error
        return url, ({} if threshold == "default" else {"prepare_threshold": threshold})

    def pooled_url(self, url: sa.URL) -> sa.URL:
        """Prepared statements off, unless the URL sets ``prepare_threshold`` itself: a
        transaction pooler hands each transaction any server connection, where psycopg's
        statement ``_pg3_0`` is missing, or is another client's with other SQL."""
        if "prepare_threshold" in url.query:
            return url
        return url.update_query_dict({"prepare_threshold": "none"})

    def write_position(self, connection: sa.Connection) -> int | None:
        return connection.execute(_WRITE_POSITION).scalar()

    def replay_position(self, connection: sa.Connection) -> int | None:
        return connection.execute(_REPLAY_POSITION).scalar()

    def engine_kwargs(self, url: sa.URL, purpose: Purpose) -> dict[str, Any]:
        connect_args: dict[str, Any] = {
            "connect_timeout": 5,
            # A silent network partition must not hang a writer forever: bound how long
            # sent data may go unacknowledged, and probe idle connections.
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "tcp_user_timeout": NETWORK_TIMEOUT_S * 1000,
        }
        return {"connect_args": connect_args}

    def classify(self, error: BaseException) -> ErrorKind | None:
        import psycopg

        if not isinstance(error, psycopg.Error):
            return None
        state = getattr(error, "sqlstate", None)
        if state is None:
            # No server answer at all: the connection failed or was closed under us.
            if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
                return ErrorKind.UNAVAILABLE
            return ErrorKind.PERMANENT
        if state in _UNAVAILABLE_STATES or state.startswith("08"):
            return ErrorKind.UNAVAILABLE
        if state in _TRANSIENT_STATES or state.startswith("53"):
            return ErrorKind.TRANSIENT
        if state == "23505":
            return ErrorKind.CONFLICT
        if state.startswith(("22", "23", "54")):
            return ErrorKind.REJECTED
        return ErrorKind.PERMANENT

    def insert_events(self, connection: sa.Connection, rows: Sequence[EventRow]) -> None:
        dbapi: Any = connection.connection.dbapi_connection
        with dbapi.cursor() as cursor, cursor.copy(_COPY) as copy:
            for row in rows:
                copy.write_row(row)

    def claim_batch_key(self, connection: sa.Connection, batch_key: str, now: datetime) -> bool:
        table = schema.ingest_batches
        claimed = connection.execute(
            pg_insert(table)
            .values(batch_key=batch_key, created_at=now)
            .on_conflict_do_nothing()
            .returning(table.c.batch_key)
        ).first()
        return claimed is not None

    def run_many(
        self, connection: sa.Connection, statements: Sequence[tuple[sa.Executable, dict[str, Any]]]
    ) -> list[Rows]:
        """All statements in one round trip (psycopg's pipeline mode)."""
        compiled = []
        for stmt, params in statements:
            sql, defaults = _compiled(stmt, connection.dialect)
            compiled.append((sql, {**defaults, **params}))
        results = self.fetch(connection.connection.dbapi_connection, compiled)
        return [[dict(zip(names, row, strict=True)) for row in rows] for names, rows in results]

    def fetch(self, dbapi: Any, statements: Sequence[tuple[str, Any]]) -> list[RawResult]:
        """All statements in one round trip (psycopg's pipeline mode)."""
        if len(statements) == 1:
            return super().fetch(dbapi, statements)
        cursors = []
        try:
            with dbapi.pipeline():
                for sql, args in statements:
                    cursor = dbapi.cursor()
                    cursors.append(cursor)
                    cursor.execute(sql, args)
            results: list[RawResult] = []
            for cursor in cursors:
                names = tuple(column[0] for column in cursor.description)
                results.append((names, cursor.fetchall()))
            return results
        finally:
            for cursor in cursors:
                cursor.close()

    @contextlib.contextmanager
    def migration_lock(self, connection: sa.Connection, name: str) -> Iterator[None]:
        key = _lock_key(name)
        lock = connection.execution_options(isolation_level="AUTOCOMMIT")
        # Poll instead of pg_advisory_lock(): a session waiting inside a statement holds a
        # snapshot, and CREATE INDEX CONCURRENTLY in the lock holder would wait for that
        # snapshot, which waits for the lock: a deadlock.
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while not lock.scalar(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}):
            if time.monotonic() > deadline:
                raise StorageError("timed out waiting for another joblog migration")
            time.sleep(0.05)
        try:
            yield
        finally:
            lock.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})

    @contextlib.contextmanager
    def housekeeping_lease(self, engine: sa.Engine, task: str) -> Iterator[bool]:
        # A transaction-level advisory lock in a transaction of its own connection, not a
        # session-level one: behind PgBouncer in transaction mode a session lock would stay
        # on whichever server connection took it, and its unlock could go to another.
        # Advisory locks are per database: two joblog databases on one server do not
        # share a lease. The key is a literal, not a parameter: a statement with
        # parameters leaves its portal open until the next one, holding a snapshot, and
        # an idle transaction with a snapshot would hold back VACUUM for as long as a
        # prune runs, and make CREATE INDEX CONCURRENTLY (a migration, ``joblog db
        # partition``) wait for the round to end. Sent as a simple query, it holds none.
        key = _lock_key(f"joblog-housekeeping:{task}")
        with engine.connect() as connection, connection.begin():
            held = connection.exec_driver_sql(f"SELECT pg_try_advisory_xact_lock({key:d})")
            yield bool(held.scalar())

    def event_partitions(self) -> EventPartitions:
        return EVENT_PARTITIONS

    def add_column_online(self, op: Operations, table: str, column_ddl: str) -> None:
        # A nullable column without a volatile default is a catalog-only change.
        op.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column_ddl}")

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
        kind = "UNIQUE INDEX" if unique else "INDEX"
        listed = ", ".join(columns)
        partial = f" WHERE {where}" if where else ""
        partitions = _partitions_of(op, table)
        with op.get_context().autocommit_block():
            if partitions is None:
                # A failed CONCURRENTLY build leaves an INVALID index behind; drop it first.
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
                op.execute(f"CREATE {kind} CONCURRENTLY {name} ON {table} ({listed}){partial}")
                return
            # A partitioned table (log_events, see pg_partitions) has no CONCURRENTLY: the
            # index goes on the table alone (invalid until complete), each partition's is
            # built concurrently and attached; the last attach makes it valid.
            op.execute(f"CREATE {kind} IF NOT EXISTS {name} ON ONLY {table} ({listed}){partial}")
            for partition, child, valid in partitions(name):
                if valid is False:  # a build that failed before
                    op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {child}")
                if not valid:
                    op.execute(
                        f"CREATE {kind} CONCURRENTLY {child} ON {partition} ({listed}){partial}"
                    )
                op.execute(f"ALTER INDEX {name} ATTACH PARTITION {child}")

    def drop_index_online(self, op: Operations, name: str, table: str) -> None:
        if _partitions_of(op, table) is not None:
            # No CONCURRENTLY for a partitioned index: a short lock of the table instead.
            op.execute(f"DROP INDEX IF EXISTS {name}")
            return
        with op.get_context().autocommit_block():
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")

    def drop_column_online(
        self, op: Operations, table: str, column: str, indexes: Sequence[str] = ()
    ) -> None:
        for index in indexes:
            self.drop_index_online(op, index, table)
        op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {column}")


def _partitions_of(
    op: Operations, table: str
) -> Callable[[str], list[tuple[str, str, bool | None]]] | None:
    """None when ``table`` is not partitioned (or offline, ``--sql``: the SQL then assumes
    a plain table); else, for an index name, each partition that still needs its part of
    the index, with the name that part gets and whether it exists valid (True), invalid
    (False) or not (None). A partition whose part is attached already, under whatever
    name (a ``CREATE INDEX`` on the partitioned table names them itself), is left out, so
    a re-run finds nothing to do."""
    context = op.get_context()
    if context.as_sql:
        return None
    bind = op.get_bind()
    kind = bind.scalar(
        sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
    )
    if kind != "p":
        return None
    partitions = list(
        bind.execute(
            sa.text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = to_regclass(:t) ORDER BY c.relname"
            ),
            {"t": table},
        ).scalars()
    )

    def children(index: str) -> list[tuple[str, str, bool | None]]:
        attached = set(
            bind.execute(
                sa.text(
                    "SELECT t.relname FROM pg_inherits i"
                    " JOIN pg_index x ON x.indexrelid = i.inhrelid"
                    " JOIN pg_class t ON t.oid = x.indrelid"
                    " WHERE i.inhparent = to_regclass(:i)"
                ),
                {"i": index},
            ).scalars()
        )
        found = []
        for partition in partitions:
            if partition in attached:
                continue
            child = _child_index_name(partition, index)
            valid = bind.scalar(
                sa.text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:i)"),
                {"i": child},
            )
            found.append((partition, child, valid))
        return found

    return children


def _child_index_name(partition: str, index: str) -> str:
    name = f"{partition}_{index}"
    if len(name) <= 63:
        return name
    return f"{partition[:50]}_{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def _lock_key(name: str) -> int:
    """An advisory lock key (a signed 64-bit number) for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


_COMPILED: dict[tuple[int, str], tuple[str, dict[str, Any]]] = {}


def _compiled(statement: sa.Executable, dialect: sa.Dialect) -> tuple[str, dict[str, Any]]:
    """The SQL text and default parameters of a statement, compiled once per dialect."""
    key = (id(statement), dialect.name)
    found = _COMPILED.get(key)
    if found is None:
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        found = (str(compiled), dict(compiled.params))
        _COMPILED[key] = found
    return found
