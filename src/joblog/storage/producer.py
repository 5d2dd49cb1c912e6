"""Job state changes made by producers outside this process (the HTTP ingest API).

An in-process :class:`~joblog.Tracker` keeps its jobs' state in memory and queues the
changes; a remote producer has no such memory, so here every change is one transaction
that reads the current rows and applies the same rules: monotonic progress, steps
numbered without gaps or duplicates, no "completed" after a failed required step.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa

from joblog import rules
from joblog._ids import new_step_id, utcnow
from joblog._ops import EventRow
from joblog.exceptions import Conflict, ExternalIdInUse, InvalidTransition, JobNotFound
from joblog.model import Job, JobStatus, PlannedStep, Step, StepStatus
from joblog.progress import FINISHED_STEP_STATUSES, planned_percent
from joblog.storage import notify, queries, schema
from joblog.storage.engine import storage_errors
from joblog.storage.replica import on_primary
from joblog.storage.rows import job_from_row, step_from_row, to_naive_utc
from joblog.storage.store import Store

__all__ = ["EventFields", "IncomingEvent", "ProducerWrites"]

jobs = schema.job_tracking
steps = schema.job_steps
_OPEN = (JobStatus.PENDING.value, JobStatus.RUNNING.value)


class EventFields(Protocol):
    """What :meth:`ProducerWrites.ingest_events` reads of an incoming event (already
    validated): :class:`IncomingEvent`, or the write API's own validated body."""

    @property
    def level(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def ts(self) -> datetime | None: ...
    @property
    def job_id(self) -> str | None: ...
    @property
    def external_job_id(self) -> str | None: ...
    @property
    def step_seq(self) -> int | None: ...
    @property
    def step_id(self) -> int | None: ...
    @property
    def attrs(self) -> str | None: ...  # JSON text
    @property
    def trace_id(self) -> str | None: ...
    @property
    def span_id(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """One log event as a remote producer sends it (already validated)."""

    level: str
    message: str
    ts: datetime
    job_id: str | None = None
    external_job_id: str | None = None
    step_seq: int | None = None
    step_id: int | None = None
    attrs: str | None = None  # JSON text
    trace_id: str | None = None  # OpenTelemetry, lowercase hex
    span_id: str | None = None


class ProducerWrites:
    """Transactions for the write API; each method validates against the current rows."""

    def __init__(
        self,
        store: Store,
        *,
        attach: Callable[[str], str | None],
        external_id_policy: str = "reject",
    ) -> None:
        """``attach(external_job_id)`` names the job an event with only an external ID
        belongs to (:meth:`joblog.resolve.Resolver.attach`), or None: events-only."""
        self.store = store
        self.external_id_policy = external_id_policy
        self._engine = store.write_engine
        self._attach = attach

    def start_job(
        self,
        job_type: str,
        operation: str,
        *,
        external_job_id: str | None = None,
        context_id: str | None = None,
        owner: str | None = None,
        parent_job_id: str | None = None,
        planned: Sequence[PlannedStep] = (),
        metadata: Mapping[str, Any] | None = None,
        start: bool = True,
    ) -> Job:
        """Insert a job (running, or pending with ``start=False``)."""
        now = utcnow()
        job_id = str(uuid.uuid4())
        exclusive = external_job_id is not None and self.external_id_policy == "reject"
        row_values = rules.new_job_row(
            job_id,
            job_type,
            operation,
            now=now,
            external_job_id=external_job_id,
            context_id=context_id,
            owner=owner,
            parent_job_id=parent_job_id,
            planned=planned,
            metadata=metadata,
            start=start,
            exclusive=exclusive,
        )
        try:
            with storage_errors("starting a job"), self._engine.begin() as conn:
                if parent_job_id is not None and _job_row(conn, parent_job_id) is None:
                    raise JobNotFound(parent_job_id, f"no parent job {parent_job_id!r}")
                if exclusive:
                    # Any open holder, the origin's own jobs included; the unique index
                    # decides between concurrent joblog starts (the Conflict below).
                    holder = self._open_holder(conn, external_job_id)
                    if holder is not None:
                        raise ExternalIdInUse(str(external_job_id), holder)
                conn.execute(jobs.insert().values(row_values))
                row = _job_row(conn, job_id)
        except Conflict:
            if not exclusive:
                raise
            with storage_errors("starting a job"), self._engine.connect() as conn:
                holder = self._open_holder(conn, external_job_id)
            raise ExternalIdInUse(str(external_job_id), holder or "") from None
        assert row is not None
        return job_from_row(row)

    @staticmethod
    def _open_holder(conn: sa.Connection, external_job_id: str | None) -> str | None:
        """The open job holding ``external_job_id`` (the reader's statement, run in this
        transaction)."""
        holder = conn.execute(
            queries.RUNNING_WITH_EXTERNAL_ID, {"external_job_id": external_job_id}
        ).scalar()
        return None if holder is None else str(holder)

    def start_step(
        self, job_id: str, name: str, *, weight: float | None = None, allow_failure: bool = False
    ) -> Step:
        """Start the job's next step; the seq is MAX(seq)+1, retried if another won the race."""
        for _attempt in range(10):
            try:
                with storage_errors("starting a step"), self._engine.begin() as conn:
                    job = self._open_job(conn, job_id)
                    seq = _next_seq(conn, job_id)
                    step_id = new_step_id()
                    conn.execute(
                        steps.insert().values(
                            rules.new_step_row(
                                step_id,
                                job_id,
                                seq,
                                name,
                                now=utcnow(),
                                weight=rules.planned_weight(job.planned_steps, name, weight),
                                allow_failure=allow_failure,
                            )
                        )
                    )
                    if job.status is JobStatus.PENDING:
                        conn.execute(
                            jobs.update()
                            .where(jobs.c.id == job_id)
                            .values(status=JobStatus.RUNNING.value, started_at=utcnow())
                        )
                    row = (
                        conn.execute(sa.select(steps).where(steps.c.id == step_id)).mappings().one()
                    )
                return step_from_row(row)
            except Conflict:
                continue  # a concurrent start took this seq: read MAX again
        raise InvalidTransition(f"could not number a new step of job {job_id}: too much contention")

    def finish_step(
        self, job_id: str, seq: int, status: StepStatus, error_message: str | None = None
    ) -> Step:
        if status not in FINISHED_STEP_STATUSES:
            raise InvalidTransition("a step can only be finished as completed, failed or skipped")
        with storage_errors("finishing a step"), self._engine.begin() as conn:
            job = self._open_job(conn, job_id)
            row = (
                conn.execute(sa.select(steps).where(steps.c.job_id == job_id, steps.c.seq == seq))
                .mappings()
                .first()
            )
            if row is None:
                raise JobNotFound(job_id, f"job {job_id} has no step {seq}")
            if row["status"] != StepStatus.RUNNING.value:
                raise InvalidTransition(f"step {seq} of job {job_id} already {row['status']}")
            conn.execute(
                steps.update()
                .where(steps.c.id == row["id"])
                .values(status=status.value, error_message=error_message, completed_at=utcnow())
            )
            self._recompute(conn, job)
            done = conn.execute(sa.select(steps).where(steps.c.id == row["id"])).mappings().one()
        return step_from_row(done)

    def update_job(
        self,
        job_id: str,
        *,
        percent: int | None = None,
        status: JobStatus | None = None,
        error_message: str | None = None,
    ) -> Job:
        """Set progress (never backwards) and/or end the job."""
        with storage_errors("updating a job"), self._engine.begin() as conn:
            job = self._open_job(conn, job_id)
            now = utcnow()
            values: dict[str, Any] = {"updated_at": now, "heartbeat_at": now}
            if percent is not None:
                moved = rules.next_percent(job.percent_complete, percent)
                if moved is not None:
                    values["percent_complete"] = moved
            if status is not None and status is not job.status:
                if status not in rules.ENDINGS:
                    raise InvalidTransition(f"a job cannot be set back to {status.value}")
                values.update(self._ending(conn, job, status, error_message, now))
            elif error_message is not None:
                values["error_message"] = error_message
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values))
            row = _job_row(conn, job_id)
        assert row is not None
        return job_from_row(row)

    def heartbeat(self, job_id: str) -> Job:
        return self.update_job(job_id)

    def request_cancel(self, job_id: str) -> Job:
        with storage_errors("requesting a cancel"), self._engine.begin() as conn:
            self._open_job(conn, job_id)
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(cancel_requested=True, updated_at=utcnow())
            )
            notify.announce(conn, notify.Touched(job_ids={job_id}))  # live pages show it
            row = _job_row(conn, job_id)
        assert row is not None
        return job_from_row(row)

    def ingest_events(
        self, batch_key: str, events: Sequence[EventFields], *, now: datetime | None = None
    ) -> bool:
        """Store a batch once: False (and nothing written) if ``batch_key`` was seen.

        One transaction: the key's claim, the events by COPY (PostgreSQL) or one
        multi-row INSERT, and the change notification. An event without ``ts`` gets
        ``now`` (default: the current time)."""
        default_ts = to_naive_utc(now) if now is not None else utcnow()
        # Attaching by external ID must see the newest job: never a replica's older view.
        with on_primary(), storage_errors("storing events"), self._engine.begin() as conn:
            if not self.store.backend.claim_batch_key(conn, f"http:{batch_key}", utcnow()):
                return False
            rows = _EventRows(conn, self._attach).rows(events, default_ts)
            self.store.backend.insert_events(conn, rows)
            notify.announce(conn, notify.Touched.of_event_rows(rows))
        return True

    # -- rules -----------------------------------------------------------------------------

    def _open_job(self, conn: sa.Connection, job_id: str) -> Job:
        row = _job_row(conn, job_id, for_update=self.store.dialect != "sqlite")
        if row is None:
            raise JobNotFound(job_id)
        job = job_from_row(row)
        if job.is_terminal:
            raise InvalidTransition(f"job {job_id} already {job.status.value}")
        return job

    def _recompute(self, conn: sa.Connection, job: Job) -> None:
        if not job.planned_steps:
            return
        rows = conn.execute(
            sa.select(steps.c.name, steps.c.status).where(steps.c.job_id == job.id)
        ).all()
        percent = int(
            planned_percent(job.planned_steps, ((n, StepStatus(s), 0.0) for n, s in rows))
        )
        if percent > job.percent_complete:
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job.id)
                .values(percent_complete=percent, updated_at=utcnow())
            )

    def _ending(
        self,
        conn: sa.Connection,
        job: Job,
        status: JobStatus,
        error_message: str | None,
        now: datetime,
    ) -> dict[str, Any]:
        """Fail the running steps, record never-started planned steps as skipped, and
        return the values that end the job (:func:`joblog.rules.ending`)."""
        rows = conn.execute(
            sa.select(steps.c.name, steps.c.status, steps.c.allow_failure, steps.c.error_message)
            .where(steps.c.job_id == job.id)
            .order_by(steps.c.seq)
        ).all()
        facts = [
            rules.StepFacts(name, StepStatus(state), bool(optional), error)
            for name, state, optional, error in rows
        ]
        end = rules.ending(status, error_message, facts, job.planned_steps)
        if end.fail_running:
            conn.execute(
                steps.update()
                .where(steps.c.job_id == job.id, steps.c.status == StepStatus.RUNNING.value)
                .values(
                    status=StepStatus.FAILED.value,
                    error_message=end.running_error,
                    completed_at=now,
                )
            )
        if end.skip_planned:
            seq = (
                len(rows)
                and conn.execute(
                    sa.select(sa.func.max(steps.c.seq)).where(steps.c.job_id == job.id)
                ).scalar_one()
            )
            conn.execute(
                steps.insert(),
                [
                    rules.new_step_row(
                        new_step_id(),
                        job.id,
                        seq + offset,
                        name,
                        now=now,
                        weight=rules.planned_weight(job.planned_steps, name, None),
                        status=StepStatus.SKIPPED,
                        error_message=end.skip_reason,
                    )
                    for offset, name in enumerate(end.skip_planned, start=1)
                ],
            )
        values: dict[str, Any] = {
            "status": end.status.value,
            "completed_at": now,
            "error_message": end.error_message,
        }
        if end.percent is not None:
            values["percent_complete"] = end.percent
        return values


class _EventRows:
    """Incoming events as :data:`~joblog._ops.EventRow` tuples, each job, external ID and
    step looked up once per batch, in the batch's transaction."""

    def __init__(self, conn: sa.Connection, attach: Callable[[str], str | None]) -> None:
        self._conn = conn
        self._attach = attach
        self._jobs: dict[str, Any] = {}
        self._by_external: dict[str, str | None] = {}
        self._steps: dict[tuple[str, str, int], int] = {}

    def rows(self, events: Sequence[EventFields], default_ts: datetime) -> list[EventRow]:
        rows: list[EventRow] = []
        append = rows.append
        for event in events:
            job_id, external_id = event.job_id, event.external_job_id
            if job_id is None and external_id is not None:
                # Attach the event to the newest job holding this external ID, if any;
                # otherwise it stays an events-only ID (the log_events tier).
                if external_id not in self._by_external:
                    self._by_external[external_id] = self._attach(external_id)
                job_id = self._by_external[external_id]
            if job_id is not None:
                row = self._jobs.get(job_id)
                if row is None:
                    row = self._jobs[job_id] = _job_row(self._conn, job_id)
                    if row is None:
                        raise JobNotFound(job_id)
                external_id = external_id or row["external_job_id"]
            step_id = (
                None
                if event.step_seq is None and event.step_id is None
                else self._step_id(job_id, event)
            )
            ts = event.ts
            append(
                (
                    job_id,
                    step_id,
                    external_id,
                    event.level,
                    event.message,
                    event.attrs,
                    default_ts if ts is None else to_naive_utc(ts),
                    event.trace_id,
                    event.span_id,
                )
            )
        return rows

    def _step_id(self, job_id: str | None, event: EventFields) -> int:
        """The step an event names, by seq or ID; it must belong to the event's job."""
        if job_id is None:
            raise InvalidTransition("an event that names a step must name its job too")
        if event.step_id is not None:
            key, column, which = (job_id, "id", event.step_id), steps.c.id, event.step_id
        else:
            assert event.step_seq is not None
            key, column, which = (job_id, "seq", event.step_seq), steps.c.seq, event.step_seq
        found = self._steps.get(key)
        if found is None:
            step = self._conn.execute(
                sa.select(steps.c.id).where(steps.c.job_id == job_id, column == which)
            ).scalar()
            if step is None:
                raise JobNotFound(job_id, f"job {job_id} has no step {which}")
            self._steps[key] = found = int(step)
        return found


def _next_seq(conn: sa.Connection, job_id: str) -> int:
    """MAX(seq) + 1 of the job's steps (the unique (job_id, seq) index settles races)."""
    seq = conn.execute(
        sa.select(sa.func.coalesce(sa.func.max(steps.c.seq), 0) + 1).where(steps.c.job_id == job_id)
    ).scalar_one()
    return int(seq)


def _job_row(conn: sa.Connection, job_id: str, *, for_update: bool = False) -> Any:
    query = sa.select(jobs).where(jobs.c.id == job_id)
    if for_update:
        query = query.with_for_update()
    return conn.execute(query).mappings().first()
