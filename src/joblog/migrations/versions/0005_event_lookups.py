"""Two lookups on log_events: a job's newest events, and the events of a trace.

* PostgreSQL: an index on ``(job_id, id)``. With only ``(job_id)`` the planner reads a
  job's newest events by walking the primary key backwards and filtering ``job_id``,
  which for an old job followed by millions of newer events reads all of them. InnoDB
  and SQLite need no such index: their secondary index on ``job_id`` already ends in the
  primary key, so it *is* ``(job_id, id)``; a second copy would only slow the inserts.
* ``trace_id`` / ``span_id`` (OpenTelemetry, lowercase hex, NULL when no span was
  active), with an index on ``trace_id`` for ``GET /api/v1/traces/{trace_id}/events``.

Online as in 0002: nullable columns are catalog-only on PostgreSQL and in place on
MariaDB; indexes are built CONCURRENTLY / ALGORITHM=INPLACE, LOCK=NONE, with
IF [NOT] EXISTS, so an interrupted run may be run again.

Revision ID: 0005_event_lookups
Revises: 0004_exact_ids
Create Date: 2026-12-04
"""

from __future__ import annotations

from typing import cast

import sqlalchemy as sa
from alembic import op
from alembic.operations import Operations

from joblog.storage.dialects import backend_named

revision: str = "0005_event_lookups"
down_revision: str | None = "0004_exact_ids"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

JOB_NEWEST = "idx_log_events_job_id_id"
TRACE = "idx_log_events_trace_id"


def upgrade() -> None:
    name = op.get_context().dialect.name
    backend = backend_named(name)
    if name == "sqlite":
        op.add_column("log_events", sa.Column("trace_id", sa.String(32), nullable=True))
        op.add_column("log_events", sa.Column("span_id", sa.String(16), nullable=True))
        op.create_index(TRACE, "log_events", ["trace_id"])
        return
    backend.add_column_online(_ops(), "log_events", "trace_id VARCHAR(32) NULL")
    backend.add_column_online(_ops(), "log_events", "span_id VARCHAR(16) NULL")
    backend.create_index_online(_ops(), TRACE, "log_events", ["trace_id"])
    if name == "postgresql":
        backend.create_index_online(_ops(), JOB_NEWEST, "log_events", ["job_id", "id"])


def downgrade() -> None:
    name = op.get_context().dialect.name
    backend = backend_named(name)
    if name == "sqlite":
        op.drop_index(TRACE, "log_events")
        op.drop_column("log_events", "span_id")
        op.drop_column("log_events", "trace_id")
        return
    if name == "postgresql":
        backend.drop_index_online(_ops(), JOB_NEWEST, "log_events")
    backend.drop_column_online(_ops(), "log_events", "span_id")
    backend.drop_column_online(_ops(), "log_events", "trace_id", indexes=[TRACE])


def _ops() -> Operations:
    """``alembic.op`` proxies the running migration's Operations object."""
    return cast(Operations, op)
