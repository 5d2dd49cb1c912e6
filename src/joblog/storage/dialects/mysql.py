"""MariaDB and MySQL (PyMySQL): multi-row INSERT, INSERT IGNORE claims, GET_LOCK, INPLACE DDL.

PyMySQL raises every server error whose code it does not list as OperationalError, so
classification goes by the error number, not by the class.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from joblog._ops import EVENT_COLUMNS
from joblog.exceptions import StorageError
from joblog.storage.dialects.base import Backend, ErrorKind, Purpose

if TYPE_CHECKING:
    from alembic.operations import Operations

    from joblog._ops import EventRow

__all__ = ["MySQL"]

NETWORK_TIMEOUT_S = 30
LOCK_TIMEOUT_S = 120
_INSERT = (
    f"INSERT INTO log_events ({', '.join(EVENT_COLUMNS)})"
    f" VALUES ({', '.join(['%s'] * len(EVENT_COLUMNS))})"
)
_CLAIM = "INSERT IGNORE INTO ingest_batches (batch_key, created_at) VALUES (%s, %s)"

# Client errors (2000-2999) mean the link; these server errors too.
_UNAVAILABLE = frozenset({1053, 1077, 1081, 1152, 1158, 1159, 1160, 1161, 1927, 4031})
_TRANSIENT = frozenset({1020, 1040, 1205, 1213, 1317, 1614, 1637, 1689, 3572})
_CONFLICT = frozenset({1022, 1062, 1169, 1557, 1586})
_REJECTED = frozenset(
    {
        1048,  # column cannot be null
        1153,  # packet too large
        1216, 1217, 1451, 1452,  # foreign keys
        1264, 1265, 1292, 1366, 1367, 1406,  # out of range, truncated, bad value, too long
        1300,  # invalid character string
        3140, 3141, 4025, 4038, 4040, 4042,  # JSON and CHECK constraints
    }
)  # fmt: skip


class MySQL(Backend):
    name = "mysql"
    default_driver = "mysql+pymysql"

    def engine_kwargs(self, url: sa.URL, purpose: Purpose) -> dict[str, Any]:
        connect_args: dict[str, Any] = {
            "charset": "utf8mb4",
            "connect_timeout": 5,
            "read_timeout": NETWORK_TIMEOUT_S,
            "write_timeout": NETWORK_TIMEOUT_S,
        }
        kwargs: dict[str, Any] = {"connect_args": connect_args}
        if purpose == "write":
            kwargs["isolation_level"] = "READ COMMITTED"
        return kwargs

    def classify(self, error: BaseException) -> ErrorKind | None:
        import pymysql

        if not isinstance(error, pymysql.err.Error):
            return None
        if isinstance(error, pymysql.err.InterfaceError):
            return ErrorKind.UNAVAILABLE  # "(0, '')": the connection is closed
        code = error.args[0] if error.args and isinstance(error.args[0], int) else None
        if code is None:
            return None
        if 2000 <= code < 3000 or code in _UNAVAILABLE:
            return ErrorKind.UNAVAILABLE
        if code in _TRANSIENT:
            return ErrorKind.TRANSIENT
        if code in _CONFLICT:
            return ErrorKind.CONFLICT
        if code in _REJECTED or isinstance(error, pymysql.err.DataError):
            return ErrorKind.REJECTED
        return ErrorKind.PERMANENT

    def insert_events(self, connection: sa.Connection, rows: Sequence[EventRow]) -> None:
        dbapi: Any = connection.connection.dbapi_connection
        cursor = dbapi.cursor()
        try:
            cursor.executemany(_INSERT, rows)  # PyMySQL sends one multi-row INSERT
        finally:
            cursor.close()

    def claim_batch_key(self, connection: sa.Connection, batch_key: str, now: datetime) -> bool:
        # One statement: a concurrent duplicate waits for the first's row lock, then finds
        # the key and inserts nothing (no SELECT-then-INSERT race, no duplicate-key error).
        dbapi: Any = connection.connection.dbapi_connection
        cursor = dbapi.cursor()
        try:
            return bool(cursor.execute(_CLAIM, (batch_key, now)))
        finally:
            cursor.close()

    @contextlib.contextmanager
    def migration_lock(self, connection: sa.Connection, name: str) -> Iterator[None]:
        # GET_LOCK names are server-wide, so the name carries the database's.
        key = _lock_name(name)
        lock = connection.execution_options(isolation_level="AUTOCOMMIT")
        got = lock.scalar(sa.text("SELECT GET_LOCK(:n, :t)"), {"n": key, "t": LOCK_TIMEOUT_S})
        if got != 1:
            raise StorageError("timed out waiting for another joblog migration")
        try:
            yield
        finally:
            lock.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": key})

    @contextlib.contextmanager
    def housekeeping_lease(self, engine: sa.Engine, task: str) -> Iterator[bool]:
        # GET_LOCK(name, 0) never waits; its names are server-wide, so the name carries the
        # database's (asked of the server, not read from the URL). The lock belongs to the
        # session: it goes with the connection if that breaks.
        with engine.connect() as connection:
            session = connection.execution_options(isolation_level="AUTOCOMMIT")
            database = session.scalar(sa.text("SELECT DATABASE()")) or ""
            key = _lock_name(f"housekeeping:{database}:{task}")
            held = session.scalar(sa.text("SELECT GET_LOCK(:n, 0)"), {"n": key}) == 1
            try:
                yield held
            finally:
                if held:
                    session.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": key})

    def add_column_online(self, op: Operations, table: str, column_ddl: str) -> None:
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column_ddl},"
            " ALGORITHM=INPLACE, LOCK=NONE"
        )

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
        if where is not None:
            raise ValueError("MariaDB has no partial indexes")
        kind = "UNIQUE INDEX" if unique else "INDEX"
        op.execute(
            f"CREATE {kind} IF NOT EXISTS {name} ON {table} ({', '.join(columns)})"
            " ALGORITHM=INPLACE LOCK=NONE"
        )

    def drop_index_online(self, op: Operations, name: str, table: str) -> None:
        # DROP INDEX takes no ALGORITHM/LOCK clause on MariaDB; ALTER TABLE does.
        op.execute(f"ALTER TABLE {table} DROP INDEX IF EXISTS {name}, ALGORITHM=INPLACE, LOCK=NONE")

    def drop_column_online(
        self, op: Operations, table: str, column: str, indexes: Sequence[str] = ()
    ) -> None:
        # One ALTER TABLE: the indexes and the column go in a single in-place rebuild.
        drops = [f"DROP INDEX IF EXISTS {index}" for index in indexes]
        drops.append(f"DROP COLUMN IF EXISTS {column}")
        op.execute(f"ALTER TABLE {table} {', '.join(drops)}, ALGORITHM=INPLACE, LOCK=NONE")


def _lock_name(name: str) -> str:
    """A GET_LOCK name for ``name`` (at most 64 characters whatever ``name`` holds)."""
    return "joblog:" + hashlib.sha256(name.encode()).hexdigest()[:24]
