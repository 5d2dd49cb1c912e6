"""The database enforces "reject", and MariaDB compares IDs exactly.

* ``job_tracking.exclusive_external_id`` (false for every existing row, and for the
  rows the origin's Go tracker goes on writing) marks a job started under the
  ``reject`` policy. A unique index allows one open (pending or running) exclusive
  holder per external ID, so of any number of concurrent starts exactly one inserts its
  row: a partial unique index on PostgreSQL and SQLite; on MariaDB, which has no
  partial indexes, a unique index on a VIRTUAL column that is the external ID while the
  job holds it and NULL otherwise. Existing rows are not exclusive, so the index cannot
  fail to build on a database that already has duplicates.
* MariaDB: the looked-up ID columns (external and context IDs, batch keys, the legacy
  failover job ID) move to ``utf8mb4_nopad_bin``, so ``rs-VM-X `` no longer equals
  ``rs-vm-x`` and emoji no longer all compare equal. Values are unchanged (a collation
  says how to compare, not what is stored); each column keeps its type, length,
  nullability, default and comment, and its indexes keep their names. Every change is
  ``ALGORITHM=INPLACE, LOCK=NONE`` except ``ingest_batches.batch_key``, a primary key,
  whose small table is copied with ``LOCK=SHARED`` (reads go on, batch writes wait).
  Job IDs keep their collation (they are UUIDs; the origin's other tables have foreign
  keys to ``job_tracking.id`` that require the same collation on both sides).

Each step may be run again after an interruption (IF [NOT] EXISTS; a collation already
exact is skipped).

Revision ID: 0004_exact_ids
Revises: 0003a_adopted_origin
Create Date: 2026-12-04
"""

from __future__ import annotations

from typing import cast

import sqlalchemy as sa
from alembic import op
from alembic.operations import Operations

from joblog.storage.dialects import backend_named

revision: str = "0004_exact_ids"
down_revision: str | None = "0003a_adopted_origin"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

INDEX = "uq_job_tracking_running_external_id"
COLUMN = "exclusive_external_id"
VIRTUAL = "running_external_id"
EXACT = "utf8mb4_nopad_bin"
HOLDS = f"{COLUMN} AND status IN ('pending', 'running')"

#: MariaDB: the columns compared as IDs, and so given the exact collation, with the
#: definition joblog declares (used only for offline SQL, which cannot read the catalog).
ID_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("job_tracking", "external_job_id", "VARCHAR(255) NULL"),
    ("job_tracking", "context_id", "VARCHAR(255) NULL"),
    ("log_events", "external_job_id", "VARCHAR(255) NULL"),
    ("ingest_batches", "batch_key", "VARCHAR(128) NOT NULL"),
    ("failover_jobs", "job_id", "VARCHAR(255) NOT NULL"),
)


def upgrade() -> None:
    name = op.get_context().dialect.name
    backend = backend_named(name)
    if name == "sqlite":
        op.add_column(
            "job_tracking",
            sa.Column(COLUMN, sa.Boolean(), nullable=False, server_default=sa.false()),
        )
        op.execute(f"CREATE UNIQUE INDEX {INDEX} ON job_tracking (external_job_id) WHERE {HOLDS}")
        return
    if name == "postgresql":
        # A boolean with a constant default is a catalog-only change since PostgreSQL 11.
        op.execute(
            f"ALTER TABLE job_tracking ADD COLUMN IF NOT EXISTS {COLUMN}"
            " BOOLEAN NOT NULL DEFAULT false"
        )
        with op.get_context().autocommit_block():
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
            op.execute(
                f"CREATE UNIQUE INDEX CONCURRENTLY {INDEX} ON job_tracking (external_job_id)"
                f" WHERE {HOLDS}"
            )
        return
    for table, column, declared in ID_COLUMNS:
        _set_collation(table, column, EXACT, declared)
    backend.add_column_online(_ops(), "job_tracking", f"{COLUMN} BOOLEAN NOT NULL DEFAULT 0")
    backend.add_column_online(
        _ops(),
        "job_tracking",
        f"{VIRTUAL} VARCHAR(255) CHARACTER SET utf8mb4 COLLATE {EXACT}"
        f" AS (IF({HOLDS}, external_job_id, NULL)) VIRTUAL",
    )
    backend.create_index_online(_ops(), INDEX, "job_tracking", [VIRTUAL], unique=True)


def downgrade() -> None:
    name = op.get_context().dialect.name
    backend = backend_named(name)
    if name == "sqlite":
        op.execute(f"DROP INDEX IF EXISTS {INDEX}")
        op.drop_column("job_tracking", COLUMN)
        return
    if name == "postgresql":
        backend.drop_column_online(_ops(), "job_tracking", COLUMN, indexes=[INDEX])
        return
    # MariaDB drops a virtual column in place only in an ALTER TABLE of its own.
    backend.drop_index_online(_ops(), INDEX, "job_tracking")
    backend.drop_column_online(_ops(), "job_tracking", VIRTUAL)
    backend.drop_column_online(_ops(), "job_tracking", COLUMN)
    for table, column, declared in ID_COLUMNS:
        _set_collation(table, column, None, declared)


def _set_collation(table: str, column: str, collation: str | None, declared: str) -> None:
    """MODIFY one column to ``collation`` (None: the table's default), keeping its type,
    nullability, default and comment as the catalog has them; skipped when the column
    is absent or already there. Offline (``--sql``) the catalog cannot be read: the
    statement shows joblog's declared definition, and says so."""
    context = op.get_context()
    if context.as_sql:
        target = f"CHARACTER SET utf8mb4 COLLATE {collation}" if collation else ""
        context.impl.static_output(
            f"-- {table}.{column}: online, the column's own type, nullability and default"
            " are kept (read from information_schema)"
        )
        how = (
            "ALGORITHM=COPY, LOCK=SHARED"
            if table == "ingest_batches"
            else ("ALGORITHM=INPLACE, LOCK=NONE")
        )
        op.execute(f"ALTER TABLE {table} MODIFY {column} {declared} {target}, {how}")
        return
    bind = op.get_bind()
    found = (
        bind.execute(
            sa.text(
                "SELECT c.COLUMN_TYPE, c.COLUMN_KEY, c.IS_NULLABLE, c.COLUMN_DEFAULT,"
                " c.COLUMN_COMMENT, c.COLLATION_NAME, t.TABLE_COLLATION"
                " FROM information_schema.COLUMNS c JOIN information_schema.TABLES t"
                " ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME"
                " WHERE c.TABLE_SCHEMA = DATABASE() AND c.TABLE_NAME = :t AND c.COLUMN_NAME = :c"
            ),
            {"t": table, "c": column},
        )
        .mappings()
        .first()
    )
    if found is None:
        return
    target = collation or str(found["TABLE_COLLATION"])
    if found["COLLATION_NAME"] == target:
        return
    charset = target.split("_", 1)[0]
    parts = [
        f"MODIFY {column} {found['COLUMN_TYPE']} CHARACTER SET {charset} COLLATE {target}",
        "NULL" if found["IS_NULLABLE"] == "YES" else "NOT NULL",
    ]
    if found["COLUMN_DEFAULT"] is not None:
        parts.append(f"DEFAULT {found['COLUMN_DEFAULT']}")  # MariaDB gives it as SQL
    if found["COLUMN_COMMENT"]:
        parts.append("COMMENT " + _quote_literal(str(found["COLUMN_COMMENT"])))
    # A primary key's collation cannot change in place (the rows are stored in its order):
    # the table is copied, readers go on and writers wait (ingest_batches only, a table
    # that retention keeps small).
    how = (
        "ALGORITHM=COPY, LOCK=SHARED"
        if found["COLUMN_KEY"] == "PRI"
        else "ALGORITHM=INPLACE, LOCK=NONE"
    )
    op.execute(f"ALTER TABLE {table} {' '.join(parts)}, {how}")


def _quote_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _ops() -> Operations:
    """``alembic.op`` proxies the running migration's Operations object."""
    return cast(Operations, op)
