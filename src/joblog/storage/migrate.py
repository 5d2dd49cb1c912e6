"""Schema migrations: upgrade, downgrade, adopting the older system's database.

Alembic does the work; this module is the boundary the rest of joblog (and the
``joblog db`` command) calls. It adds what a bare ``alembic upgrade`` lacks:

* adoption: the platform's own database (its tables, no joblog revision) is recognised
  as one of its vintages, recorded, stamped with the matching revision, then upgraded,
  keeping every value and index (see ``joblog.storage.adoption``); an adoption that
  fails is undone, so the database is either adopted or as it was;
* a dry run: :func:`plan_upgrade` (what ``joblog db upgrade --check`` prints) and
  :func:`upgrade_sql` (Alembic's offline SQL, ``--sql``), neither changing anything;
* a migration lock, so that two processes opening one empty database at once do not
  both build it (the backend's lock, see :mod:`joblog.storage.dialects`; on SQLite one
  ``BEGIN IMMEDIATE`` transaction around the whole run, which also makes it atomic);
* driver and Alembic errors turned into joblog's own at the storage boundary.
"""

from __future__ import annotations

import contextlib
import io
import logging
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
    ADOPTION_TABLE,
    ORIGIN_TABLES,
    AdoptionPlan,
    plan_adoption,
    read_record,
    record_statements,
    write_record,
)
from joblog.storage.dialects import backend_for
from joblog.storage.engine import (
    create_engine,
    describe,
    is_storage_error,
    parse_url,
    storage_errors,
)
from joblog.storage.widening import restore_refusals

__all__ = [
    "BASE_REVISION",
    "NEW_DATABASE",
    "DatabaseState",
    "UpgradePlan",
    "current",
    "detect",
    "downgrade",
    "ensure_schema",
    "head_revision",
    "missing_database",
    "plan_upgrade",
    "stamp",
    "upgrade",
    "upgrade_sql",
]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
#: The Alembic config attribute that tells revisions the database held nothing of joblog's
#: (nor the platform's) when this run started: 0006 then builds log_events partitioned.
NEW_DATABASE = "joblog_new_database"
BASE_REVISION = "0001_base"
VERSION_TABLE = "alembic_version"

DatabaseState = Literal["empty", "platform", "managed"]


@dataclass(frozen=True, slots=True)
class UpgradePlan:
    """What ``upgrade`` would do to a database, found without changing it."""

    state: DatabaseState
    current: str | None
    target: str
    adoption: AdoptionPlan | None
    #: The revisions it would apply, oldest first.
    revisions: list[str]

    def describe(self) -> list[str]:
        lines = [f"database: {self.state}, revision {self.current or '(none)'}"]
        if self.adoption is not None:
            lines += [f"adopt: {line}" for line in self.adoption.describe()]
        if self.revisions:
            lines.append("apply: " + ", ".join(self.revisions))
        else:
            lines.append(f"nothing to apply: already at {self.target}")
        return lines


def head_revision() -> str:
    """The newest revision this version of joblog knows."""
    head = _script().get_current_head()
    assert head is not None, "joblog ships at least one revision"
    return head


def upgrade(url: str, revision: str = "head") -> AdoptionPlan | None:
    """Upgrade the database at ``url`` to ``revision``, adopting the platform's database
    first; returns the adoption's plan when there was one (its vintage, its stamp)."""
    _check_revision(revision)
    with _migration_connection(url) as connection:
        return _upgrade_locked(connection, revision)


def downgrade(url: str, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision``.

    ``base`` removes every joblog table; on an adopted platform database it removes
    everything joblog added (and restores the columns it widened), leaving the
    platform's tables as they were before adoption.
    """
    _check_revision(revision)
    with _migration_connection(url) as connection:
        _downgrade_locked(connection, revision)


def plan_upgrade(url: str, revision: str = "head") -> UpgradePlan:
    """What ``upgrade(url, revision)`` would do, reading only (``--check``)."""
    _check_revision(revision)
    if missing_database(url) is not None:
        return UpgradePlan("empty", None, revision, None, _revisions_between(None, revision))
    engine = _engine(url)
    try:
        with _connect(engine) as connection, storage_errors("planning the upgrade"):
            state = detect(connection)
            adoption = plan_adoption(connection) if state == "platform" else None
            now = _read_revision(connection) if state == "managed" else None
            connection.rollback()
    finally:
        engine.dispose()
    start = adoption.vintage.stamp if adoption is not None else now
    revisions = _revisions_between(start, revision)
    if adoption is not None:
        revisions = [f"stamp {adoption.vintage.stamp}", *revisions]
    return UpgradePlan(state, now, revision, adoption, revisions)


def upgrade_sql(url: str, revision: str = "head") -> str:
    """The SQL ``upgrade(url, revision)`` would run, from Alembic's offline mode
    (``--sql``); only reads the database, to learn its revision or vintage."""
    plan = plan_upgrade(url, revision)
    cfg = _config()
    cfg.set_main_option(
        "sqlalchemy.url", parse_url(url).render_as_string(hide_password=True).replace("%", "%%")
    )
    buffer = io.StringIO()
    cfg.output_buffer = buffer
    with storage_errors("writing the SQL"):
        if plan.adoption is not None:
            dialect = parse_url(url).get_dialect()()
            buffer.write(f"-- joblog: adopting {plan.adoption.describe()[0]}\n")
            for statement in record_statements(plan.adoption):
                compiled = statement.compile(
                    dialect=dialect, compile_kwargs={"literal_binds": True}
                )
                buffer.write(f"{str(compiled).strip()};\n\n")
            cfg.attributes["origin_record"] = plan.adoption.record
            command.stamp(cfg, plan.adoption.vintage.stamp, sql=True)
            command.upgrade(cfg, f"{plan.adoption.vintage.stamp}:{revision}", sql=True)
        elif plan.current is not None:
            if plan.revisions:
                command.upgrade(cfg, f"{plan.current}:{revision}", sql=True)
        else:
            cfg.attributes[NEW_DATABASE] = True
            command.upgrade(cfg, revision, sql=True)
    return buffer.getvalue()


def stamp(url: str, revision: str) -> None:
    """Record ``revision`` as current without running any migration."""
    _check_revision(revision)
    with _migration_connection(url) as connection:
        _run_alembic(connection, lambda cfg: command.stamp(cfg, revision))


def current(url: str) -> str | None:
    """The database's current revision, or None when it has none (empty, the platform's,
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
    """What the database holds: nothing of joblog's, the platform's tables without a
    joblog revision, or a schema Alembic manages.

    Some but not all of the platform's tables also count as "platform": adoption then
    refuses, naming what is missing. An empty ``alembic_version`` (left by a full
    downgrade) does not make a database managed.
    """
    with storage_errors("inspecting the database"):
        tables = set(sa.inspect(engine).get_table_names())
        if VERSION_TABLE in tables and _read_revision(engine) is not None:
            return "managed"
    if tables & set(ORIGIN_TABLES):
        return "platform"
    return "empty"


def ensure_schema(engine: sa.Engine, *, lock_url: str | sa.URL | None = None) -> None:
    """Make sure a database joblog is about to use has joblog's current schema.

    An empty database is upgraded to head; a database at head passes after one query.
    A database behind head, or one the older system built, is left alone and
    ``SchemaError`` says how to upgrade it: changing a shared schema is the operator's
    decision, not a side effect of opening it. ``lock_url``: where to take the migration
    lock and migrate when ``engine`` goes through a transaction pooler (a session lock
    there would be held by whichever server connection ran it).
    """
    head = head_revision()
    if _read_revision(engine) == head:
        return
    if _is_private_memory_database(engine):
        with engine.begin() as connection:
            _ensure_locked(connection, engine.url, head)
        return
    with _migration_connection(lock_url or engine.url) as connection:
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


def _run_alembic(
    connection: sa.Connection, run: Callable[[Config], None], *, new_database: bool = False
) -> None:
    """Run one Alembic command on ``connection`` (which env.py picks up).

    ``new_database``: the run builds joblog's schema in a database that held nothing
    (revisions may then build a table its newest way, see :data:`NEW_DATABASE`)."""
    if connection.dialect.name != "sqlite" and connection.in_transaction():
        # Alembic opens its own per-revision transactions; hand it a clean connection.
        connection.commit()
    cfg = _config()
    cfg.attributes["connection"] = connection
    cfg.attributes[NEW_DATABASE] = new_database
    with storage_errors("migrating"):
        run(cfg)


def _revisions_between(start: str | None, target: str) -> list[str]:
    """The revisions an upgrade from ``start`` (None: nothing) to ``target`` applies."""
    with storage_errors("reading the revisions"):
        try:
            found = _script().iterate_revisions(target, start or "base")
            return [r.revision for r in reversed(list(found)) if r is not None]
        except (CommandError, RevisionError) as exc:
            raise ConfigError(f"cannot upgrade from {start or 'base'} to {target}: {exc}") from exc


def _upgrade_locked(connection: sa.Connection, revision: str) -> AdoptionPlan | None:
    state = detect(connection)
    if state != "platform":
        new = state == "empty"
        _run_alembic(connection, lambda cfg: command.upgrade(cfg, revision), new_database=new)
        return None
    # Everything that could refuse is checked first, reading only: the vintage, joblog's
    # leftovers, index names, the types to widen, the target.
    with storage_errors("inspecting the platform's tables"):
        plan = plan_adoption(connection)
    stamp_at = plan.vintage.stamp
    _revisions_between(stamp_at, revision)
    if connection.in_transaction():
        connection.commit()
    with storage_errors("recording the adoption"):
        write_record(connection, plan)
    try:
        _run_alembic(connection, lambda cfg: command.stamp(cfg, stamp_at))
        _run_alembic(connection, lambda cfg: command.upgrade(cfg, revision))
    except Exception as error:
        _undo_adoption(connection, revision, error)
        raise
    logger.info("adopted the platform's database, vintage %s, at %s", plan.vintage.name, stamp_at)
    return plan


def _undo_adoption(connection: sa.Connection, target: str, error: Exception) -> None:
    """Put a database whose adoption failed back as it was: the revision that failed
    may be half-applied (MariaDB commits each DDL statement), so it is stamped and
    downgraded too; every downgrade step tolerates what was never done."""
    try:
        if connection.in_transaction():
            connection.rollback()
        reached = _read_revision(connection)
        if connection.in_transaction():
            connection.commit()
        if reached is not None:
            pending = _revisions_between(reached, target)
            if pending:
                _run_alembic(connection, lambda cfg: command.stamp(cfg, pending[0]))
            _downgrade_locked(connection, "base")
        else:
            _drop_adoption_tables(connection)
    except Exception as undo_error:
        raise SchemaError(
            f"adopting the database failed ({error}), and undoing the adoption failed too"
            f" ({undo_error}): it is partly adopted. Run joblog db upgrade again to finish,"
            " or joblog db downgrade base to undo (both may be run again)"
        ) from error
    logger.warning("adoption failed and was undone: %s", error)


def _downgrade_locked(connection: sa.Connection, revision: str) -> None:
    with storage_errors("reading the adoption record"):
        record = read_record(connection)
    adopted = record is not None
    if record is not None and _passes(connection, revision, WIDENING_REVISION):
        with storage_errors("checking the adopted columns"):
            refusals = restore_refusals(connection, record.widenings)
        if refusals:
            raise SchemaError(refusals)
    _run_alembic(connection, lambda cfg: command.downgrade(cfg, revision))
    if adopted and _read_revision(connection) is None:
        # Un-adopted: the platform's database as it was, without joblog's version table.
        _drop_adoption_tables(connection)


#: The revision that widens the platform's columns (its downgrade may refuse).
WIDENING_REVISION = "0003a_adopted_origin"


def _passes(connection: sa.Connection, target: str, revision: str) -> bool:
    """Whether downgrading to ``target`` undoes ``revision`` (relative targets: False,
    the revision's own check still refuses)."""
    current = _read_revision(connection)
    if current is None or target[:1] in ("+", "-"):
        return False
    lower = None if target == "base" else target
    try:
        undone = _script().iterate_revisions(current, lower)
        return any(step.revision == revision for step in undone if step is not None)
    except (CommandError, RevisionError):
        return False


def _drop_adoption_tables(connection: sa.Connection) -> None:
    with storage_errors("removing joblog's adoption tables"):
        if connection.in_transaction():
            connection.commit()
        for table in (ADOPTION_TABLE, VERSION_TABLE):
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        if connection.in_transaction():
            connection.commit()


def _ensure_locked(connection: sa.Connection, url: sa.URL, head: str) -> None:
    """ensure_schema's decision, re-taken under the migration lock: another process
    may have built the schema while this one waited."""
    state = detect(connection)
    revision = _read_revision(connection) if state == "managed" else None
    if revision == head:
        return
    if state == "empty" or (state == "managed" and revision is None and _has_no_tables(connection)):
        _run_alembic(connection, lambda cfg: command.upgrade(cfg, "head"), new_database=True)
        return
    shown = url.render_as_string(hide_password=True)
    if state == "platform":
        raise SchemaError(
            f"the database at {shown} holds the platform's tables without joblog's"
            f" migrations; see what adopting it does with: joblog db upgrade --check --url"
            f" '{shown}', then adopt it (values and indexes are kept) with: joblog db"
            f" upgrade --url '{shown}'"
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
    return not (tables - {VERSION_TABLE}) & set(ORIGIN_TABLES)


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
