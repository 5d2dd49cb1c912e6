"""Schema migrations: upgrade, downgrade, adopting the older system's database.

Alembic does the work; this module is the boundary the rest of joblog (and the
``joblog db`` command) calls. It adds what a bare ``alembic upgrade`` lacks:

* adoption: a database the older system built (its four tables, no ``alembic_version``)
  is checked against ``0001_base``, its index names normalised to schema.py's, stamped,
  then upgraded, keeping every row (see ``joblog.storage.adoption``);
* a migration lock, so that two processes opening one empty database at once do not
  both build it (the backend's lock, see :mod:`joblog.storage.dialects`; on SQLite one
  ``BEGIN IMMEDIATE`` transaction around the whole run, which also makes it atomic);
* driver and Alembic errors turned into joblog's own at the storage boundary.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from sqlalchemy.util import asbool

from joblog.exceptions import ConfigError, SchemaError, StorageUnavailable
from joblog.storage.adoption import (
    OLDER_SYSTEM_COLUMNS,
    normalise_index_names,
    verify_older_system,
)
from joblog.storage.dialects import backend_for
from joblog.storage.engine import (
    create_engine,
    describe,
    is_storage_error,
    parse_url,
    storage_errors,
)

__all__ = [
    "BASE_REVISION",
    "DatabaseState",
    "current",
    "detect",
    "downgrade",
    "ensure_schema",
    "head_revision",
    "missing_database",
    "stamp",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
BASE_REVISION = "0001_base"
VERSION_TABLE = "alembic_version"

DatabaseState = Literal["empty", "older-system", "managed"]


def head_revision() -> str:
    """The newest revision this version of joblog knows."""
    head = _script().get_current_head()
    assert head is not None, "joblog ships at least one revision"
    return head


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision``, adopting an older-system database."""
    _check_revision(revision)
    with _migration_connection(url) as connection:
        _upgrade_locked(connection, revision)


def downgrade(url: str, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``base`` removes every table)."""
    _check_revision(revision)
    with _migration_connection(url) as connection:
        _run_alembic(connection, lambda cfg: command.downgrade(cfg, revision))


def stamp(url: str, revision: str) -> None:
    """Record ``revision`` as current without running any migration."""
    _check_revision(revision)
    with _migration_connection(url) as connection:
        _run_alembic(connection, lambda cfg: command.stamp(cfg, revision))


def current(url: str) -> str | None:
    """The database's current revision, or None when it has none (empty, older-system,
    or an SQLite file that does not exist, which this does not create)."""
    if missing_database(url) is not None:
        return None
    engine = _engine(url)
    try:
        with _connect(engine) as connection, storage_errors("reading the revision"):
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def missing_database(url: str | sa.URL) -> Path | None:
    """The path of the SQLite file ``url`` names when that file does not exist, else
    None (it exists, the database is in memory, or it is a server's).

    Opening a missing SQLite file creates it, so a command that only reads (``joblog db
    current``) asks this first instead of leaving an empty file behind a typo.
    """
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if asbool(parsed.query.get("uri", False)) and database.startswith("file:"):
        # A URI filename (sqlite:///file:name?mode=ro&uri=true): mode comes from the query.
        if parsed.query.get("mode") == "memory":
            return None
        database = urllib.parse.unquote(urllib.parse.urlsplit(database).path)
    if database in ("", ":memory:"):
        return None
    path = Path(database)
    return None if path.exists() else path


def detect(engine: sa.Engine | sa.Connection) -> DatabaseState:
    """What the database holds: nothing of joblog's, the older system's tables, or a
    schema Alembic manages.

    Some but not all of the older system's tables, and no ``alembic_version``, also
    count as "older-system": adoption then refuses, naming what is missing.
    """
    with storage_errors("inspecting the database"):
        tables = set(sa.inspect(engine).get_table_names())
    if VERSION_TABLE in tables:
        return "managed"
    if tables & set(OLDER_SYSTEM_COLUMNS):
        return "older-system"
    return "empty"


def ensure_schema(engine: sa.Engine) -> None:
    """Make sure a database joblog is about to use has joblog's current schema.

    An empty database is upgraded to head; a database at head passes after one query.
    A database behind head, or one the older system built, is left alone and
    ``SchemaError`` says how to upgrade it: changing a shared schema is the operator's
    decision, not a side effect of opening it.
    """
    head = head_revision()
    if _read_revision(engine) == head:
        return
    if _is_private_memory_database(engine):
        with engine.begin() as connection:
            _ensure_locked(connection, engine.url, head)
        return
    with _migration_connection(engine.url) as connection:
        _ensure_locked(connection, engine.url, head)


# --- internals -------------------------------------------------------------------


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def _config() -> Config:
    cfg = Config()
    # ConfigParser interpolates %; a path containing one must be escaped.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return cfg


def _check_revision(revision: str) -> None:
    """Reject a revision this joblog does not ship before touching the database."""
    if revision in ("head", "heads", "base") or revision[:1] in ("+", "-"):
        return  # symbolic or relative: Alembic resolves those against the database
    try:
        found = _script().get_revision(revision)
    except (CommandError, RevisionError) as exc:
        raise ConfigError(f"unknown revision {revision!r}: {exc}") from exc
    if found is None:
        raise ConfigError(f"unknown revision {revision!r}")


def _is_known(revision: str) -> bool:
    try:
        return _script().get_revision(revision) is not None
    except (CommandError, RevisionError):
        return False


def _run_alembic(connection: sa.Connection, run: Callable[[Config], None]) -> None:
    """Run one Alembic command on ``connection`` (which env.py picks up)."""
    if connection.dialect.name != "sqlite" and connection.in_transaction():
        # Alembic opens its own per-revision transactions; hand it a clean connection.
        connection.commit()
    cfg = _config()
    cfg.attributes["connection"] = connection
    with storage_errors("migrating"):
        run(cfg)


def _upgrade_locked(connection: sa.Connection, revision: str) -> None:
    if detect(connection) == "older-system":
        # Renamed before stamping: a failure leaves the database unstamped, so adoption
        # simply runs again (a rename already done is then skipped).
        verify_older_system(connection)
        with storage_errors("renaming the older system's indexes"):
            normalise_index_names(connection)
        _run_alembic(connection, lambda cfg: command.stamp(cfg, BASE_REVISION))
    _run_alembic(connection, lambda cfg: command.upgrade(cfg, revision))


def _ensure_locked(connection: sa.Connection, url: sa.URL, head: str) -> None:
    """ensure_schema's decision, re-taken under the migration lock: another process
    may have built the schema while this one waited."""
    state = detect(connection)
    revision = _read_revision(connection) if state == "managed" else None
    if revision == head:
        return
    if state == "empty" or (state == "managed" and revision is None and _has_no_tables(connection)):
        _run_alembic(connection, lambda cfg: command.upgrade(cfg, "head"))
        return
    shown = url.render_as_string(hide_password=True)
    if state == "older-system":
        raise SchemaError(
            f"the database at {shown} holds the older system's tables without joblog's"
            f" migrations; adopt it (rows are kept) with: joblog db upgrade --url '{shown}'"
        )
    if revision is not None and not _is_known(revision):
        raise SchemaError(
            f"the database at {shown} is at revision {revision}, which this version of"
            f" joblog does not know (written by a newer joblog?); joblog needs {head}"
        )
    raise SchemaError(
        f"the database at {shown} is at revision {revision or 'none'}, joblog needs {head};"
        f" run: joblog db upgrade --url '{shown}'"
    )


def _has_no_tables(connection: sa.Connection) -> bool:
    tables = set(sa.inspect(connection).get_table_names())
    return not (tables - {VERSION_TABLE}) & set(OLDER_SYSTEM_COLUMNS)


def _read_revision(bind: sa.Engine | sa.Connection) -> str | None:
    """The version row, in one query; None when there is no version table or row."""
    query = sa.text(f"SELECT version_num FROM {VERSION_TABLE}")
    with contextlib.ExitStack() as stack:
        if isinstance(bind, sa.Engine):
            bind = stack.enter_context(_connect(bind))
        try:
            rows = bind.execute(query).scalars().all()
        except (sa.exc.ProgrammingError, sa.exc.OperationalError) as exc:
            # "No such table" is a ProgrammingError on PostgreSQL and MariaDB and an
            # OperationalError on SQLite; detect() sorts out what the database holds.
            if isinstance(exc, sa.exc.OperationalError) and "no such table" not in str(exc):
                raise StorageUnavailable(f"cannot read the schema revision: {exc}") from exc
            return None
    return rows[0] if len(rows) == 1 else None


def _is_private_memory_database(engine: sa.Engine) -> bool:
    """An in-memory SQLite database exists only inside this engine's connections."""
    return engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")


def _engine(url: str | sa.URL) -> sa.Engine:
    """A short-lived engine for migration work (no pool; SQLite writes BEGIN IMMEDIATE)."""
    return create_engine(url, "migrate")


@contextlib.contextmanager
def _connect(engine: sa.Engine) -> Iterator[sa.Connection]:
    try:
        connection = engine.connect()
    except Exception as error:
        if not is_storage_error(error):
            raise
        shown = engine.url.render_as_string(hide_password=True)
        raise StorageUnavailable(f"cannot connect to {shown}: {describe(error)}") from error
    with connection:
        yield connection


@contextlib.contextmanager
def _migration_connection(url: str | sa.URL) -> Iterator[sa.Connection]:
    """A connection holding the migration lock for as long as the block runs."""
    engine = _engine(url)
    try:
        with _connect(engine) as connection:
            if engine.dialect.name == "sqlite":
                with storage_errors("migrating"), connection.begin():
                    yield connection
            else:
                # The lock on a connection of its own: Alembic commits on this one.
                with _connect(engine) as holder, _locked(holder):
                    yield connection
    finally:
        engine.dispose()


@contextlib.contextmanager
def _locked(holder: sa.Connection) -> Iterator[None]:
    """The backend's migration lock for this database, held on ``holder``."""
    name = f"joblog-migrate:{holder.engine.url.database or ''}"
    lock = backend_for(holder).migration_lock(holder, name)
    with storage_errors("taking the migration lock"):
        lock.__enter__()
    try:
        yield
    finally:
        with storage_errors("releasing the migration lock"):
            lock.__exit__(None, None, None)
