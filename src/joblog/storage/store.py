"""The Store: the engines of one database, its reader, its writes and its housekeeping.

Composed, not inherited: ``store.reads`` (:class:`~joblog.storage.reader.Reader`) runs
every read, ``store.apply_batch`` applies the batch writer's ops, ``store.housekeeping``
reaps and prunes, ``store.sessions`` keeps the dashboard's sign-ins. Reads and writes
use separate engines: reads an autocommit pool (one round trip a read), writes
transactions. The in-memory SQLite database exists inside one connection, so there
both share it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from joblog._ids import utcnow
from joblog._ops import Op
from joblog.storage import schema
from joblog.storage.dialects import Backend
from joblog.storage.dialects.sqlite import WRITE_OPTION
from joblog.storage.engine import backend_of_url, create_engine, parse_url, storage_errors
from joblog.storage.maintenance import Housekeeping
from joblog.storage.reader import Reader
from joblog.storage.sessions import SessionRows
from joblog.storage.writes import apply_ops

__all__ = ["Store"]

log = logging.getLogger("joblog.storage")


class Store:
    """joblog's tables on one database.

    ``auto_migrate`` creates the schema in an empty database and refuses one whose
    schema is behind (run ``joblog db upgrade`` for those). ``engine_kwargs`` go to both
    engines (``connect_args`` merged), e.g. a pool size.
    """

    def __init__(
        self, url: str | sa.URL, *, auto_migrate: bool = True, **engine_kwargs: Any
    ) -> None:
        self.url = parse_url(url)
        self.backend: Backend = backend_of_url(self.url)
        self.engine = create_engine(self.url, "write", **engine_kwargs)
        #: Transactions that write: SQLite takes its write lock at BEGIN.
        self.write_engine = self.engine.execution_options(**{WRITE_OPTION: True})
        self._private_memory = self.backend.is_private_memory(self.url)
        read_engine = (
            self.engine
            if self._private_memory
            else create_engine(self.url, "read", **engine_kwargs)
        )
        self.reads = Reader(read_engine, self.backend)
        self.housekeeping = Housekeeping(self.write_engine, self.backend)
        self.sessions = SessionRows(self.write_engine)
        if auto_migrate:
            from joblog.storage.migrate import ensure_schema

            ensure_schema(self.engine)

    @property
    def dialect(self) -> str:
        """``sqlite``, ``postgresql`` or ``mysql``."""
        return self.backend.name

    @property
    def local_file(self) -> str | None:
        """The path of a SQLite database file (None for servers and memory)."""
        if self.backend.name != "sqlite" or self._private_memory:
            return None
        database = self.url.database
        return database if database and not database.startswith("file:") else None

    @property
    def reads_are_local(self) -> bool:
        """True for a SQLite file: a read is a local call of microseconds, no network."""
        return self.backend.name == "sqlite" and not self._private_memory

    def pool_status(self) -> dict[str, tuple[int, int]]:
        """Connections checked out and the pool's size, per engine (``write``, and
        ``read`` when it has its own); engines without a counting pool are left out."""
        engines = {"write": self.engine}
        if self.reads.engine is not self.engine:
            engines["read"] = self.reads.engine
        status: dict[str, tuple[int, int]] = {}
        for name, engine in engines.items():
            pool = engine.pool
            checked_out = getattr(pool, "checkedout", None)
            size = getattr(pool, "size", None)
            if callable(checked_out) and callable(size):
                status[name] = (int(checked_out()), int(size()))
        return status

    def close(self) -> None:
        if self.reads.engine is not self.engine:
            self.reads.engine.dispose()
        self.engine.dispose()

    def apply_batch(self, ops: Sequence[Op], batch_key: str | None = None) -> bool:
        """Apply ``ops`` in one transaction; False if ``batch_key`` was already stored."""
        with storage_errors("writing a batch"), self.write_engine.begin() as conn:
            if batch_key is not None and not self.backend.claim_batch_key(
                conn, batch_key, utcnow()
            ):
                return False
            apply_ops(conn, self.backend, ops)
        return True

    def insert_failover_job(self, values: Mapping[str, Any]) -> None:
        """Insert one row of the older system's ``failover_jobs`` (demo and tests: joblog
        itself only reads that table)."""
        with storage_errors("inserting a failover job"), self.write_engine.begin() as conn:
            conn.execute(schema.failover_jobs.insert().values(**values))

    def create_tables(self) -> None:
        """Create every table directly from :mod:`schema` (tests and benchmarks only)."""
        with storage_errors("creating tables"):
            schema.metadata.create_all(self.engine)
