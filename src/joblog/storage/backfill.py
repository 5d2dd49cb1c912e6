"""The external-ID backfill: fill ``log_events.external_job_id`` on rows written before
the column existed, from the event's job or from its attrs.

On an adopted platform database the job's value is the platform's own
``job_tracking.external_job_id`` (vintages b and c), so events of such jobs stay
findable by external ID after a downgrade (which drops joblog's log_events column in
vintages a and b) and an upgrade. In vintage c ``log_events.external_job_id`` is the
platform's own column, which the Go tracker fills: adoption changes no original value,
so the backfill leaves it as the platform wrote it.

Kept apart from ``joblog.storage.migrate``: a migration changes the schema once under a
lock, while the backfill is a long, resumable data job an operator runs (and may rerun)
after upgrading, one committed batch at a time.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import sqlalchemy as sa

from joblog.exceptions import ConfigError, SchemaError
from joblog.storage.adoption import read_record
from joblog.storage.engine import storage_errors
from joblog.storage.migrate import _connect, _engine, _read_revision, head_revision
from joblog.storage.schema import job_tracking, log_events

__all__ = ["backfill", "platform_owns_the_column"]


def backfill(
    url: str,
    batch_size: int = 5000,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Fill ``log_events.external_job_id`` where it is NULL and derivable; return how
    many rows were filled.

    The value comes from the event's job (``job_tracking.external_job_id``), else from
    an ``external_job_id`` key in its attrs. Batches follow the primary key and each
    commits on its own, so an interrupted run loses at most one batch and a rerun goes
    on from there (filled rows are no longer NULL). ``progress(examined, total)`` is
    called after each committed batch.
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, not {batch_size}")
    engine = _engine(url)
    try:
        with _connect(engine) as connection, storage_errors("backfilling external_job_id"):
            with connection.begin():
                revision = _read_revision(connection)
            if revision != head_revision():
                raise SchemaError(
                    f"backfill needs the schema at {head_revision()}, the database is at"
                    f" {revision or 'none'}; run: joblog db upgrade first"
                )
            with connection.begin():
                origin = read_record(connection)
            if origin is not None and origin.has_column("log_events", "external_job_id"):
                return 0
            return _backfill_batches(connection, batch_size, progress)
    finally:
        engine.dispose()


def platform_owns_the_column(url: str) -> bool:
    """Whether ``log_events.external_job_id`` is the adopted platform's own (vintage c),
    which the backfill leaves alone."""
    engine = _engine(url)
    try:
        with _connect(engine) as connection, storage_errors("reading the adoption record"):
            origin = read_record(connection)
            return origin is not None and origin.has_column("log_events", "external_job_id")
    finally:
        engine.dispose()


def _backfill_batches(
    connection: sa.Connection,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> int:
    pending = log_events.c.external_job_id.is_(None)
    with connection.begin():
        total = connection.scalar(sa.select(sa.func.count()).where(pending)) or 0
    # attrs is read as text and parsed here: old SQLite rows may hold invalid JSON,
    # which the JSON type would fail on. psycopg decodes JSONB itself unless cast.
    if connection.dialect.name == "postgresql":
        attrs_text: sa.ColumnElement[str] = sa.cast(log_events.c.attrs, sa.Text)
    else:
        attrs_text = sa.type_coerce(log_events.c.attrs, sa.Text)
    select = (
        sa.select(log_events.c.id, job_tracking.c.external_job_id, attrs_text)
        .select_from(log_events.outerjoin(job_tracking, job_tracking.c.id == log_events.c.job_id))
        .where(pending)
        .order_by(log_events.c.id)
        .limit(batch_size)
    )
    update = (
        sa.update(log_events)
        .where(log_events.c.id == sa.bindparam("row_id"), pending)
        .values(external_job_id=sa.bindparam("value"))
    )
    last_id: int | None = None
    examined = updated = 0
    while True:
        with connection.begin():
            batch_query = select if last_id is None else select.where(log_events.c.id > last_id)
            rows = connection.execute(batch_query).all()
            if not rows:
                return updated
            values = [
                {"row_id": row_id, "value": value}
                for row_id, job_external_id, attrs in rows
                if (value := _derive_external_job_id(job_external_id, attrs)) is not None
            ]
            if values:
                result = connection.execute(update, values)
                sane = connection.dialect.supports_sane_multi_rowcount
                updated += result.rowcount if sane else len(values)
        last_id = rows[-1][0]
        examined += len(rows)
        if progress is not None:
            progress(examined, max(total, examined))


def _derive_external_job_id(job_external_id: str | None, attrs: str | bytes | None) -> str | None:
    if job_external_id:
        return job_external_id
    if attrs is None:
        return None
    try:
        parsed = json.loads(attrs)
    except (TypeError, ValueError):
        return None
    value = parsed.get("external_job_id") if isinstance(parsed, dict) else None
    # Only what fits the column: a longer value would fail the whole batch.
    if isinstance(value, str) and 0 < len(value) <= 255:
        return value
    return None
