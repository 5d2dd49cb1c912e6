"""The schema as the older system had it, before the seed's change.

job_tracking, job_steps, log_events and failover_jobs as they stood: no external
job ID on log_events and none of joblog's own columns. The platform's own database
(vintages a and b) is adopted by stamping this revision (see
``joblog.storage.adoption``); downgrading such a database below it un-adopts it: the
tables are the platform's, so only joblog's adoption record goes.

Revision ID: 0001_base
Revises:
Create Date: 2025-09-22
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

from joblog.storage.adoption import drop_record_statement, origin_record

revision: str = "0001_base"
down_revision: str | None = None
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

# Types are spelled out here rather than imported from schema.py: a revision must keep
# building what it built when it was written, whatever schema.py says later.
LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
FAILOVER_JOB_TYPES = ("live", "test")
FAILOVER_STATUSES = (
    "pending",
    "validating",
    "snapshotting",
    "creating_vm",
    "switching_volume",
    "powering_on",
    "completed",
    "failed",
    "cleanup",
    "reverting",
)
ENUM_TYPES = ("log_level", "failover_job_type", "failover_status")


def timestamp() -> sa.types.TypeEngine[Any]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def json_type() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def big_id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "job_tracking",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("parent_job_id", sa.String(64), nullable=True),
        sa.Column("job_type", sa.String(50), nullable=False),
        sa.Column("operation", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("context_id", sa.String(255), nullable=True),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("percent_complete", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("metadata", json_type(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", timestamp(), nullable=False),
        sa.Column("started_at", timestamp(), nullable=True),
        sa.Column("completed_at", timestamp(), nullable=True),
        sa.Column("updated_at", timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_job_tracking"),
        sa.ForeignKeyConstraint(
            ["parent_job_id"],
            ["job_tracking.id"],
            name="fk_job_tracking_parent_job_id",
            ondelete="SET NULL",
        ),
    )
    for column in ("parent_job_id", "job_type", "status", "context_id", "created_at"):
        op.create_index(f"idx_job_tracking_{column}", "job_tracking", [column])

    op.create_table(
        "job_steps",
        sa.Column("id", big_id(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("started_at", timestamp(), nullable=True),
        sa.Column("completed_at", timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_job_steps"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job_tracking.id"], name="fk_job_steps_job_id", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("job_id", "seq", name="uq_job_steps_job_id_seq"),
    )

    op.create_table(
        "log_events",
        sa.Column("id", big_id(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(64), nullable=True),
        sa.Column("step_id", big_id(), nullable=True),
        sa.Column("level", sa.Enum(*LEVELS, name="log_level"), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("attrs", json_type(), nullable=True),
        sa.Column("ts", timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_log_events"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job_tracking.id"], name="fk_log_events_job_id", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["step_id"], ["job_steps.id"], name="fk_log_events_step_id", ondelete="SET NULL"
        ),
    )
    op.create_index("idx_log_events_job_id", "log_events", ["job_id"])
    op.create_index("idx_log_events_step_id", "log_events", ["step_id"])

    op.create_table(
        "failover_jobs",
        sa.Column("id", big_id(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(255), nullable=False),
        sa.Column("vm_id", sa.String(64), nullable=True),
        sa.Column(
            "job_type", sa.Enum(*FAILOVER_JOB_TYPES, name="failover_job_type"), nullable=False
        ),
        sa.Column(
            "status",
            sa.Enum(*FAILOVER_STATUSES, name="failover_status"),
            nullable=False,
            server_default="pending",
        ),
        sa.Column("source_vm_name", sa.String(255), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", timestamp(), nullable=False),
        sa.Column("updated_at", timestamp(), nullable=True),
        sa.Column("completed_at", timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_failover_jobs"),
        sa.UniqueConstraint("job_id", name="uq_failover_jobs_job_id"),
    )


def downgrade() -> None:
    if origin_record(op.get_context()) is not None:
        # An adopted database: the four tables, their rows and indexes are the platform's.
        op.execute(drop_record_statement())
        return
    op.drop_table("failover_jobs")
    op.drop_table("log_events")
    op.drop_table("job_steps")
    op.drop_table("job_tracking")
    if op.get_context().dialect.name == "postgresql":
        # DROP TABLE leaves PostgreSQL's named ENUM types behind; they belong to this revision.
        for enum_type in ENUM_TYPES:
            op.execute(f"DROP TYPE IF EXISTS {enum_type}")
