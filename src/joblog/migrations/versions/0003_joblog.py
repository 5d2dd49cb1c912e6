"""joblog's own needs: external IDs on jobs, planned steps, cancellation, heartbeats,
step weights, a time index on log_events, and ingest_batches for exactly-once batches.

Every added column is NULL or has a server default, so existing rows stay valid and
keep their values, and rows the platform's Go tracker keeps writing (it names only its
own columns) are valid too; on MariaDB these are instant ADD COLUMNs. On an adopted
platform database (vintages b and c), ``job_tracking.external_job_id`` and its index
(``idx_external_job``) are the platform's: recognised, not added, never dropped.

Revision ID: 0003_joblog
Revises: 0002_external_job_id
Create Date: 2025-09-23
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

from joblog.storage.adoption import OriginRecord, origin_record

revision: str = "0003_joblog"
down_revision: str | None = "0002_external_job_id"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def timestamp() -> sa.types.TypeEngine[Any]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def json_type() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    origin = origin_record(op.get_context())
    # On PostgreSQL and MariaDB each step may run again: MariaDB commits every DDL
    # statement, so a run stopped half-way leaves the first steps behind.
    again = _tolerant()
    if not _origin_has(origin, "job_tracking", "external_job_id"):
        op.add_column(
            "job_tracking",
            sa.Column("external_job_id", sa.String(255), nullable=True),
            if_not_exists=again,
        )
    op.add_column(
        "job_tracking", sa.Column("planned_steps", json_type(), nullable=True), if_not_exists=again
    )
    op.add_column(
        "job_tracking",
        sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false()),
        if_not_exists=again,
    )
    op.add_column(
        "job_tracking", sa.Column("heartbeat_at", timestamp(), nullable=True), if_not_exists=again
    )
    if _index_on(origin, "job_tracking", "external_job_id") is None:
        op.create_index(
            "idx_job_tracking_external_job_id",
            "job_tracking",
            ["external_job_id"],
            if_not_exists=again,
        )

    op.add_column(
        "job_steps",
        sa.Column("weight", sa.Float(), nullable=False, server_default="1"),
        if_not_exists=again,
    )
    op.add_column(
        "job_steps",
        sa.Column("allow_failure", sa.Boolean(), nullable=False, server_default=sa.false()),
        if_not_exists=again,
    )

    if _index_on(origin, "log_events", "ts") is None:
        op.create_index("idx_log_events_ts", "log_events", ["ts"], if_not_exists=again)

    op.create_table(
        "ingest_batches",
        sa.Column("batch_key", sa.String(128), nullable=False),
        sa.Column("created_at", timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("batch_key", name="pk_ingest_batches"),
        if_not_exists=again,
    )
    op.create_index(
        "idx_ingest_batches_created_at", "ingest_batches", ["created_at"], if_not_exists=again
    )


def downgrade() -> None:
    origin = origin_record(op.get_context())
    again = _tolerant()
    op.drop_index("idx_ingest_batches_created_at", table_name="ingest_batches", if_exists=again)
    op.drop_table("ingest_batches", if_exists=again)

    if _index_on(origin, "log_events", "ts") is None:
        op.drop_index("idx_log_events_ts", table_name="log_events", if_exists=again)

    op.drop_column("job_steps", "allow_failure", if_exists=again)
    op.drop_column("job_steps", "weight", if_exists=again)

    # Indexes go before their columns: SQLite only drops a column no index refers to.
    if _index_on(origin, "job_tracking", "external_job_id") is None:
        op.drop_index(
            "idx_job_tracking_external_job_id", table_name="job_tracking", if_exists=again
        )
    op.drop_column("job_tracking", "heartbeat_at", if_exists=again)
    op.drop_column("job_tracking", "cancel_requested", if_exists=again)
    op.drop_column("job_tracking", "planned_steps", if_exists=again)
    if not _origin_has(origin, "job_tracking", "external_job_id"):
        op.drop_column("job_tracking", "external_job_id", if_exists=again)


def _tolerant() -> bool | None:
    """IF [NOT] EXISTS where the backend has it (SQLite has no ADD COLUMN IF NOT EXISTS,
    and runs the whole upgrade in one transaction anyway)."""
    return True if op.get_context().dialect.name != "sqlite" else None


def _origin_has(origin: OriginRecord | None, table: str, column: str) -> bool:
    """Whether the adopted platform's table had the column: then it is theirs to keep."""
    return origin is not None and origin.has_column(table, column)


def _index_on(origin: OriginRecord | None, table: str, column: str) -> str | None:
    """The platform's own index on ``column``, whatever its name (joblog adds none then)."""
    return origin.index_on(table, (column,)) if origin is not None else None
