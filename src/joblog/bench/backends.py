"""The bare drivers: databases made for benchmarking, bulk loads, sizes and plans.

Everything here talks to the DBAPI driver directly (sqlite3, psycopg, PyMySQL) with
hand-written SQL, because measuring what the driver can do without joblog is the point.
The benchmark databases are dedicated (``joblog_bench*``); they are dropped and made
anew by each run.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from joblog.bench.workload import CORRELATION_COLUMNS, EVENT_COLUMNS, JOB_COLUMNS, STEP_COLUMNS
from joblog.storage.engine import backend_of_url

__all__ = ["BenchDatabase", "Connection", "backend_name"]

Connection = Any  # a DBAPI connection of one of the three drivers


def backend_name(url: sa.URL) -> str:
    name = backend_of_url(url).name
    return {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mariadb"}[name]


def _sqlite_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


@dataclass
class BenchDatabase:
    """One dedicated benchmark database and raw connections to it."""

    url: sa.URL

    @classmethod
    def from_url(cls, url: str) -> BenchDatabase:
        return cls(sa.make_url(url))

    @property
    def backend(self) -> str:
        return backend_name(self.url)

    @property
    def paramstyle(self) -> str:
        return "?" if self.backend == "sqlite" else "%s"

    @property
    def sa_url(self) -> str:
        return self.url.render_as_string(hide_password=False)

    # -- lifecycle -------------------------------------------------------------------------

    def recreate(self) -> None:
        """Drop the database if it exists and create it empty."""
        if self.backend == "sqlite":
            path = Path(str(self.url.database))
            path.parent.mkdir(parents=True, exist_ok=True)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            return
        name = str(self.url.database)
        if not name.startswith("joblog_bench"):
            raise ValueError(f"refusing to drop {name!r}: benchmark databases are joblog_bench*")
        with self.admin() as admin:
            cursor = admin.cursor()
            if self.backend == "postgresql":
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                cursor.execute(f'CREATE DATABASE "{name}"')
            else:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
                cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")

    def copy_as(self, name: str) -> BenchDatabase:
        """A copy of this PostgreSQL database under ``name`` (``CREATE DATABASE ... TEMPLATE``:
        a file copy, much faster than loading it again; nobody may be connected to it)."""
        if self.backend != "postgresql" or not name.startswith("joblog_bench"):
            raise ValueError(f"refusing to copy to {name!r}: PostgreSQL joblog_bench* only")
        copy = BenchDatabase(self.url.set(database=name))
        with self.admin() as admin:
            cursor = admin.cursor()
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            for attempt in range(20):  # autovacuum may be connected for a moment
                try:
                    cursor.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.url.database}"')
                    break
                except Exception:
                    if attempt == 19:
                        raise
                    time.sleep(0.5)
        return copy

    def drop(self) -> None:
        if self.backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.url.database}{suffix}").unlink(missing_ok=True)
            return
        name = str(self.url.database)
        with self.admin() as admin:
            cursor = admin.cursor()
            if self.backend == "postgresql":
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            else:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")

    @contextmanager
    def admin(self) -> Iterator[Connection]:
        if self.backend == "postgresql":
            import psycopg

            conn = psycopg.connect(**self._pg_args(dbname="postgres"), autocommit=True)
        else:
            import pymysql

            conn = pymysql.connect(**self._mysql_args(database=None), autocommit=True)
        try:
            yield conn
        finally:
            conn.close()

    def _pg_args(self, dbname: str | None = None) -> dict[str, Any]:
        url = self.url
        args: dict[str, Any] = {
            "host": url.host or "127.0.0.1",
            "port": url.port or 5432,
            "user": url.username or "postgres",
            "dbname": dbname or url.database,
            "connect_timeout": 5,
        }
        if url.password:
            args["password"] = url.password
        return args

    def _mysql_args(self, database: str | bool | None = True) -> dict[str, Any]:
        url = self.url
        args: dict[str, Any] = {
            "host": url.host or "127.0.0.1",
            "port": url.port or 3306,
            "user": url.username or "root",
            "password": url.password or "",
            "charset": "utf8mb4",
            "connect_timeout": 5,
        }
        if database is True:
            args["database"] = url.database
        return args

    def connect(self) -> Connection:
        """A raw DBAPI connection in autocommit mode."""
        if self.backend == "sqlite":
            conn = sqlite3.connect(str(self.url.database), isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            return conn
        if self.backend == "postgresql":
            import psycopg

            return psycopg.connect(**self._pg_args(), autocommit=True)
        import pymysql

        return pymysql.connect(**self._mysql_args(), autocommit=True)

    def reachable(self) -> str | None:
        """None if the server answers, else why not."""
        if self.backend == "sqlite":
            return None
        try:
            with self.admin():
                return None
        except Exception as error:
            return f"{self.backend} unreachable: {error}"

    # -- bulk loading ----------------------------------------------------------------------

    def bulk_insert(
        self,
        conn: Connection,
        table: str,
        columns: Sequence[str],
        rows: Sequence[tuple[object, ...]],
    ) -> None:
        """Insert ``rows`` with the driver's fastest path, in the current transaction."""
        if not rows:
            return
        column_list = ", ".join(columns)
        if self.backend == "postgresql":
            with (
                conn.cursor() as cursor,
                cursor.copy(f"COPY {table} ({column_list}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join([self.paramstyle] * len(columns))
        sql = f"INSERT INTO {table} ({column_list}) VALUES ({marks})"
        cursor = conn.cursor()
        try:
            if self.backend == "sqlite":
                cursor.executemany(sql, [tuple(map(_sqlite_value, row)) for row in rows])
            else:
                cursor.executemany(sql, rows)  # PyMySQL sends multi-row INSERTs
        finally:
            cursor.close()

    @contextmanager
    def transaction(self, conn: Connection, *, fast_load: bool = False) -> Iterator[None]:
        """One transaction; ``fast_load`` skips foreign-key checks (data known consistent)."""
        cursor = conn.cursor()
        if self.backend == "postgresql":
            cursor.execute("BEGIN")
            if fast_load:
                cursor.execute("SET LOCAL session_replication_role = replica")
        elif self.backend == "mariadb":
            cursor.execute(f"SET foreign_key_checks = {0 if fast_load else 1}")
            cursor.execute("BEGIN")
        else:
            cursor.execute("BEGIN")
        try:
            yield
        except BaseException:
            conn.rollback()
            raise
        else:
            cursor.execute("COMMIT")
        finally:
            cursor.close()

    def load_chunk(self, conn: Connection, chunk: Any, *, correlations: bool = True) -> None:
        with self.transaction(conn, fast_load=True):
            self.bulk_insert(conn, "job_tracking", JOB_COLUMNS, chunk.jobs)
            self.bulk_insert(conn, "job_steps", STEP_COLUMNS, chunk.steps)
            self.bulk_insert(conn, "log_events", EVENT_COLUMNS, chunk.events)
            if correlations:
                self.bulk_insert(
                    conn, "job_id_correlations", CORRELATION_COLUMNS, chunk.correlations
                )

    def execute(self, conn: Connection, sql: str, params: Sequence[object] = ()) -> list[Any]:
        cursor = conn.cursor()
        try:
            cursor.execute(sql, tuple(params))
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            cursor.close()

    def analyze(self, conn: Connection, tables: Sequence[str]) -> None:
        """Refresh planner statistics (and, on MariaDB, the persistent index sizes)."""
        for table in tables:
            if self.backend == "postgresql":
                self.execute(conn, f"VACUUM ANALYZE {table}")
            elif self.backend == "mariadb":
                self.execute(conn, f"ANALYZE TABLE {table}")
        if self.backend == "sqlite":
            self.execute(conn, "ANALYZE")
