"""Applying the batch writer's ops in order, inside the caller's transaction.

Log events take the backend's fastest bulk path (``executemany`` on SQLite, one
multi-row INSERT on MariaDB, ``COPY`` on PostgreSQL: see
:mod:`joblog.storage.dialects`); job and step changes are single-row statements.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from joblog._ops import InsertEvents, InsertJob, InsertStep, Op, UpdateJob
from joblog.storage import schema
from joblog.storage.dialects import Backend
from joblog.storage.notify import Touched, announce

__all__ = ["apply_ops"]

jobs = schema.job_tracking
steps = schema.job_steps


def apply_ops(conn: sa.Connection, backend: Backend, ops: Sequence[Op]) -> None:
    """Apply ``ops`` in order on ``conn`` (inside the caller's transaction), and announce
    the jobs they touched to live streams (delivered at commit: :mod:`~joblog.storage.notify`)."""
    for op in ops:
        if isinstance(op, InsertEvents):
            if op.rows:
                backend.insert_events(conn, op.rows)
        elif isinstance(op, InsertJob):
            conn.execute(jobs.insert().values(**op.values))
        elif isinstance(op, UpdateJob):
            conn.execute(jobs.update().where(jobs.c.id == op.job_id).values(**op.values))
        elif isinstance(op, InsertStep):
            conn.execute(steps.insert().values(**op.values))
        else:
            conn.execute(steps.update().where(steps.c.id == op.step_id).values(**op.values))
    announce(conn, Touched.by_ops(ops))
