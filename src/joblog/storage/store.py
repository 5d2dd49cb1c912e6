"""The Store: the engines of one database, its reader, its writes and its housekeeping.

Composed, not inherited: ``store.reads`` (:class:`~joblog.storage.reader.Reader`) runs
every read, ``store.apply_batch`` applies the batch writer's ops, ``store.housekeeping``
reaps and prunes, ``store.sessions`` keeps the dashboard's sign-ins. Reads and writes
use separate engines: reads an autocommit pool (one round trip a read), writes
transactions. The in-memory SQLite database exists inside one connection, so there both
share it.

Three URLs, for the deployments of docs/DEPLOYING.md (PostgreSQL):

* ``url``: writes, and the reads that must see them (``store.primary_reads``).
* ``read_url``: a streaming replica; ``store.reads`` sends it what it may answer
  (:mod:`joblog.storage.replica`).
* ``direct_url``: the primary without a transaction pooler in between, for what needs a
  session of its own: ``LISTEN``, advisory locks (migrations, cluster-wide leases). Given
  one, ``url`` (and ``read_url``) count as pooled: prepared statements are off there
  unless the URL sets ``prepare_threshold``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from joblog._ids import utcnow
from joblog._ops import Op
from joblog.exceptions import ConfigError
from joblog.storage import schema
from joblog.storage.dialects import Backend
from joblog.storage.dialects.base import PARTITIONED_EVENTS
from joblog.storage.dialects.sqlite import WRITE_OPTION
from joblog.storage.engine import backend_of_url, create_engine, parse_url, storage_errors
from joblog.storage.maintenance import Housekeeping
from joblog.storage.reader import Reader
from joblog.storage.replica import ReplicaRoute, format_position
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
        self,
        url: str | sa.URL,
        *,
        read_url: str | sa.URL | None = None,
        direct_url: str | sa.URL | None = None,
        read_max_lag: float = 2.0,
        auto_migrate: bool = True,
        **engine_kwargs: Any,
    ) -> None:
        self.url = parse_url(url)
        self.backend: Backend = backend_of_url(self.url)
        #: The primary without a pooler in between (``url`` itself when none was given).
        self.direct_url = self._same_backend(direct_url, "direct_url") or self.url
        replica_url = self._same_backend(read_url, "read_url")
        if replica_url is not None and not self.backend.read_replicas:
            raise ConfigError(f"read replicas are supported on PostgreSQL, not {self.dialect}")
        if direct_url is not None:
            self.url = self.backend.pooled_url(self.url)
            replica_url = replica_url and self.backend.pooled_url(replica_url)
        self.engine = create_engine(self.url, "write", **engine_kwargs)
        #: Transactions that write: SQLite takes its write lock at BEGIN.
        self.write_engine = self.engine.execution_options(**{WRITE_OPTION: True})
        self._private_memory = self.backend.is_private_memory(self.url)
        read_engine = (
            self.engine
            if self._private_memory
            else create_engine(self.url, "read", **engine_kwargs)
        )
        #: Reads that must see the primary's present (writes' own, streams, change marks).
        self.primary_reads = Reader(read_engine, self.backend)
        self.replica: ReplicaRoute | None = None
        self._engines = [self.engine, read_engine]
        if replica_url is not None:
            replica_engine = create_engine(replica_url, "read", **engine_kwargs)
            self._engines.append(replica_engine)
            self.replica = ReplicaRoute(
                replica_engine, read_engine, self.backend, max_lag=read_max_lag
            )
        #: Every other read: the replica's when it may answer, else the primary's.
        self.reads = Reader(read_engine, self.backend, replica=self.replica)
        self.housekeeping = Housekeeping(self.write_engine, self.backend)
        self.sessions = SessionRows(self.write_engine)
        if auto_migrate:
            from joblog.storage.migrate import ensure_schema

            ensure_schema(self.engine, lock_url=self.direct_url)
        self._note_event_layout()

    def _note_event_layout(self) -> None:
        """Tell this store's SQL compilers whether ``log_events`` is partitioned: a job's
        events by ``(key, id)`` are written for each layout's planner (see
        :class:`~joblog.storage.dialects.base.KeyRange`). A table converted while this
        store runs keeps the other form until the next start: slower, never wrong."""
        partitions = self.backend.event_partitions()
        if partitions is None:
            return
        try:
            with self.engine.connect() as connection:
                partitioned = partitions.is_partitioned(connection)
        except (sa.exc.SQLAlchemyError, OSError):
            return  # unreachable now: the default form serves both layouts correctly
        for engine in self._engines:
            setattr(engine.dialect, PARTITIONED_EVENTS, partitioned)

    def _same_backend(self, url: str | sa.URL | None, name: str) -> sa.URL | None:
        if url is None:
            return None
        parsed = parse_url(url)
        if backend_of_url(parsed).name != self.backend.name:
            raise ConfigError(f"{name} must be a {self.dialect} database, like the URL")
        return parsed

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
        if self.replica is not None:
            engines["replica"] = self.replica.engine
        status: dict[str, tuple[int, int]] = {}
        for name, engine in engines.items():
            pool = engine.pool
            checked_out = getattr(pool, "checkedout", None)
            size = getattr(pool, "size", None)
            if callable(checked_out) and callable(size):
                status[name] = (int(checked_out()), int(size()))
        return status

    def write_position(self) -> str | None:
        """The primary's WAL position now, as text, when reads may go to a replica (a
        client that sends it back reads what it wrote: :mod:`joblog.storage.replica`);
        None without a replica."""
        if self.replica is None:
            return None
        with storage_errors("reading the write position"), self.engine.connect() as conn:
            position = self.backend.write_position(conn)
        return None if position is None else format_position(int(position))

    def close(self) -> None:
        if self.replica is not None:
            self.replica.engine.dispose()
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
        self._note_event_layout()
