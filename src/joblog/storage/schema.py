"""Every table joblog uses, declared once on one MetaData.

The Alembic revisions under ``joblog/migrations`` build exactly this schema (a test
proves it). The shapes follow the older system the seed plan describes: VARCHAR(64)
job IDs, an ENUM level, JSON attrs (LONGTEXT with a JSON check on MariaDB), and
DATETIME(6) timestamps (naive UTC everywhere).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

__all__ = [
    "FAILOVER_JOB_TYPES",
    "FAILOVER_STATUSES",
    "LEVELS",
    "failover_jobs",
    "ingest_batches",
    "job_steps",
    "job_tracking",
    "log_events",
    "metadata",
]

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

# Constraint names are fixed so that migrations, downgrades and reflection agree.
metadata = sa.MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "ix": "idx_%(table_name)s_%(column_0_N_name)s",
    }
)


def timestamp() -> sa.types.TypeEngine[Any]:
    """Naive UTC with microseconds: DATETIME(6) on MySQL/MariaDB, TIMESTAMP elsewhere."""
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def json_type() -> sa.types.TypeEngine[Any]:
    """JSON; JSONB on PostgreSQL, LONGTEXT with a json_valid check on MariaDB."""
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def big_id() -> sa.types.TypeEngine[int]:
    """BIGINT, but INTEGER on SQLite so that the primary key is the rowid."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


job_tracking = sa.Table(
    "job_tracking",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column(
        "parent_job_id",
        sa.String(64),
        sa.ForeignKey("job_tracking.id", ondelete="SET NULL"),
        nullable=True,
        index=True,
    ),
    sa.Column("job_type", sa.String(50), nullable=False, index=True),
    sa.Column("operation", sa.String(100), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("external_job_id", sa.String(255), nullable=True, index=True),
    sa.Column("context_id", sa.String(255), nullable=True, index=True),
    sa.Column("owner", sa.String(255), nullable=True),
    sa.Column("percent_complete", sa.Integer, nullable=False, server_default="0"),
    sa.Column("metadata", json_type(), nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("planned_steps", json_type(), nullable=True),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", timestamp(), nullable=False, index=True),
    sa.Column("started_at", timestamp(), nullable=True),
    sa.Column("completed_at", timestamp(), nullable=True),
    sa.Column("updated_at", timestamp(), nullable=True),
    sa.Column("heartbeat_at", timestamp(), nullable=True),
)

job_steps = sa.Table(
    "job_steps",
    metadata,
    sa.Column("id", big_id(), primary_key=True, autoincrement=True),
    sa.Column(
        "job_id",
        sa.String(64),
        sa.ForeignKey("job_tracking.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("weight", sa.Float, nullable=False, server_default="1"),
    sa.Column("allow_failure", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("started_at", timestamp(), nullable=True),
    sa.Column("completed_at", timestamp(), nullable=True),
    sa.UniqueConstraint("job_id", "seq"),
)

log_events = sa.Table(
    "log_events",
    metadata,
    sa.Column("id", big_id(), primary_key=True, autoincrement=True),
    sa.Column(
        "job_id",
        sa.String(64),
        sa.ForeignKey("job_tracking.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    ),
    sa.Column(
        "step_id",
        big_id(),
        sa.ForeignKey("job_steps.id", ondelete="SET NULL"),
        nullable=True,
        index=True,
    ),
    sa.Column("level", sa.Enum(*LEVELS, name="log_level"), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("attrs", json_type(), nullable=True),
    sa.Column("ts", timestamp(), nullable=False, index=True),
    # The seed's change: the GUI-constructed ID, indexed for a direct lookup.
    sa.Column("external_job_id", sa.String(255), nullable=True, index=True),
)

failover_jobs = sa.Table(
    "failover_jobs",
    metadata,
    sa.Column("id", big_id(), primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(255), nullable=False, unique=True),
    sa.Column("vm_id", sa.String(64), nullable=True),
    sa.Column("job_type", sa.Enum(*FAILOVER_JOB_TYPES, name="failover_job_type"), nullable=False),
    sa.Column(
        "status",
        sa.Enum(*FAILOVER_STATUSES, name="failover_status"),
        nullable=False,
        server_default="pending",
    ),
    sa.Column("source_vm_name", sa.String(255), nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("created_at", timestamp(), nullable=False),
    sa.Column("updated_at", timestamp(), nullable=True),
    sa.Column("completed_at", timestamp(), nullable=True),
)

# One row per stored batch: makes a retried batch (writer or HTTP) land exactly once.
ingest_batches = sa.Table(
    "ingest_batches",
    metadata,
    sa.Column("batch_key", sa.String(128), primary_key=True),
    sa.Column("created_at", timestamp(), nullable=False, index=True),
)
