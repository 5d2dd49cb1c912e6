"""PostgreSQL: log_events range-partitioned by ts in a new database.

A database this run builds from nothing (``joblog.storage.migrate`` says so in the
config, :data:`~joblog.storage.migrate.NEW_DATABASE`) gets ``log_events`` as a table
partitioned by ``ts``: primary key ``(id, ts)`` (PostgreSQL wants the partition key in
every unique constraint), the same columns, indexes and foreign keys as before, a default
partition and a partition per day from today on (the housekeeper makes the next ones; see
:mod:`joblog.storage.dialects.pg_partitions`). The empty table 0001-0007 built is dropped
and built again, which costs nothing in a new database.

An existing database keeps its ``log_events`` as it is, unpartitioned, and so does one
adopted from the platform: converting a table in use is ``joblog db partition``'s work
(online, see docs/OPERATIONS.md), not an upgrade's. SQLite and MariaDB: nothing.

Downgrade (PostgreSQL, partitioned table, whether built here or converted): the rows are
copied into one plain table that takes the name, primary key ``(id)``, indexes and foreign
keys back. It rewrites the whole table in one transaction: plan for it on a big one.

Revision ID: 0008_partitioned_events
Revises: 0007_serving_lookups
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from joblog._ids import utcnow
from joblog.storage.dialects.pg_partitions import fresh_partitions
from joblog.storage.migrate import NEW_DATABASE

revision: str = "0008_partitioned_events"
down_revision: str | None = "0007_serving_lookups"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
#: log_events' indexes as 0001-0007 left them (name: columns).
INDEXES = {
    "idx_log_events_job_id": ["job_id"],
    "idx_log_events_step_id": ["step_id"],
    "idx_log_events_ts": ["ts"],
    "idx_log_events_external_job_id": ["external_job_id"],
    "idx_log_events_trace_id": ["trace_id"],
    "idx_log_events_job_id_id": ["job_id", "id"],
    "idx_log_events_external_job_id_id": ["external_job_id", "id"],
}
FOREIGN_KEYS: list[tuple[str, str, str, str]] = [
    ("fk_log_events_job_id", "job_id", "job_tracking.id", "CASCADE"),
    ("fk_log_events_step_id", "step_id", "job_steps.id", "SET NULL"),
]


def upgrade() -> None:
    context = op.get_context()
    if context.dialect.name != "postgresql":
        return
    config = context.config
    if config is None or not config.attributes.get(NEW_DATABASE, False):
        return
    op.drop_table("log_events")
    op.create_table(
        "log_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(64), nullable=True),
        sa.Column("step_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "level", postgresql.ENUM(*LEVELS, name="log_level", create_type=False), nullable=False
        ),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("attrs", postgresql.JSONB(), nullable=True),
        sa.Column("ts", sa.DateTime(), nullable=False),
        sa.Column("external_job_id", sa.String(255), nullable=True),
        sa.Column("trace_id", sa.String(32), nullable=True),
        sa.Column("span_id", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("id", "ts", name="pk_log_events"),
        *_foreign_keys(),
        postgresql_partition_by="RANGE (ts)",
    )
    for name, columns in INDEXES.items():
        op.create_index(name, "log_events", columns)
    for statement in fresh_partitions(utcnow()):
        op.execute(statement)


def downgrade() -> None:
    context = op.get_context()
    if context.dialect.name != "postgresql":
        return
    if not context.as_sql:
        kind = op.get_bind().scalar(
            sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass('log_events')")
        )
        if kind != "p":
            return
    op.execute("CREATE TABLE log_events_plain (LIKE log_events INCLUDING DEFAULTS)")
    op.execute("INSERT INTO log_events_plain SELECT * FROM log_events")
    # The sequence of ids goes with the column, not with the table dropped next.
    op.execute("ALTER SEQUENCE log_events_id_seq OWNED BY log_events_plain.id")
    op.execute("DROP TABLE log_events")
    op.rename_table("log_events_plain", "log_events")
    op.create_primary_key("pk_log_events", "log_events", ["id"])
    for name, column, target, ondelete in FOREIGN_KEYS:
        table, remote = target.split(".")
        op.create_foreign_key(name, "log_events", table, [column], [remote], ondelete=ondelete)
    for name, columns in INDEXES.items():
        op.create_index(name, "log_events", columns)


def _foreign_keys() -> list[Any]:
    return [
        sa.ForeignKeyConstraint([column], [target], name=name, ondelete=ondelete)
        for name, column, target, ondelete in FOREIGN_KEYS
    ]
