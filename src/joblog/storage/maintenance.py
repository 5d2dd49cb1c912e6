"""Housekeeping: fail jobs whose producer died, and prune old rows in small batches."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from joblog._ids import utcnow
from joblog.model import JobStatus, Level, StepStatus
from joblog.storage import schema
from joblog.storage.dialects import Backend
from joblog.storage.engine import storage_errors

__all__ = ["ABANDONED", "DEFAULT_HEARTBEAT_TIMEOUT", "Housekeeping", "PruneReport"]

jobs = schema.job_tracking
steps = schema.job_steps
events = schema.log_events
batches = schema.ingest_batches

#: The error message of a job failed by the reaper; the dashboard recognises it.
ABANDONED = "abandoned"
#: Seconds without a heartbeat after which a running job counts as abandoned.
DEFAULT_HEARTBEAT_TIMEOUT = 60.0
_OPEN = (JobStatus.PENDING.value, JobStatus.RUNNING.value)
_LEVELS_AT_MOST = {
    level: [other.value for other in Level if other.rank <= level.rank] for level in Level
}


@dataclass(frozen=True, slots=True)
class PruneReport:
    events: int
    batch_keys: int
    jobs: int
    seconds: float


class Housekeeping:
    """Reaping and pruning on a store's write engine (``store.housekeeping``)."""

    def __init__(self, engine: sa.Engine, backend: Backend) -> None:
        self.engine = engine
        self.backend = backend

    def reap_abandoned(self, heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT) -> list[str]:
        """Fail running jobs whose heartbeat is older than ``heartbeat_timeout`` seconds.

        Only jobs joblog promised heartbeats for count: joblog sets ``heartbeat_at`` when
        it starts a job, while a job another producer wrote (the platform's Go tracker in
        an adopted database) never has one, and is not abandoned for lacking it, however
        old it is. Their running steps fail too. Returns the IDs of the jobs it failed.
        """
        now = utcnow()
        cutoff = now - timedelta(seconds=heartbeat_timeout)
        with storage_errors("reaping abandoned jobs"), self.engine.begin() as conn:
            stale = list(
                conn.execute(
                    sa.select(jobs.c.id).where(
                        jobs.c.status == JobStatus.RUNNING.value,
                        jobs.c.heartbeat_at.is_not(None),
                        jobs.c.heartbeat_at < cutoff,
                    )
                ).scalars()
            )
            if not stale:
                return []
            reason = (
                f"{ABANDONED}: no heartbeat for {heartbeat_timeout:g}s; "
                "the producer probably stopped"
            )
            conn.execute(
                steps.update()
                .where(steps.c.job_id.in_(stale), steps.c.status == StepStatus.RUNNING.value)
                .values(status=StepStatus.FAILED.value, error_message=reason, completed_at=now)
            )
            conn.execute(
                jobs.update()
                .where(jobs.c.id.in_(stale), jobs.c.status == JobStatus.RUNNING.value)
                .values(
                    status=JobStatus.FAILED.value,
                    error_message=reason,
                    completed_at=now,
                    updated_at=now,
                )
            )
        return stale

    def prune(
        self,
        older_than: timedelta,
        *,
        max_level: Level | None = None,
        include_jobs: bool = False,
        batch_size: int = 1000,
        progress: Callable[[int], None] | None = None,
    ) -> PruneReport:
        """Delete log events older than ``older_than``, ``batch_size`` rows a transaction.

        ``max_level`` limits it to events at or below that level (e.g. DEBUG only). Events
        of pending or running jobs are never touched. ``include_jobs`` also deletes
        finished jobs that ended before the cutoff, with their steps and events.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        started = time.monotonic()
        cutoff = utcnow() - older_than
        open_jobs = sa.select(jobs.c.id).where(jobs.c.status.in_(_OPEN))
        condition = sa.and_(
            events.c.ts < cutoff,
            sa.or_(events.c.job_id.is_(None), events.c.job_id.not_in(open_jobs)),
        )
        if max_level is not None:
            condition = sa.and_(condition, events.c.level.in_(_LEVELS_AT_MOST[max_level]))
        removed_events = self._delete_in_batches(
            events, events.c.id, condition, batch_size, progress
        )
        removed_keys = self._delete_in_batches(
            batches, batches.c.batch_key, batches.c.created_at < cutoff, batch_size, None
        )
        removed_jobs = 0
        if include_jobs and max_level is None:
            finished = sa.and_(jobs.c.status.not_in(_OPEN), jobs.c.completed_at < cutoff)
            # Children first is not needed: parent_job_id is ON DELETE SET NULL.
            removed_jobs = self._delete_in_batches(jobs, jobs.c.id, finished, batch_size, None)
        return PruneReport(
            removed_events, removed_keys, removed_jobs, round(time.monotonic() - started, 3)
        )

    def _delete_in_batches(
        self,
        table: sa.Table,
        key: sa.Column[object],
        condition: sa.ColumnElement[bool],
        batch_size: int,
        progress: Callable[[int], None] | None,
    ) -> int:
        # Select the keys, then delete by key: short transactions that hold few locks, and
        # MySQL cannot delete from a table it selects from in a subquery.
        total = 0
        while True:
            with storage_errors(f"pruning {table.name}"), self.engine.begin() as conn:
                keys = list(
                    conn.execute(
                        sa.select(key).where(condition).order_by(key).limit(batch_size)
                    ).scalars()
                )
                if not keys:
                    return total
                conn.execute(table.delete().where(key.in_(keys)))
            total += len(keys)
            if progress is not None:
                progress(len(keys))
