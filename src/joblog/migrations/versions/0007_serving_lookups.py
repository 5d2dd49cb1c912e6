"""Indexes the status and stream reads need at 10M events (EXPLAIN on all three backends).

* PostgreSQL and SQLite: ``idx_job_tracking_children`` on ``(parent_job_id, created_at)``
  WHERE ``parent_job_id IS NOT NULL``: a job's children, in order, from an index that
  holds only child jobs. With top-level jobs' NULL parents making up most rows, SQLite's
  ANALYZE counts them as one value held by all rows and its planner walked the whole
  ``created_at`` index for every children lookup (each status request and each state
  check of a live view), whatever the likelihood hint. MariaDB has no partial index;
  its plain index on ``parent_job_id`` serves once the lookup is sargable (the
  ``= 1`` SQLAlchemy appended to the condition on MySQL is gone in the same change).
* PostgreSQL: ``idx_log_events_external_job_id_id`` on ``(external_job_id, id)``, the
  twin of 0005's ``(job_id, id)`` for IDs whose producer made no job row (tier
  ``log_events``, their summaries and streams): without it the newest events of an old
  external ID are read by walking the primary key backwards over every newer event.
  InnoDB's and SQLite's index on ``external_job_id`` already ends in the primary key.

Online as in 0005: CONCURRENTLY on PostgreSQL, IF [NOT] EXISTS everywhere, so an
interrupted run may be run again.

Revision ID: 0007_serving_lookups
Revises: 0006_dashboard_sessions
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import cast

from alembic import op
from alembic.operations import Operations

from joblog.storage.dialects import backend_named

revision: str = "0007_serving_lookups"
down_revision: str | None = "0006_dashboard_sessions"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

CHILDREN = "idx_job_tracking_children"
EXTERNAL_NEWEST = "idx_log_events_external_job_id_id"


def upgrade() -> None:
    name = op.get_context().dialect.name
    if name == "mysql":
        return
    backend = backend_named(name)
    backend.create_index_online(
        _ops(),
        CHILDREN,
        "job_tracking",
        ["parent_job_id", "created_at"],
        where="parent_job_id IS NOT NULL",
    )
    if name == "postgresql":
        backend.create_index_online(
            _ops(), EXTERNAL_NEWEST, "log_events", ["external_job_id", "id"]
        )


def downgrade() -> None:
    name = op.get_context().dialect.name
    if name == "mysql":
        return
    backend = backend_named(name)
    if name == "postgresql":
        backend.drop_index_online(_ops(), EXTERNAL_NEWEST, "log_events")
    backend.drop_index_online(_ops(), CHILDREN, "job_tracking")


def _ops() -> Operations:
    """``alembic.op`` proxies the running migration's Operations object."""
    return cast(Operations, op)
