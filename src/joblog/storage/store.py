"""The Store: one object that owns the engine and every query joblog runs."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa

from joblog.storage import schema
from joblog.storage.engine import (
    WRITE_OPTION,
    Dialect,
    create_engine,
    dialect_of,
    parse_url,
    storage_errors,
)
from joblog.storage.fastread import FastReadQueries, FastReads
from joblog.storage.ids import utcnow
from joblog.storage.maintenance import Maintenance
from joblog.storage.writes import Op, apply_ops, claim_batch_key

__all__ = ["Store", "utcnow"]

log = logging.getLogger("joblog.storage")


class Store(FastReadQueries, Maintenance):
    """Reads and writes joblog's tables on one database.

    ``auto_migrate`` creates the schema in an empty database and refuses one whose
    schema is behind (run ``joblog db upgrade`` for those).
    """

    def __init__(self, url: str | sa.URL, *, auto_migrate: bool = True, **engine_kwargs: object):
        parsed = parse_url(url)
        dialect = dialect_of(parsed)
        assert dialect is not None
        self.dialect: Dialect = dialect
        self.url = parsed
        self.engine = create_engine(parsed, **engine_kwargs)
        self._write_engine = self.engine.execution_options(**{WRITE_OPTION: True})
        self._fast = FastReads(self.engine, dialect)
        if auto_migrate:
            from joblog.storage.migrate import ensure_schema

            ensure_schema(self.engine)

    @property
    def reads_are_local(self) -> bool:
        """True for a SQLite file: a read is a local call of microseconds, no network."""
        return self.dialect == "sqlite" and self._fast.enabled

    def close(self) -> None:
        self._fast.close()
        self.engine.dispose()

    def apply_batch(self, ops: Sequence[Op], batch_key: str | None = None) -> bool:
        """Apply ``ops`` in one transaction; False if ``batch_key`` was already stored."""
        with storage_errors("writing a batch"), self._write_engine.begin() as conn:
            if batch_key is not None and not claim_batch_key(conn, batch_key, utcnow()):
                return False
            apply_ops(conn, self.dialect, ops)
        return True

    def create_tables(self) -> None:
        """Create every table directly from :mod:`schema` (tests and benchmarks only)."""
        with storage_errors("creating tables"):
            schema.metadata.create_all(self.engine)
