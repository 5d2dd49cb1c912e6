"""Handles on a running job and its steps: state changes, progress, the context.

Every change becomes an op on the tracker's writer queue, in order with the log events
around it, so a database outage delays the rows but never blocks or fails the caller.
The rules (how a with-block ends, how progress rolls up) live in :mod:`joblog.lifecycle`.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from joblog import rules
from joblog._ids import new_step_id, utcnow
from joblog._ops import InsertStep, UpdateJob, UpdateStep
from joblog.exceptions import InvalidTransition, JobLogError
from joblog.lifecycle import (
    Frame,
    JobCancelled,
    JobLifecycle,
    StepLifecycle,
    StepScope,
    current_step,
    error_text,
)
from joblog.model import JobStatus, PlannedStep, StepStatus
from joblog.writer import BatchWriter

if TYPE_CHECKING:
    from joblog.storage.store import Store

__all__ = ["JobCancelled", "JobHandle", "JobHost", "StepHandle", "error_text"]


class JobHost(Protocol):
    """What a handle needs of the tracker that started it (:class:`joblog.Tracker`)."""

    writer: BatchWriter
    store: Store

    def job(self, job_type: str, operation: str, **kwargs: Any) -> Any:
        """``with host.job(...)``: a new job; ``parent=`` makes it a child."""
        ...

    def job_ended(self, job: JobHandle) -> None:
        """Forget a job that ended."""
        ...


_StepScope = StepScope


class StepHandle(StepLifecycle):
    """One running step of a job. Use it through ``with job.step(name):``."""

    job: JobHandle

    def __init__(
        self, job: JobHandle, name: str, seq: int, weight: float, allow_failure: bool
    ) -> None:
        self.job = job
        self.id = new_step_id()
        self.name = name
        self.seq = seq
        self.weight = weight
        self.allow_failure = allow_failure
        self.status = StepStatus.RUNNING
        self.error_message: str | None = None
        self._fraction = 0.0
        self.frame = Frame(job, self, (job.id, self.id, job.external_job_id))

    def _send_finish(self, status: StepStatus, error_message: str | None) -> None:
        self.status = status
        self.error_message = error_message
        self.job.tracker.writer.put_op(
            UpdateStep(
                self.id,
                {"status": status.value, "error_message": error_message, "completed_at": utcnow()},
            )
        )


class JobHandle(JobLifecycle[StepHandle]):
    """A job running in this process. Obtain one from ``tracker.job(...)``."""

    def __init__(
        self,
        tracker: JobHost,
        job_id: str,
        job_type: str,
        operation: str,
        external_job_id: str | None,
        planned: Sequence[PlannedStep],
        parent: JobHandle | None,
    ) -> None:
        self.tracker = self.owner = tracker
        self.id = job_id
        self.job_type = job_type
        self.operation = operation
        self.external_job_id = external_job_id
        self.planned = tuple(planned)
        self.parent: JobHandle | None = parent
        self.parent_step = current_step() if parent is not None else None
        if self.parent_step is not None and self.parent_step.job is not parent:
            self.parent_step = None
        self.status = JobStatus.RUNNING
        self.percent = 0
        self.error_message: str | None = None
        self.frame = Frame(self, None, (job_id, None, external_job_id))
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self._steps: list[StepHandle] = []
        self._children: list[JobHandle] = []
        self._cancel_checked = 0.0
        self._cancel_requested = False

    def __repr__(self) -> str:
        return f"<JobHandle {self.id} {self.job_type}/{self.operation} {self.status.value}>"

    # -- steps ---------------------------------------------------------------------------

    def start_step(
        self, name: str, *, allow_failure: bool = False, weight: float | None = None
    ) -> StepHandle:
        """Start a step without a ``with`` block; finish it with complete(), fail() or skip()."""
        if self.status is not JobStatus.RUNNING:
            raise InvalidTransition(f"job {self.id} is {self.status.value}, not running")
        if not name or len(name) > 255:
            raise ValueError("a step name needs 1 to 255 characters")
        weight = rules.planned_weight(self.planned, name, weight)
        # next() on itertools.count is atomic: seq is unique under concurrent steps.
        step = StepHandle(self, name, next(self._seq), weight, allow_failure)
        with self._lock:
            self._steps.append(step)
        self.tracker.writer.put_op(
            InsertStep(
                rules.new_step_row(
                    step.id,
                    self.id,
                    step.seq,
                    name,
                    now=utcnow(),
                    weight=weight,
                    allow_failure=allow_failure,
                )
            )
        )
        return step

    def step_finished(self, step: StepHandle) -> None:
        self.recompute()

    def _record_skipped(self, names: Sequence[str], reason: str) -> None:
        """Planned steps that never started, recorded as skipped when the job ends."""
        now = utcnow()
        for name in names:
            step = StepHandle(self, name, next(self._seq), 0.0, False)
            step.weight = rules.planned_weight(self.planned, name, None)
            step.status, step.error_message = StepStatus.SKIPPED, reason
            with self._lock:
                self._steps.append(step)
            self.tracker.writer.put_op(
                InsertStep(
                    rules.new_step_row(
                        step.id,
                        self.id,
                        step.seq,
                        name,
                        now=now,
                        weight=step.weight,
                        status=StepStatus.SKIPPED,
                        error_message=reason,
                    )
                )
            )

    # -- progress --------------------------------------------------------------------------

    def _accept_percent(self, percent: int) -> None:
        self.percent = percent

    def _send_percent(self, percent: int) -> None:
        # self.percent, not the argument: a later, higher value may have been accepted since.
        self.tracker.writer.put_op(
            UpdateJob(self.id, {"percent_complete": self.percent, "updated_at": utcnow()})
        )

    # -- children ---------------------------------------------------------------------------

    def child(self, job_type: str, operation: str, **kwargs: Any) -> Any:
        """``with job.child(type, operation, ...)``: a child job whose progress rolls up."""
        return self.tracker.job(job_type, operation, parent=self, **kwargs)

    # -- ending ------------------------------------------------------------------------------

    def complete(self) -> None:
        """End the job. A required step that failed (or never finished) makes it fail."""
        self._end(JobStatus.COMPLETED, None)

    def _end(self, status: JobStatus, error_message: str | None) -> None:
        with self._lock:
            if self.status is not JobStatus.RUNNING:
                raise InvalidTransition(f"job {self.id} already {self.status.value}")
            steps = list(self._steps)
        end = rules.ending(
            status,
            error_message,
            [rules.StepFacts(s.name, s.status, s.allow_failure, s.error_message) for s in steps],
            self.planned,
        )
        for step in steps:  # steps cannot outlive their job
            if step.status is StepStatus.RUNNING:
                with contextlib.suppress(InvalidTransition):  # finished by another thread
                    step.fail(end.running_error)
        self._record_skipped(end.skip_planned, end.skip_reason)
        if end.percent is not None:
            self._set_percent(end.percent)
        with self._lock:
            self.status = end.status
            self.error_message = end.error_message
        now = utcnow()
        self.tracker.writer.put_op(
            UpdateJob(
                self.id,
                {
                    "status": end.status.value,
                    "error_message": end.error_message,
                    "percent_complete": self.percent,
                    "completed_at": now,
                    "updated_at": now,
                },
            )
        )
        self.tracker.job_ended(self)
        if self.parent is not None:
            self.parent.recompute()

    def _event_writer(self) -> BatchWriter:
        return self.tracker.writer

    # -- cancellation ------------------------------------------------------------------------

    @property
    def cancel_requested(self) -> bool:
        """True once someone asked to cancel this job (checked in the database, ~1/s)."""
        if self._cancel_requested or self.status is not JobStatus.RUNNING:
            return self._cancel_requested
        now = time.monotonic()
        if now - self._cancel_checked >= 1.0:
            self._cancel_checked = now
            try:
                job = self.tracker.store.reads.get_job(self.id)
            except JobLogError:
                return False
            self._cancel_requested = bool(job and job.cancel_requested)
        return self._cancel_requested

    def request_cancel(self) -> None:
        """Ask the job to stop (cooperatively): ``cancel_requested`` turns True."""
        self._cancel_requested = True
        self.tracker.writer.put_op(UpdateJob(self.id, {"cancel_requested": True}))
