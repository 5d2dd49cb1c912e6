"""Engines per dialect, and the translation of driver errors into joblog's own.

SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` for writing transactions, so
that many writer processes wait for each other instead of failing with "database is
locked"; reads stay deferred and never wait for a writer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal, NoReturn

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.pool import StaticPool

from joblog.exceptions import ConfigError, StorageError, StorageUnavailable

__all__ = ["Dialect", "create_engine", "dialect_of", "raise_storage_error", "storage_errors"]

Dialect = Literal["sqlite", "postgresql", "mysql"]

#: Execution option that marks a connection as a writer (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION = "joblog_write"
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Seconds a server connection may stay silent mid-request before it counts as broken.
NETWORK_TIMEOUT_S = 30


def parse_url(url: str | sa.URL) -> sa.URL:
    try:
        parsed = sa.make_url(url)
    except Exception as exc_:
        raise ConfigError(f"not a database URL: {url!r} ({exc_})") from exc_
    if dialect_of(parsed) is None:
        raise ConfigError(
            f"unsupported database {parsed.drivername!r}: use sqlite:///FILE, "
            "postgresql+psycopg://... or mysql+pymysql://..."
        )
    return parsed


def dialect_of(url: sa.URL) -> Dialect | None:
    backend = url.get_backend_name()
    if backend == "sqlite":
        return "sqlite"
    if backend == "postgresql":
        return "postgresql"
    if backend in ("mysql", "mariadb"):
        return "mysql"
    return None


def create_engine(url: str | sa.URL, **kwargs: Any) -> sa.Engine:
    """An engine for ``url`` with joblog's per-dialect settings."""
    parsed = parse_url(url)
    dialect = dialect_of(parsed)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername in ("mysql", "mariadb"):
        parsed = parsed.set(drivername="mysql+pymysql")
    if dialect == "sqlite":
        return _sqlite_engine(parsed, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 8)
    kwargs.setdefault("max_overflow", 16)
    connect_args = kwargs.setdefault("connect_args", {})
    connect_args.setdefault("connect_timeout", 5)
    # A silent network partition must not hang a writer forever: bound how long sent data
    # may go unacknowledged, and probe idle connections.
    if dialect == "postgresql":
        connect_args.setdefault("keepalives", 1)
        connect_args.setdefault("keepalives_idle", 10)
        connect_args.setdefault("keepalives_interval", 5)
        connect_args.setdefault("keepalives_count", 3)
        connect_args.setdefault("tcp_user_timeout", NETWORK_TIMEOUT_S * 1000)
    if dialect == "mysql":
        connect_args.setdefault("charset", "utf8mb4")
        connect_args.setdefault("read_timeout", NETWORK_TIMEOUT_S)
        connect_args.setdefault("write_timeout", NETWORK_TIMEOUT_S)
        kwargs.setdefault("isolation_level", "READ COMMITTED")
    try:
        return sa.create_engine(parsed, **kwargs)
    except Exception as exc_:  # e.g. a driver that is not installed
        raise ConfigError(f"cannot use {parsed.render_as_string()}: {exc_}") from exc_


def _sqlite_engine(url: sa.URL, **kwargs: Any) -> sa.Engine:
    memory = url.database in (None, "", ":memory:")
    connect_args = kwargs.setdefault("connect_args", {})
    connect_args.setdefault("check_same_thread", False)
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    if memory:
        # One shared connection, so that every thread sees the same in-memory database.
        kwargs.setdefault("poolclass", StaticPool)
    engine = sa.create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


_UNAVAILABLE_HINTS = (
    "connection refused",
    "could not connect",
    "can't connect",
    "server closed the connection",
    "lost connection",
    "connection reset",
    "connection timed out",
    "broken pipe",
    "server has gone away",
    "terminating connection",
    "the connection is closed",
    "consuming input failed",
    "connection is lost",
    "unable to open database file",
)


def is_unavailable(error: BaseException) -> bool:
    """True when the error means the database could not be reached or the link broke."""
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, exc.DisconnectionError | exc.TimeoutError):
        return True
    text = str(error).lower()
    return any(hint in text for hint in _UNAVAILABLE_HINTS)


def is_transient(error: BaseException) -> bool:
    """True when retrying the same statement later may succeed."""
    if is_unavailable(error):
        return True
    if isinstance(error, exc.OperationalError):
        return True  # lock timeouts, deadlocks, "database is locked", server shutdown
    return isinstance(error, exc.InterfaceError | exc.InternalError)


def raise_storage_error(error: BaseException, doing: str) -> NoReturn:
    if is_unavailable(error):
        raise StorageUnavailable(f"database unavailable while {doing}: {error}") from error
    raise StorageError(f"database error while {doing}: {error}") from error


@contextlib.contextmanager
def storage_errors(doing: str) -> Iterator[None]:
    """Re-raise SQLAlchemy and driver errors as :class:`StorageError` subclasses."""
    try:
        yield
    except exc.SQLAlchemyError as error:
        raise_storage_error(error, doing)
    except OSError as error:
        raise StorageUnavailable(f"database unavailable while {doing}: {error}") from error
