"""Handles on a running job and its steps: state changes, progress, the context.

Every change becomes an op on the tracker's writer queue, in order with the log events
around it, so a database outage delays the rows but never blocks or fails the caller.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

from joblog import context
from joblog.exceptions import InvalidTransition, JobLogError
from joblog.model import JobStatus, PlannedStep, StepStatus
from joblog.progress import FINISHED_STEP_STATUSES, planned_percent
from joblog.storage.ids import new_step_id
from joblog.storage.store import utcnow
from joblog.storage.writes import InsertStep, UpdateJob, UpdateStep

if TYPE_CHECKING:
    from joblog.tracker import Tracker

__all__ = ["JobCancelled", "JobHandle", "StepHandle"]

_FINISHED_STEP = FINISHED_STEP_STATUSES


class JobCancelled(JobLogError):
    """The job was cancelled."""


def error_text(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class StepHandle:
    """One running step of a job. Use it through ``with job.step(name):``."""

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

    @property
    def fraction(self) -> float:
        """How far this step is, 0..1: its own progress() or its child jobs' mean."""
        children = self.job.children_of_step(self)
        if children:
            return max(self._fraction, sum(c.percent for c in children) / (100 * len(children)))
        return self._fraction

    def progress(self, percent: float) -> None:
        """Report how far this step is; the job's percent moves within the step's share."""
        self._fraction = max(self._fraction, min(max(float(percent), 0.0), 100.0) / 100)
        self.job.recompute()

    def complete(self) -> None:
        self._finish(StepStatus.COMPLETED, None)

    def fail(self, error: str | BaseException) -> None:
        message = error if isinstance(error, str) else error_text(error)
        self._finish(StepStatus.FAILED, message)

    def skip(self, reason: str | None = None) -> None:
        self._finish(StepStatus.SKIPPED, reason)

    def _finish(self, status: StepStatus, error_message: str | None) -> None:
        if self.status in _FINISHED_STEP:
            raise InvalidTransition(f"step {self.name!r} already {self.status.value}")
        self.status = status
        self.error_message = error_message
        self.job.tracker.writer.put_op(
            UpdateStep(
                self.id,
                {"status": status.value, "error_message": error_message, "completed_at": utcnow()},
            )
        )
        self.job.step_finished(self)


class _StepScope:
    """``with job.step(...)``: start, make current, finish by how the block ends."""

    def __init__(self, step: StepHandle) -> None:
        self.step = step
        self._token: object = None

    def __enter__(self) -> StepHandle:
        self._token = context.enter(self.step.frame)
        return self.step

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        context.leave(self._token)
        step = self.step
        if step.status in _FINISHED_STEP:
            return False
        if exc is None:
            step.complete()
            return False
        if isinstance(exc, JobCancelled | KeyboardInterrupt) or (
            exc_type is not None and (exc_type.__name__ == "CancelledError")
        ):
            step.fail(f"cancelled: {error_text(exc)}")
            return False
        step.job.log_failure(f"step {step.name!r} failed: {error_text(exc)}", exc, step)
        step.fail(exc)
        # An optional step's failure is recorded and the job goes on.
        return step.allow_failure and isinstance(exc, Exception)


class JobHandle:
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
        self.parent = parent
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

    def step(
        self, name: str, *, allow_failure: bool = False, weight: float | None = None
    ) -> _StepScope:
        """``with job.step("snapshot"):`` runs a step; an exception fails it and re-raises,
        unless ``allow_failure`` (then the failure is recorded and the job goes on)."""
        return _StepScope(self.start_step(name, allow_failure=allow_failure, weight=weight))

    def skip_step(self, name: str, reason: str | None = None) -> StepHandle:
        """Record a planned step as skipped (it counts as done for progress)."""
        step = self.start_step(name)
        step.skip(reason)
        return step

    def step_finished(self, step: StepHandle) -> None:
        if step.status is StepStatus.FAILED and not step.allow_failure:
            with self._lock:
                self._failed_required.append(step)
        self.recompute()

    def children_of_step(self, step: StepHandle) -> list[JobHandle]:
        with self._lock:
            return [c for c in self._children if c.parent_step is step]

    # -- progress --------------------------------------------------------------------------

    def progress(self, percent: float) -> None:
        """Set the percent explicitly; it never goes backwards."""
        if not 0 <= percent <= 100:
            raise ValueError("percent must be between 0 and 100")
        self._set_percent(int(percent))

    def recompute(self) -> None:
        """Recompute the percent from planned steps and children (never backwards)."""
        self._set_percent(int(self._computed_percent()))

    def _computed_percent(self) -> float:
        with self._lock:
            steps = list(self._steps)
            children = list(self._children)
        if self.planned:
            return planned_percent(self.planned, ((s.name, s.status, s.fraction) for s in steps))
        if children:
            return sum(c.percent for c in children) / len(children)
        return 0.0

    def _set_percent(self, percent: int) -> None:
        with self._lock:
            if percent <= self.percent or self.status is not JobStatus.RUNNING:
                return
            self.percent = min(percent, 100)
        self.tracker.writer.put_op(
            UpdateJob(self.id, {"percent_complete": self.percent, "updated_at": utcnow()})
        )
        if self.parent is not None:
            self.parent.recompute()

    # -- children ---------------------------------------------------------------------------

    def child(self, job_type: str, operation: str, **kwargs: Any) -> Any:
        """``with job.child(type, operation, ...)``: a child job whose progress rolls up."""
        return self.tracker.job(job_type, operation, parent=self, **kwargs)

    def add_child(self, child: JobHandle) -> None:
        with self._lock:
            self._children.append(child)

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

    def fail(self, error: str | BaseException) -> None:
        self._end(JobStatus.FAILED, error if isinstance(error, str) else error_text(error))

    def cancel(self, reason: str | None = None) -> None:
        self._end(JobStatus.CANCELLED, reason)

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

    def log_failure(self, message: str, error: BaseException, step: StepHandle | None) -> None:
        """Store an ERROR event with the traceback in attrs, whether or not logging is installed."""
        record = logging.makeLogRecord(
            {
                "name": "joblog",
                "levelno": logging.ERROR,
                "levelname": "ERROR",
                "msg": message,
                "exc_info": (type(error), error, error.__traceback__),
            }
        )
        ids = step.frame.ids if step is not None else self.frame.ids
        self.tracker.writer.put_event((ids, message, record))

    # -- context and cancellation --------------------------------------------------------------

    @contextmanager
    def activate(self, step: StepHandle | None = None) -> Iterator[JobHandle]:
        """Make this job (and optionally a step) current here, e.g. in a worker thread."""
        token = context.enter(step.frame if step is not None else self.frame)
        try:
            yield self
        finally:
            context.leave(token)

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

    def raise_if_cancel_requested(self) -> None:
        if self.cancel_requested:
            raise JobCancelled(f"job {self.id} was asked to cancel")
