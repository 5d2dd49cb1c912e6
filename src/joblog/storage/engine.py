"""Engines, and the one boundary where driver errors become joblog's own.

:func:`create_engine` makes an engine for one purpose: ``read`` (autocommit, no
pre-ping, no reset on return: a read costs one round trip), ``write`` (transactions,
pre-ping), or ``migrate`` (no pool). Backend specifics come from
:mod:`joblog.storage.dialects`.

:func:`translate` maps every error a database access can raise (SQLAlchemy's, any
DBAPI driver's, an encoding error while binding a value, an OSError of the socket or
file) to the tree in :mod:`joblog.exceptions`, using one table from
:class:`~joblog.storage.dialects.ErrorKind` to exception class. :func:`storage_errors`
applies it to a block; nothing raw from a driver gets past it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from joblog.exceptions import (
    ConfigError,
    Conflict,
    DataRejected,
    JobLogError,
    SchemaError,
    StorageError,
    StorageUnavailable,
)
from joblog.storage.dialects import Backend, DialectName, ErrorKind, Purpose, backend_named

__all__ = [
    "backend_of_url",
    "create_engine",
    "describe",
    "is_storage_error",
    "parse_url",
    "storage_errors",
    "translate",
]

#: Root modules of the drivers joblog uses; their exceptions are storage errors.
#: The driver modules joblog uses, and the backend whose errors each raises.
_DRIVER_BACKEND = {
    "sqlite3": "sqlite",
    "_sqlite3": "sqlite",
    "psycopg": "postgresql",
    "pymysql": "mysql",
}
_DRIVER_MODULES = frozenset(_DRIVER_BACKEND)

_KIND_TO_ERROR: dict[ErrorKind, tuple[type[StorageError], bool, str]] = {
    ErrorKind.UNAVAILABLE: (StorageUnavailable, True, "database unavailable while {doing}"),
    ErrorKind.TRANSIENT: (StorageError, True, "database busy while {doing}"),
    ErrorKind.CONFLICT: (Conflict, False, "database refused a duplicate while {doing}"),
    ErrorKind.REJECTED: (DataRejected, False, "database refused a value while {doing}"),
    ErrorKind.PERMANENT: (StorageError, False, "database error while {doing}"),
}

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


def parse_url(url: str | sa.URL) -> sa.URL:
    """``url`` parsed, or ConfigError when it is not a URL of a database joblog supports."""
    try:
        parsed = sa.make_url(url)
    except Exception as error:
        raise ConfigError(f"not a database URL: {url!r} ({error})") from error
    if _backend_name(parsed) is None:
        raise ConfigError(
            f"unsupported database {parsed.drivername!r}: use sqlite:///FILE, "
            "postgresql+psycopg://... or mysql+pymysql://..."
        )
    return parsed


def backend_of_url(url: str | sa.URL) -> Backend:
    parsed = parse_url(url)
    name = _backend_name(parsed)
    assert name is not None
    return backend_named(name)


def _backend_name(url: sa.URL) -> DialectName | None:
    name = url.get_backend_name()
    if name == "sqlite":
        return "sqlite"
    if name == "postgresql":
        return "postgresql"
    if name in ("mysql", "mariadb"):
        return "mysql"
    return None


def create_engine(url: str | sa.URL, purpose: Purpose = "write", **overrides: Any) -> sa.Engine:
    """An engine for ``url`` with joblog's settings for ``purpose`` (see the module doc).

    ``overrides`` are passed to :func:`sqlalchemy.create_engine` over joblog's defaults;
    ``connect_args`` are merged key by key.
    """
    parsed = parse_url(url)
    backend = backend_of_url(parsed)
    if "+" not in parsed.drivername or parsed.drivername in ("mysql", "mariadb"):
        parsed = parsed.set(drivername=backend.default_driver)
    kwargs: dict[str, Any] = {}
    connect_args: dict[str, Any] = {}
    parsed, connect_args = backend.url_options(parsed)
    memory = backend.is_private_memory(parsed)
    if purpose == "read" and not memory:
        kwargs.update(
            isolation_level="AUTOCOMMIT",
            pool_pre_ping=False,
            pool_reset_on_return=None,
            # pymysql sends ROLLBACK on every close, even in autocommit: a round trip each.
            skip_autocommit_rollback=True,
        )
    elif purpose == "write":
        kwargs["pool_pre_ping"] = not memory
    if purpose != "migrate" and backend.name != "sqlite":
        kwargs.update(pool_size=8, max_overflow=8, pool_timeout=30, pool_recycle=3600)
    specific = backend.engine_kwargs(parsed, purpose)
    connect_args = {**specific.pop("connect_args", {}), **connect_args}
    kwargs.update(specific)
    connect_args.update(overrides.pop("connect_args", {}))
    kwargs.update(overrides)
    try:
        engine = sa.create_engine(parsed, connect_args=connect_args, **kwargs)
    except Exception as error:  # e.g. a driver that is not installed
        raise ConfigError(f"cannot use {parsed.render_as_string()}: {error}") from error
    backend.prepare_engine(engine, purpose)
    return engine


# -- the error boundary ------------------------------------------------------------------


def is_storage_error(error: BaseException) -> bool:
    """True for what a database access can raise that is not a bug of the caller."""
    if isinstance(error, exc.SQLAlchemyError | UnicodeError | OSError):
        return True
    if _is_migration_error(error):
        return True
    return type(error).__module__.split(".")[0] in _DRIVER_MODULES


def translate(error: BaseException, doing: str) -> JobLogError:
    """The joblog exception for ``error``, raised while ``doing`` something."""
    if isinstance(error, JobLogError):
        return error
    if _is_migration_error(error):
        return SchemaError(f"{doing} failed: {error}")
    kind = _kind(error)
    cls, transient, text = _KIND_TO_ERROR[kind]
    detail = describe(error)
    return cls(f"{text.format(doing=doing)}: {detail}", transient=transient)


@contextlib.contextmanager
def storage_errors(doing: str) -> Iterator[None]:
    """Re-raise any storage error of the block as joblog's (``raise ... from error``)."""
    try:
        yield
    except JobLogError:
        raise
    except Exception as error:
        if not is_storage_error(error):
            raise
        raise translate(error, doing) from error


def _kind(error: BaseException) -> ErrorKind:
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return ErrorKind.UNAVAILABLE
    if isinstance(error, exc.DisconnectionError | exc.TimeoutError):
        return ErrorKind.UNAVAILABLE
    orig: BaseException = error
    if isinstance(error, exc.StatementError) and error.orig is not None:
        orig = error.orig  # the DBAPI error, or what a bind processor raised
    if isinstance(orig, UnicodeError):
        return ErrorKind.REJECTED  # e.g. a lone surrogate that cannot be encoded
    root = type(orig).__module__.split(".")[0]
    if root in _DRIVER_MODULES:
        name = _DRIVER_BACKEND[root]
        kind = backend_named(name).classify(orig)
        if kind is not None:
            return kind
    if isinstance(orig, OSError):
        return ErrorKind.UNAVAILABLE
    return _pep249_kind(orig)


def _pep249_kind(error: BaseException) -> ErrorKind:
    """Classify by the standard DBAPI class names (PEP 249) and the message."""
    names = {cls.__name__ for cls in type(error).__mro__}
    text = str(error).lower()
    if any(hint in text for hint in _UNAVAILABLE_HINTS) or "InterfaceError" in names:
        return ErrorKind.UNAVAILABLE
    if "IntegrityError" in names:
        unique = "unique" in text or "duplicate" in text
        return ErrorKind.CONFLICT if unique else ErrorKind.REJECTED
    if "DataError" in names:
        return ErrorKind.REJECTED
    if "OperationalError" in names or "InternalError" in names:
        return ErrorKind.TRANSIENT
    return ErrorKind.PERMANENT


def describe(error: BaseException) -> str:
    orig = error.orig if isinstance(error, exc.StatementError) and error.orig else error
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}"[:500]


def _is_migration_error(error: BaseException) -> bool:
    from alembic.script.revision import RevisionError
    from alembic.util.exc import CommandError

    return isinstance(error, CommandError | RevisionError)
