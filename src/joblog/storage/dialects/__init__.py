"""Where the three databases differ: one module per backend behind one small interface.

:class:`~joblog.storage.dialects.base.Backend` names every decision that depends on the
database (engine settings, how a driver error is classified, the bulk insert of log
events, the batch-key claim, several reads in one round trip, the migration lock, online
DDL, the housekeeping lease, time partitions of log_events). Everything else in joblog is
written once, in SQLAlchemy Core. A new backend is one module here and one entry in
``_BACKENDS``.
"""

from __future__ import annotations

import sqlalchemy as sa

from joblog.storage.dialects.base import (
    Backend,
    DialectName,
    ErrorKind,
    KeyRange,
    Purpose,
    Rare,
)
from joblog.storage.dialects.mysql import MySQL
from joblog.storage.dialects.postgresql import PostgreSQL
from joblog.storage.dialects.sqlite import SQLite

__all__ = [
    "Backend",
    "DialectName",
    "ErrorKind",
    "KeyRange",
    "Purpose",
    "Rare",
    "backend_for",
    "backend_named",
]

_BACKENDS: dict[str, Backend] = {"sqlite": SQLite(), "postgresql": PostgreSQL(), "mysql": MySQL()}


def backend_named(name: str) -> Backend:
    """The backend for a SQLAlchemy dialect or backend name (``mariadb`` is ``mysql``)."""
    backend = _BACKENDS.get("mysql" if name == "mariadb" else name)
    if backend is None:
        raise KeyError(name)
    return backend


def backend_for(bind: sa.Engine | sa.Connection | sa.Dialect) -> Backend:
    """The backend of an engine, a connection or a dialect."""
    dialect = bind if isinstance(bind, sa.Dialect) else bind.dialect
    return backend_named(dialect.name)
