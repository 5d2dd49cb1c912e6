"""joblog's own needs: external IDs on jobs, planned steps, cancellation, heartbeats,
step weights, a time index on log_events, and ingest_batches for exactly-once batches.

Every added column is NULL or has a server default, so existing rows stay valid and
keep their values; on MariaDB these are instant ADD COLUMNs.

Revision ID: 0003_joblog
Revises: 0002_external_job_id
Create Date: 2025-09-23
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision: str = "0003_joblog"
down_revision: str | None = "0002_external_job_id"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def timestamp() -> sa.types.TypeEngine[Any]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def json_type() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("job_tracking", sa.Column("external_job_id", sa.String(255), nullable=True))
    op.add_column("job_tracking", sa.Column("planned_steps", json_type(), nullable=True))
    op.add_column(
        "job_tracking",
        sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("job_tracking", sa.Column("heartbeat_at", timestamp(), nullable=True))
    op.create_index("idx_job_tracking_external_job_id", "job_tracking", ["external_job_id"])

    op.add_column("job_steps", sa.Column("weight", sa.Float(), nullable=False, server_default="1"))
    op.add_column(
        "job_steps",
        sa.Column("allow_failure", sa.Boolean(), nullable=False, server_default=sa.false()),
    )

    op.create_index("idx_log_events_ts", "log_events", ["ts"])

    op.create_table(
        "ingest_batches",
        sa.Column("batch_key", sa.String(128), nullable=False),
        sa.Column("created_at", timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("batch_key", name="pk_ingest_batches"),
    )
    op.create_index("idx_ingest_batches_created_at", "ingest_batches", ["created_at"])


def downgrade() -> None:
    op.drop_index("idx_ingest_batches_created_at", table_name="ingest_batches")
    op.drop_table("ingest_batches")

    op.drop_index("idx_log_events_ts", table_name="log_events")

    op.drop_column("job_steps", "allow_failure")
    op.drop_column("job_steps", "weight")

    # Indexes go before their columns: SQLite only drops a column no index refers to.
    op.drop_index("idx_job_tracking_external_job_id", table_name="job_tracking")
    op.drop_column("job_tracking", "heartbeat_at")
    op.drop_column("job_tracking", "cancel_requested")
    op.drop_column("job_tracking", "planned_steps")
    op.drop_column("job_tracking", "external_job_id")
