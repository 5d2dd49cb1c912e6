"""The adopted platform's database made writable for joblog: the columns it lacks
(``job_tracking.context_id`` in vintage a) and widened narrow columns.

A no-op on a database joblog built itself (there is no adoption record). On the
platform's, per :mod:`joblog.storage.widening`: ``job_tracking.job_type`` goes from the
platform's ENUM (a CHECK on PostgreSQL) to VARCHAR(50), so that a job of type
``backup`` is stored; ``owner``, ``context_id``, ``external_job_id`` and
``job_steps.name`` become VARCHAR(255), what joblog accepts. Values are unchanged.
Downgrade restores every original definition recorded at adoption, after checking
that every value fits, and otherwise refuses, naming the values, before any change.

MariaDB rebuilds ``job_tracking`` (one table copy; writes wait meanwhile) and
``job_steps`` for this; both are small beside ``log_events``, which is not touched.
Every statement may run again, so a run stopped half-way is finished by running it
again.

Revision ID: 0003a_adopted_origin
Revises: 0003_joblog
Create Date: 2026-01-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from joblog.exceptions import SchemaError
from joblog.storage.adoption import origin_record
from joblog.storage.widening import (
    existing_checks,
    restore_refusals,
    restore_statements,
    widen_statements,
)

revision: str = "0003a_adopted_origin"
down_revision: str | None = "0003_joblog"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

CONTEXT_INDEX = "idx_job_tracking_context_id"


def upgrade() -> None:
    origin = origin_record(op.get_context())
    if origin is None:
        return
    if not origin.has_column("job_tracking", "context_id"):
        op.add_column(
            "job_tracking",
            sa.Column("context_id", sa.String(255), nullable=True),
            if_not_exists=True,
        )
        op.create_index(CONTEXT_INDEX, "job_tracking", ["context_id"], if_not_exists=True)
    for statement in widen_statements(op.get_context().dialect.name, origin.widenings):
        op.execute(statement)


def downgrade() -> None:
    origin = origin_record(op.get_context())
    if origin is None:
        return
    context = op.get_context()
    existing: frozenset[str] = frozenset()
    if not context.as_sql:
        existing = existing_checks(op.get_bind(), origin.widenings)
        refusals = restore_refusals(op.get_bind(), origin.widenings)
        if refusals:
            raise SchemaError(refusals)
    for statement in restore_statements(context.dialect.name, origin.widenings, existing):
        op.execute(statement)
    if not origin.has_column("job_tracking", "context_id"):
        op.drop_index(CONTEXT_INDEX, table_name="job_tracking", if_exists=True)
        op.drop_column("job_tracking", "context_id", if_exists=True)
