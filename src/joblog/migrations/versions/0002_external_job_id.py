"""The seed's change: log_events.external_job_id, indexed, added online.

The GUI holds a constructed ID (``unified-live-failover-pgtest2-1758553933``), not
joblog's UUID; this column makes that ID a direct indexed lookup instead of a search
through JSON attrs. Existing rows stay NULL (``joblog db backfill`` fills them).

Online where the engine allows, because log_events is the big, busy table (the
backend's online DDL, :mod:`joblog.storage.dialects`): MariaDB uses ALGORITHM=INPLACE,
LOCK=NONE (and refuses rather than silently locking); PostgreSQL adds the nullable
column as a catalog-only change and builds the index CONCURRENTLY. Those steps use
IF [NOT] EXISTS because neither runs in one transaction: a run interrupted half-way can
simply be run again.

On the platform's database the column may already be there (vintage c is stamped at
this revision; a vintage a or b that had the seed's change applied by hand is not):
the origin's column and index are then left alone, up and down.

Revision ID: 0002_external_job_id
Revises: 0001_base
Create Date: 2025-09-22
"""

from __future__ import annotations

from typing import cast

import sqlalchemy as sa
from alembic import op
from alembic.operations import Operations

from joblog.storage.adoption import origin_record
from joblog.storage.dialects import backend_named

revision: str = "0002_external_job_id"
down_revision: str | None = "0001_base"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

INDEX = "idx_log_events_external_job_id"


def upgrade() -> None:
    backend = backend_named(op.get_context().dialect.name)
    origin = origin_record(op.get_context())
    if origin is not None and origin.has_column("log_events", "external_job_id"):
        if origin.index_on("log_events", ("external_job_id",)) is None:
            backend.create_index_online(_ops(), INDEX, "log_events", ["external_job_id"])
        return
    if backend.name == "sqlite":
        op.add_column("log_events", sa.Column("external_job_id", sa.String(255), nullable=True))
        op.create_index(INDEX, "log_events", ["external_job_id"])
        return
    backend.add_column_online(_ops(), "log_events", "external_job_id VARCHAR(255) NULL")
    backend.create_index_online(_ops(), INDEX, "log_events", ["external_job_id"])


def downgrade() -> None:
    backend = backend_named(op.get_context().dialect.name)
    origin = origin_record(op.get_context())
    if origin is not None and origin.has_column("log_events", "external_job_id"):
        if origin.index_on("log_events", ("external_job_id",)) is None:
            backend.drop_index_online(_ops(), INDEX, "log_events")
        return
    backend.drop_column_online(_ops(), "log_events", "external_job_id", indexes=[INDEX])


def _ops() -> Operations:
    """``alembic.op`` proxies the running migration's Operations object."""
    return cast(Operations, op)
