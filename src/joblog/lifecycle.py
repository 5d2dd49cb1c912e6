"""How a job's or a step's with-block ends and how progress rolls up, written once.

The in-process handles (:mod:`joblog.handles`, changes queued on the tracker's writer)
and the HTTP client's remote handles (:mod:`joblog.client.remote`, changes sent as calls)
follow the same rules; the classes here hold those rules, and each subclass says only
*how* a change is sent; :mod:`joblog.owner` does the same for the Tracker and the Client.

The current job and step travel in a ContextVar (:class:`Frame`). asyncio tasks inherit
the context they were created in, so a task started inside a job logs into that job.
Threads do not inherit it: wrap the callable with :func:`carry`
(``executor.submit(joblog.carry(fn), ...)``) or enter ``job.activate()`` in the thread.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Generic, ParamSpec, Self, TypeVar

from joblog._otel import current_span_ids
from joblog.exceptions import InvalidTransition, JobCancelled
from joblog.model import JobStatus, PlannedStep, StepStatus
from joblog.progress import FINISHED_STEP_STATUSES, planned_percent
from joblog.writer import BatchWriter

__all__ = [
    "Frame",
    "JobCancelled",
    "JobLifecycle",
    "JobScope",
    "StepLifecycle",
    "StepScope",
    "carry",
    "current_frame",
    "current_job",
    "current_step",
    "error_text",
    "is_cancellation",
]


S = TypeVar("S", bound="StepLifecycle")
J = TypeVar("J", bound="JobLifecycle[Any]")


def error_text(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def is_cancellation(exc: BaseException) -> bool:
    """True for the exceptions that cancel a job rather than fail it."""
    return isinstance(exc, JobCancelled | KeyboardInterrupt) or (
        type(exc).__name__ == "CancelledError"
    )


class StepLifecycle:
    """A step's progress and ending; subclasses implement :meth:`_send_finish`."""

    job: JobLifecycle[Any]
    name: str
    allow_failure: bool
    status: StepStatus
    error_message: str | None
    frame: Frame
    _fraction: float

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
        self._finish(StepStatus.FAILED, error if isinstance(error, str) else error_text(error))

    def skip(self, reason: str | None = None) -> None:
        self._finish(StepStatus.SKIPPED, reason)

    def _finish(self, status: StepStatus, error_message: str | None) -> None:
        if self.status in FINISHED_STEP_STATUSES:
            raise InvalidTransition(f"step {self.name!r} already {self.status.value}")
        self._send_finish(status, error_message)
        self.job.step_finished(self)

    def _send_finish(self, status: StepStatus, error_message: str | None) -> None:
        """Record the ending and set ``status`` and ``error_message``."""
        raise NotImplementedError


class StepScope(Generic[S]):
    """``with job.step(...)``: make the step current, finish it by how the block ends."""

    def __init__(self, step: S) -> None:
        self.step = step
        self._token: object = None

    def __enter__(self) -> S:
        self._token = _enter(self.step.frame)
        return self.step

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        _leave(self._token)
        step = self.step
        if step.status in FINISHED_STEP_STATUSES:
            return False
        if exc is None:
            step.complete()
            return False
        job = step.job
        try:
            if is_cancellation(exc):
                step.fail(f"cancelled: {error_text(exc)}")
                return False
            job.log_failure(f"step {step.name!r} failed: {error_text(exc)}", exc, step)
            step.fail(exc)
        except job.recording_errors as error:  # the caller's exception wins
            job.recording_log.warning("could not record step %r as failed: %s", step.name, error)
            return False
        # An optional step's failure is recorded and the job goes on.
        return step.allow_failure and isinstance(exc, Exception)


class JobScope(Generic[J]):
    """``with owner.job(...)``: start, make current, end by how the block ends."""

    def __init__(self, start: Callable[[], J]) -> None:
        self._start = start
        self._token: object = None
        self.job: J | None = None

    def __enter__(self) -> J:
        self.job = self._start()
        self._token = _enter(self.job.frame)
        return self.job

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _leave(self._token)
        job = self.job
        assert job is not None
        if not job.running:
            return
        if exc is None:
            job.complete()
            return
        try:
            if is_cancellation(exc):
                job.cancel(error_text(exc))
            else:
                job.log_failure(f"job failed: {error_text(exc)}", exc, None)
                job.fail(exc)
        except job.recording_errors as error:  # keep the caller's exception, not ours
            job.recording_log.warning("could not record job %s as ended: %s", job.id, error)


class JobLifecycle(Generic[S]):
    """A job's steps, progress roll-up and ending rules; subclasses send the changes."""

    #: Errors from recording how a with-block ended that are logged instead of raised.
    recording_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    recording_log: ClassVar[logging.Logger] = logging.getLogger("joblog")

    id: str
    #: The Tracker or Client that started the job: a logging handler stores a record
    #: only when the current job is its owner's.
    owner: object
    external_job_id: str | None
    planned: tuple[PlannedStep, ...]
    parent: JobLifecycle[Any] | None
    parent_step: Any
    status: JobStatus
    percent: int
    frame: Frame
    _lock: threading.RLock
    _steps: list[S]
    _children: list[Self]

    @property
    def running(self) -> bool:
        return self.status is JobStatus.RUNNING

    # -- steps ---------------------------------------------------------------------------

    def start_step(
        self, name: str, *, allow_failure: bool = False, weight: float | None = None
    ) -> S:
        raise NotImplementedError

    def step(
        self, name: str, *, allow_failure: bool = False, weight: float | None = None
    ) -> StepScope[S]:
        """``with job.step("snapshot"):`` runs a step; an exception fails it and re-raises,
        unless ``allow_failure`` (then the failure is recorded and the job goes on)."""
        return StepScope(self.start_step(name, allow_failure=allow_failure, weight=weight))

    def skip_step(self, name: str, reason: str | None = None) -> S:
        """Record a planned step as skipped (it counts as done for progress)."""
        step = self.start_step(name)
        step.skip(reason)
        return step

    def step_finished(self, step: S) -> None:
        raise NotImplementedError

    def children_of_step(self, step: StepLifecycle) -> list[Self]:
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

    def _computed_percent(self, *, with_fractions: bool = True) -> float:
        with self._lock:
            steps = list(self._steps)
            children = list(self._children)
        if self.planned:
            return planned_percent(
                self.planned,
                ((s.name, s.status, s.fraction if with_fractions else 0.0) for s in steps),
            )
        if children and with_fractions:
            return sum(c.percent for c in children) / len(children)
        return 0.0

    def _set_percent(self, percent: int) -> None:
        with self._lock:
            if percent <= self.percent or not self.running:
                return
            self._accept_percent(min(percent, 100))
        self._send_percent(min(percent, 100))
        if self.parent is not None:
            self.parent.recompute()

    def _accept_percent(self, percent: int) -> None:
        """Take a new percent locally (under the lock) before it is sent; default: wait."""

    def _send_percent(self, percent: int) -> None:
        raise NotImplementedError

    def add_child(self, child: Self) -> None:
        with self._lock:
            self._children.append(child)

    # -- ending ------------------------------------------------------------------------------

    def complete(self) -> None:
        raise NotImplementedError

    def fail(self, error: str | BaseException) -> None:
        self._end(JobStatus.FAILED, error if isinstance(error, str) else error_text(error))

    def cancel(self, reason: str | None = None) -> None:
        self._end(JobStatus.CANCELLED, reason)

    def _end(self, status: JobStatus, error_message: str | None) -> None:
        raise NotImplementedError

    def log_failure(self, message: str, error: BaseException, step: S | None) -> None:
        """Queue an ERROR event with the traceback, whether or not logging is installed."""
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
        self._event_writer().put_event((ids, message, record, current_span_ids()))

    def _event_writer(self) -> BatchWriter:
        raise NotImplementedError

    # -- context and cancellation --------------------------------------------------------------

    @contextmanager
    def activate(self, step: S | None = None) -> Iterator[Self]:
        """Make this job (and optionally a step) current here, e.g. in a worker thread."""
        token = _enter(step.frame if step is not None else self.frame)
        try:
            yield self
        finally:
            _leave(token)

    @property
    def cancel_requested(self) -> bool:
        raise NotImplementedError

    def raise_if_cancel_requested(self) -> None:
        if self.cancel_requested:
            raise JobCancelled(f"job {self.id} was asked to cancel")


P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Frame:
    """What the logging handler needs, precomputed: (job_id, step_id, external_job_id)."""

    job: JobLifecycle[Any]
    step: StepLifecycle | None
    ids: tuple[str, int | None, str | None]


_current: ContextVar[Frame | None] = ContextVar("joblog_current", default=None)
current_frame = _current.get


def current_job() -> JobLifecycle[Any] | None:
    """The job running in this context, if any."""
    frame = _current.get()
    return frame.job if frame is not None else None


def current_step() -> StepLifecycle | None:
    """The step running in this context, if any."""
    frame = _current.get()
    return frame.step if frame is not None else None


def carry(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``fn`` so that it runs in the job and step current *now*, on any thread."""
    frame = _current.get()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _current.set(frame)
        try:
            return fn(*args, **kwargs)
        finally:
            _current.reset(token)

    return run


def _enter(frame: Frame | None) -> object:
    return _current.set(frame)


def _leave(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
