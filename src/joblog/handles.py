"""Handles on a running job and its steps: state changes, progress, the context.

Every change becomes an op on the tracker's writer queue, in order with the log events
around it, so a database outage delays the rows but never blocks or fails the caller.
The rules (how a with-block ends, how progress rolls up) live in :mod:`joblog.lifecycle`.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from joblog import context
from joblog.exceptions import InvalidTransition, JobLogError
from joblog.lifecycle import JobCancelled, JobLifecycle, StepLifecycle, StepScope, error_text
from joblog.model import JobStatus, PlannedStep, StepStatus
from joblog.storage.ids import new_step_id
from joblog.storage.store import utcnow
from joblog.storage.writes import InsertStep, UpdateJob, UpdateStep
from joblog.writer import BatchWriter

if TYPE_CHECKING:
    from joblog.tracker import Tracker

__all__ = ["JobCancelled", "JobHandle", "StepHandle", "error_text"]

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
        self.frame = context.Frame(job, self, (job.id, self.id, job.external_job_id))

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
        tracker: Tracker,
        job_id: str,
        job_type: str,
        operation: str,
        external_job_id: str | None,
        planned: Sequence[PlannedStep],
        parent: JobHandle | None,
    ) -> None:
        self.tracker = tracker
        self.id = job_id
        self.job_type = job_type
        self.operation = operation
        self.external_job_id = external_job_id
        self.planned = tuple(planned)
        self.parent: JobHandle | None = parent
        self.parent_step = context.current_step() if parent is not None else None
        if self.parent_step is not None and self.parent_step.job is not parent:
            self.parent_step = None
        self.status = JobStatus.RUNNING
        self.percent = 0
        self.error_message: str | None = None
        self.frame = context.Frame(self, None, (job_id, None, external_job_id))
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self._steps: list[StepHandle] = []
        self._children: list[JobHandle] = []
        self._failed_required: list[StepHandle] = []
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
        if weight is None:
            weight = next((p.weight for p in self.planned if p.name == name), 1.0)
        # next() on itertools.count is atomic: seq is unique under concurrent steps.
        step = StepHandle(self, name, next(self._seq), float(weight), allow_failure)
        with self._lock:
            self._steps.append(step)
        self.tracker.writer.put_op(
            InsertStep(
                {
                    "id": step.id,
                    "job_id": self.id,
                    "seq": step.seq,
                    "name": name,
                    "status": StepStatus.RUNNING.value,
                    "weight": step.weight,
                    "allow_failure": allow_failure,
                    "started_at": utcnow(),
                }
            )
        )
        return step

    def step_finished(self, step: StepHandle) -> None:
        if step.status is StepStatus.FAILED and not step.allow_failure:
            with self._lock:
                self._failed_required.append(step)
        self.recompute()

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
        with self._lock:
            unfinished = [s for s in self._steps if s.status is StepStatus.RUNNING]
        for step in unfinished:
            step.fail("the job ended while this step was still running")
        with self._lock:
            failed = list(self._failed_required)
        if failed:
            names = ", ".join(repr(s.name) for s in failed)
            first = failed[0].error_message or "failed"
            self._end(JobStatus.FAILED, f"step {names} failed: {first}")
            return
        self._end(JobStatus.COMPLETED, None)

    def _end(self, status: JobStatus, error_message: str | None) -> None:
        with self._lock:
            if self.status is not JobStatus.RUNNING:
                raise InvalidTransition(f"job {self.id} already {self.status.value}")
            running = [s for s in self._steps if s.status is StepStatus.RUNNING]
        for step in running:  # steps cannot outlive their job
            step.fail(f"job ended {status.value} while the step was running")
        if status is JobStatus.COMPLETED:
            self._set_percent(100)
        with self._lock:
            self.status = status
            self.error_message = error_message
        now = utcnow()
        self.tracker.writer.put_op(
            UpdateJob(
                self.id,
                {
                    "status": status.value,
                    "error_message": error_message,
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
                job = self.tracker.store.get_job(self.id)
            except JobLogError:
                return False
            self._cancel_requested = bool(job and job.cancel_requested)
        return self._cancel_requested

    def request_cancel(self) -> None:
        """Ask the job to stop (cooperatively): ``cancel_requested`` turns True."""
        self._cancel_requested = True
        self.tracker.writer.put_op(UpdateJob(self.id, {"cancel_requested": True}))
