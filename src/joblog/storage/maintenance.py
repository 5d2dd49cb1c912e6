"""Housekeeping: fail jobs whose producer died, prune old rows, keep event partitions ahead.

Several servers (and cron's ``joblog reap`` / ``joblog prune``) may share one database.
Each task takes a lease first (:meth:`Housekeeping.lease`: an advisory lock on
PostgreSQL, ``GET_LOCK`` on MariaDB, a file lock on SQLite; one per database and task,
never waited for), and a process that finds it held skips that round and says so
(:class:`HousekeepingRun`). The lease only saves work: every task is also safe when two
run at once (a crashed lease holder, a lease lost with its connection). The reaper locks
the rows it fails (``SKIP LOCKED``), so a job is failed, and reported, by one reaper only;
pruning deletes by key, so two pruners cannot count a row twice.

On PostgreSQL with a partitioned ``log_events`` (:mod:`joblog.storage.dialects.pg_partitions`)
pruning drops the partitions entirely older than the cutoff and deletes row by row only in
the rest (the partition holding the cutoff, a partition kept for a running job's events,
the default partition).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import sqlalchemy as sa

from joblog._ids import utcnow
from joblog.exceptions import ConfigError, StorageError
from joblog.model import OPEN_JOB_STATUSES, JobStatus, Level, StepStatus
from joblog.storage import schema
from joblog.storage.dialects import Backend
from joblog.storage.dialects.pg_convert import Conversion, ConversionReport
from joblog.storage.dialects.pg_partitions import DEFAULT_INTERVAL, Partition, PartitionReport
from joblog.storage.engine import storage_errors

__all__ = [
    "ABANDONED",
    "DEFAULT_HEARTBEAT_TIMEOUT",
    "TASKS",
    "ConversionReport",
    "Housekeeping",
    "HousekeepingRun",
    "PartitionReport",
    "PruneReport",
    "Task",
]

jobs = schema.job_tracking
steps = schema.job_steps
events = schema.log_events
batches = schema.ingest_batches

#: The error message of a job failed by the reaper; the dashboard recognises it.
ABANDONED = "abandoned"
#: Seconds without a heartbeat after which a running job counts as abandoned.
DEFAULT_HEARTBEAT_TIMEOUT = 60.0
_LEVELS_AT_MOST = {
    level: [other.value for other in Level if other.rank <= level.rank] for level in Level
}

Task = Literal["reap", "prune", "partitions"]
#: Every housekeeping task, each with a lease of its own.
TASKS: tuple[Task, ...] = ("reap", "prune", "partitions")


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What a prune removed. ``events`` counts every event removed, those of dropped
    partitions included."""

    events: int
    batch_keys: int
    jobs: int
    seconds: float
    #: PostgreSQL, partitioned log_events: partitions dropped whole.
    partitions_dropped: tuple[str, ...] = ()
    #: Old enough to drop, but kept whole for now: holding many events of a pending or
    #: running job, or not lockable in time. A later round drops them.
    partitions_kept: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HousekeepingRun:
    """One round of one task in this process: what it did, or that it stood aside
    because another process held the task's lease for this database (``ran`` False)."""

    task: Task
    ran: bool
    reaped: tuple[str, ...] = ()
    pruned: PruneReport | None = None
    partitions: PartitionReport | None = None

    @property
    def outcome(self) -> Literal["ran", "skipped"]:
        return "ran" if self.ran else "skipped"

    def describe(self) -> str:
        """One line for a log or a terminal."""
        if not self.ran:
            return f"{self.task}: skipped, another process holds the lease for this database"
        if self.task == "reap":
            return f"reap: failed {len(self.reaped)} abandoned job(s)"
        if self.task == "prune" and self.pruned is not None:
            report = self.pruned
            line = (
                f"prune: removed {report.events:,} log events, {report.batch_keys:,} batch keys"
                f" and {report.jobs:,} jobs in {report.seconds:.1f}s"
            )
            if report.partitions_dropped:
                line += f" ({len(report.partitions_dropped)} partition(s) dropped whole)"
            if report.partitions_kept:
                line += f"; kept for now: {', '.join(report.partitions_kept)}"
            return line
        if self.task == "partitions" and self.partitions is not None:
            made = self.partitions
            line = f"partitions: created {len(made.created)}"
            if made.moved_rows:
                line += f", {made.moved_rows:,} rows moved out of the default partition"
            if made.deferred:
                line += f"; deferred (lock busy): {', '.join(made.deferred)}"
            return line
        return f"{self.task}: nothing to do"


class Housekeeping:
    """Reaping, pruning and partitions on a store's write engine (``store.housekeeping``).

    ``run_reap``, ``run_prune`` and ``run_partitions`` are one round each under the task's
    lease (what the server's schedule and the CLI call); ``reap_abandoned``, ``prune`` and
    ``make_partitions`` do the work without it.
    """

    def __init__(self, engine: sa.Engine, backend: Backend) -> None:
        self.engine = engine
        self.backend = backend

    @contextlib.contextmanager
    def lease(self, task: Task) -> Iterator[bool]:
        """Try once to take ``task``'s lease for this database; yields whether it is held."""
        with (
            storage_errors(f"holding the {task} lease"),
            self.backend.housekeeping_lease(self.engine, task) as held,
        ):
            yield held

    # -- one round under the lease --------------------------------------------------------

    def run_reap(self, heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT) -> HousekeepingRun:
        with self.lease("reap") as held:
            if not held:
                return HousekeepingRun("reap", ran=False)
            return HousekeepingRun(
                "reap", True, reaped=tuple(self.reap_abandoned(heartbeat_timeout))
            )

    def run_prune(
        self,
        older_than: timedelta,
        *,
        max_level: Level | None = None,
        include_jobs: bool = False,
        batch_size: int = 1000,
        progress: Callable[[int], None] | None = None,
    ) -> HousekeepingRun:
        with self.lease("prune") as held:
            if not held:
                return HousekeepingRun("prune", ran=False)
            report = self.prune(
                older_than,
                max_level=max_level,
                include_jobs=include_jobs,
                batch_size=batch_size,
                progress=progress,
            )
            return HousekeepingRun("prune", True, pruned=report)

    def run_partitions(self, interval: timedelta | None = None) -> HousekeepingRun:
        with self.lease("partitions") as held:
            if not held:
                return HousekeepingRun("partitions", ran=False)
            return HousekeepingRun("partitions", True, partitions=self.make_partitions(interval))

    # -- the work -------------------------------------------------------------------------

    def reap_abandoned(self, heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT) -> list[str]:
        """Fail running jobs whose heartbeat is older than ``heartbeat_timeout`` seconds.

        Only jobs joblog promised heartbeats for count: joblog sets ``heartbeat_at`` when
        it starts a job, while a job another producer wrote (the platform's Go tracker in
        an adopted database) never has one, and is not abandoned for lacking it, however
        old it is. Their running steps fail too. Returns the IDs of the jobs it failed.

        The stale jobs are locked before they are failed (``FOR UPDATE SKIP LOCKED``; on
        SQLite the write transaction is exclusive anyway), so of reapers running at once
        each job is failed and returned by exactly one, and a job whose heartbeat is
        being written at that moment is left to the next round.
        """
        now = utcnow()
        cutoff = now - timedelta(seconds=heartbeat_timeout)
        stale_now = sa.and_(
            jobs.c.status == JobStatus.RUNNING.value,
            jobs.c.heartbeat_at.is_not(None),
            jobs.c.heartbeat_at < cutoff,
        )
        with storage_errors("reaping abandoned jobs"), self.engine.begin() as conn:
            stale = list(
                conn.execute(
                    sa.select(jobs.c.id)
                    .where(stale_now)
                    .order_by(jobs.c.id)
                    .with_for_update(skip_locked=True)
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
                .where(jobs.c.id.in_(stale), stale_now)
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
        finished jobs that ended before the cutoff, with their steps and events. On a
        partitioned ``log_events`` (PostgreSQL) whole partitions older than the cutoff
        are dropped first (not with ``max_level``, which keeps some of their rows).
        """
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        started = time.monotonic()
        cutoff = utcnow() - older_than
        dropped: tuple[str, ...] = ()
        left: tuple[Partition, ...] = ()
        removed_events = 0
        partitions = self.backend.event_partitions()
        if partitions is not None and max_level is None:
            with storage_errors("dropping old partitions of log_events"):
                drop = partitions.drop_older(self.engine, cutoff)
            if drop is not None:
                dropped, left = drop.dropped, drop.kept + drop.deferred
                removed_events += drop.rows
                if progress is not None and drop.rows:
                    progress(drop.rows)
        open_jobs = sa.select(jobs.c.id).where(jobs.c.status.in_(OPEN_JOB_STATUSES))
        old = events.c.ts < cutoff
        condition = sa.and_(
            old, sa.or_(events.c.job_id.is_(None), events.c.job_id.not_in(open_jobs))
        )
        for partition in left:
            # Kept whole for a running job, or not lockable now: dropped by a later round,
            # not emptied row by row.
            condition = sa.and_(condition, sa.not_(_within(partition)))
        if max_level is not None:
            condition = sa.and_(condition, events.c.level.in_(_LEVELS_AT_MOST[max_level]))
        # ``old`` again in the DELETE lets PostgreSQL skip the newer partitions.
        removed_events += self._delete_in_batches(
            events, events.c.id, condition, batch_size, progress, also=old
        )
        removed_keys = self._delete_in_batches(
            batches, batches.c.batch_key, batches.c.created_at < cutoff, batch_size, None
        )
        removed_jobs = 0
        if include_jobs and max_level is None:
            ended = jobs.c.status.not_in(OPEN_JOB_STATUSES)
            finished = sa.and_(ended, jobs.c.completed_at < cutoff)
            # Children first is not needed: parent_job_id is ON DELETE SET NULL.
            removed_jobs = self._delete_in_batches(jobs, jobs.c.id, finished, batch_size, None)
        return PruneReport(
            removed_events,
            removed_keys,
            removed_jobs,
            round(time.monotonic() - started, 3),
            dropped,
            tuple(partition.name for partition in left),
        )

    def make_partitions(self, interval: timedelta | None = None) -> PartitionReport | None:
        """Create ``log_events`` partitions ahead of time (PostgreSQL, partitioned table;
        None elsewhere). ``interval`` changes the width of those made from now on."""
        partitions = self.backend.event_partitions()
        if partitions is None:
            return None
        with storage_errors("creating partitions of log_events"):
            return partitions.make_ahead(self.engine, interval=interval)

    def partition_events(
        self, interval: timedelta | None = None, progress: Callable[[str], None] | None = None
    ) -> ConversionReport | PartitionReport:
        """``joblog db partition``: convert a plain ``log_events`` to a partitioned one while
        it is written to (:mod:`joblog.storage.dialects.pg_convert`), or, when it is
        partitioned already, make partitions ahead (``interval`` changing their width).
        PostgreSQL only; under the partitions lease (refused while another holds it)."""
        partitions = self.backend.event_partitions()
        if partitions is None:
            raise ConfigError(
                "log_events is partitioned on PostgreSQL only; on SQLite and MariaDB it stays"
                " one table, pruned row by row"
            )
        with self.lease("partitions") as held:
            if not held:
                raise StorageError(
                    "another joblog process is changing the partitions of this database;"
                    " try again when it is done",
                    transient=True,
                )
            with storage_errors("reading log_events"), self.engine.connect() as connection:
                partitioned = partitions.is_partitioned(connection)
            with storage_errors("partitioning log_events"):
                if partitioned:
                    made = partitions.make_ahead(self.engine, interval=interval)
                    assert made is not None
                    return made
                conversion = Conversion(
                    self.engine, interval or DEFAULT_INTERVAL, progress=progress
                )
                report = conversion.run(utcnow())
                partitions.make_ahead(self.engine)
                return report

    def _delete_in_batches(
        self,
        table: sa.Table,
        key: sa.Column[object],
        condition: sa.ColumnElement[bool],
        batch_size: int,
        progress: Callable[[int], None] | None,
        also: sa.ColumnElement[bool] | None = None,
    ) -> int:
        # Select the keys, then delete by key: short transactions that hold few locks, and
        # MySQL cannot delete from a table it selects from in a subquery. The count is of
        # rows this call deleted: a concurrent pruner's rows are not counted twice.
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
                delete = table.delete().where(key.in_(keys))
                if also is not None:
                    delete = delete.where(also)
                deleted = conn.execute(delete).rowcount
            total += deleted
            if progress is not None:
                progress(deleted)


def _within(partition: Partition) -> sa.ColumnElement[bool]:
    bounds = []
    if partition.lower is not None:
        bounds.append(events.c.ts >= partition.lower)
    if partition.upper is not None:
        bounds.append(events.c.ts < partition.upper)
    return sa.and_(sa.true(), *bounds)
