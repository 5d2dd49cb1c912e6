"""Handles on a job reported over HTTP: the in-process JobHandle/StepHandle API, remotely.

State changes are synchronous calls (the server numbers steps and applies the rules);
log events go through the client's batch writer. Each handle carries a
:class:`~joblog.context.Frame`, so ``logging`` calls inside ``with job.step(...)`` are
attributed exactly as in process, and ``.tracker`` is the client, which is how the
logging handler knows the job is its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from joblog import context
from joblog.exceptions import InvalidTransition, JobLogError
from joblog.handles import JobCancelled, error_text
from joblog.model import JobStatus, PlannedStep, StepStatus
from joblog.progress import FINISHED_STEP_STATUSES, planned_percent

if TYPE_CHECKING:
    from joblog.client import Client

__all__ = ["RemoteJob", "RemoteStep"]

log = logging.getLogger("joblog.client")
CANCEL_POLL_SECONDS = 1.0


def _is_cancellation(exc: BaseException) -> bool:
    return isinstance(exc, JobCancelled | KeyboardInterrupt) or (
        type(exc).__name__ == "CancelledError"
    )


class RemoteStep:
    """One running step of a remote job. Use it through ``with job.step(name):``."""

    def __init__(self, job: RemoteJob, answer: dict[str, Any]) -> None:
        self.job = job
        self.id = int(answer["id"])
        self.seq = int(answer["seq"])
        self.name = str(answer["name"])
        self.weight = float(answer["weight"])
        self.allow_failure = bool(answer["allow_failure"])
        self.status = StepStatus(answer["status"])
        self.error_message: str | None = answer.get("error_message")
        self._fraction = 0.0
        ids = (job.id, self.id, job.external_job_id)
        self.frame = context.Frame(cast(Any, job), cast(Any, self), ids)

    def __repr__(self) -> str:
        return f"<RemoteStep {self.job.id}#{self.seq} {self.name!r} {self.status.value}>"

    @property
    def fraction(self) -> float:
        children = self.job.children_of_step(self)
        if children:
            return max(self._fraction, sum(c.percent for c in children) / (100 * len(children)))
        return self._fraction

    def progress(self, percent: float) -> None:
        """How far this step is; the job's percent moves within the step's planned share."""
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
        answer = self.job.client.session.call(
            "PATCH",
            f"{self.job.path}/steps/{self.seq}",
            {"status": status.value, "error_message": error_message},
        )
        self.status = StepStatus(answer["status"])
        self.error_message = answer.get("error_message")
        self.job.step_finished(self)


class _StepScope:
    def __init__(self, step: RemoteStep) -> None:
        self.step = step
        self._token: object = None

    def __enter__(self) -> RemoteStep:
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
        if step.status in FINISHED_STEP_STATUSES:
            return False
        if exc is None:
            step.complete()
            return False
        try:
            if _is_cancellation(exc):
                step.fail(f"cancelled: {error_text(exc)}")
                return False
            step.job.log_failure(f"step {step.name!r} failed: {error_text(exc)}", exc, step)
            step.fail(exc)
        except JobLogError as error:  # the server is unreachable: the caller's error wins
            log.warning("could not record step %r as failed: %s", step.name, error)
            return False
        return step.allow_failure and isinstance(exc, Exception)


class RemoteJob:
    """A job reported to a joblog server. Obtain one from ``client.job(...)``."""

    def __init__(
        self,
        client: Client,
        answer: dict[str, Any],
        parent: RemoteJob | None,
    ) -> None:
        self.client = client
        self.tracker = client  # the logging handler's ownership check
        self.id = str(answer["id"])
        self.path = "/api/v1/jobs/" + quote(self.id, safe="")
        self.job_type = str(answer["job_type"])
        self.operation = str(answer["operation"])
        self.external_job_id: str | None = answer.get("external_job_id")
        self.planned = tuple(
            PlannedStep(str(p["name"]), float(p["weight"])) for p in answer["planned_steps"]
        )
        self.parent = parent
        current = context.current_step()
        self.parent_step: Any = current if parent is not None else None
        if self.parent_step is not None and getattr(self.parent_step, "job", None) is not parent:
            self.parent_step = None
        self.status = JobStatus(answer["status"])
        self.percent = int(answer["percent_complete"])
        self.error_message: str | None = answer.get("error_message")
        self.frame = context.Frame(cast(Any, self), None, (self.id, None, self.external_job_id))
        self._lock = threading.RLock()
        self._steps: list[RemoteStep] = []
        self._children: list[RemoteJob] = []
        self._cancel_requested = bool(answer.get("cancel_requested", False))
        self._cancel_checked = time.monotonic()

    def __repr__(self) -> str:
        return f"<RemoteJob {self.id} {self.job_type}/{self.operation} {self.status.value}>"

    @property
    def running(self) -> bool:
        return self.status in (JobStatus.RUNNING, JobStatus.PENDING)

    # -- steps ---------------------------------------------------------------------------

    def start_step(
        self, name: str, *, allow_failure: bool = False, weight: float | None = None
    ) -> RemoteStep:
        """Start a step without a ``with`` block; finish it with complete(), fail() or skip()."""
        if not self.running:
            raise InvalidTransition(f"job {self.id} is {self.status.value}, not running")
        body: dict[str, Any] = {"name": name, "allow_failure": allow_failure}
        if weight is not None:
            body["weight"] = weight
        step = RemoteStep(self, self.client.session.call("POST", f"{self.path}/steps", body))
        with self._lock:
            self._steps.append(step)
            self.status = JobStatus.RUNNING  # a pending job runs from its first step
        return step

    def step(
        self, name: str, *, allow_failure: bool = False, weight: float | None = None
    ) -> _StepScope:
        """``with job.step("snapshot"):``: an exception fails the step and is re-raised,
        unless ``allow_failure`` (the failure is recorded and the job goes on)."""
        return _StepScope(self.start_step(name, allow_failure=allow_failure, weight=weight))

    def skip_step(self, name: str, reason: str | None = None) -> RemoteStep:
        step = self.start_step(name)
        step.skip(reason)
        return step

    def step_finished(self, step: RemoteStep) -> None:
        # The server already moved the percent by the plan; follow it, then add fractions.
        self._follow(self._computed_percent(with_fractions=False))
        self.recompute()

    def children_of_step(self, step: RemoteStep) -> list[RemoteJob]:
        with self._lock:
            return [c for c in self._children if c.parent_step is step]

    # -- progress --------------------------------------------------------------------------

    def progress(self, percent: float) -> None:
        """Set the percent explicitly; it never goes backwards."""
        if not 0 <= percent <= 100:
            raise ValueError("percent must be between 0 and 100")
        self._set_percent(int(percent))

    def recompute(self) -> None:
        self._set_percent(int(self._computed_percent(with_fractions=True)))

    def _computed_percent(self, *, with_fractions: bool) -> float:
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

    def _follow(self, percent: float) -> None:
        with self._lock:
            self.percent = max(self.percent, min(int(percent), 100))

    def _set_percent(self, percent: int) -> None:
        with self._lock:
            if percent <= self.percent or not self.running:
                return
        answer = self.client.session.call("PATCH", self.path, {"percent": min(percent, 100)})
        self._follow(int(answer["percent_complete"]))
        if self.parent is not None:
            self.parent.recompute()

    # -- children ----------------------------------------------------------------------------

    def child(self, job_type: str, operation: str, **kwargs: Any) -> Any:
        """``with job.child(type, operation, ...)``: a child job whose progress rolls up."""
        return self.client.job(job_type, operation, parent=self, **kwargs)

    def add_child(self, child: RemoteJob) -> None:
        with self._lock:
            self._children.append(child)

    # -- ending ------------------------------------------------------------------------------

    def complete(self) -> None:
        """End the job; the server fails it instead if a required step failed."""
        self._end(JobStatus.COMPLETED, None)

    def fail(self, error: str | BaseException) -> None:
        self._end(JobStatus.FAILED, error if isinstance(error, str) else error_text(error))

    def cancel(self, reason: str | None = None) -> None:
        self._end(JobStatus.CANCELLED, reason)

    def _end(self, status: JobStatus, error_message: str | None) -> None:
        if not self.running:
            raise InvalidTransition(f"job {self.id} already {self.status.value}")
        # Ship the job's queued log events first: a follower stops reading at the end.
        self.client.flush()
        body = {"status": status.value, "error_message": error_message}
        answer = self.client.session.call("PATCH", self.path, body)
        with self._lock:
            self.status = JobStatus(answer["status"])
            self.percent = int(answer["percent_complete"])
            self.error_message = answer.get("error_message")
            for step in self._steps:
                if step.status is StepStatus.RUNNING:
                    step.status = StepStatus.FAILED  # the server failed it with the job
        self.client.job_ended(self)
        if self.parent is not None:
            self.parent.recompute()

    def log_failure(self, message: str, error: BaseException, step: RemoteStep | None) -> None:
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
        self.client.writer.put_event((ids, message, record))

    # -- context and cancellation --------------------------------------------------------------

    @contextmanager
    def activate(self, step: RemoteStep | None = None) -> Iterator[RemoteJob]:
        """Make this job (and optionally a step) current here, e.g. in a worker thread."""
        token = context.enter(step.frame if step is not None else self.frame)
        try:
            yield self
        finally:
            context.leave(token)

    @property
    def cancel_requested(self) -> bool:
        """True once someone asked to cancel this job (a heartbeat asks the server, ~1/s)."""
        if self._cancel_requested or not self.running:
            return self._cancel_requested
        if time.monotonic() - self._cancel_checked >= CANCEL_POLL_SECONDS:
            try:
                self.heartbeat()
            except JobLogError:
                return self._cancel_requested
        return self._cancel_requested

    def heartbeat(self) -> None:
        """Tell the server the job is alive; learn whether a cancel was requested."""
        answer = self.client.session.call("POST", f"{self.path}/heartbeat")
        self.saw_state(answer)

    def saw_state(self, answer: dict[str, Any]) -> None:
        self._cancel_checked = time.monotonic()
        self._cancel_requested = self._cancel_requested or bool(answer.get("cancel_requested"))

    def request_cancel(self) -> None:
        """Ask the job to stop (cooperatively): ``cancel_requested`` turns True."""
        self.saw_state(self.client.session.call("POST", f"{self.path}/cancel"))

    def raise_if_cancel_requested(self) -> None:
        if self.cancel_requested:
            raise JobCancelled(f"job {self.id} was asked to cancel")


class JobScope:
    """``with client.job(...)``: start, make current, end by how the block ends."""

    def __init__(self, client: Client, args: tuple[str, str], kwargs: dict[str, Any]) -> None:
        self._client = client
        self._args = args
        self._kwargs = kwargs
        self._token: object = None
        self.job: RemoteJob | None = None

    def __enter__(self) -> RemoteJob:
        self.job = self._client.start_job(*self._args, **self._kwargs)
        self._token = context.enter(self.job.frame)
        return self.job

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        context.leave(self._token)
        job = self.job
        assert job is not None
        if not job.running:
            return
        if exc is None:
            job.complete()
            return
        try:
            if _is_cancellation(exc):
                job.cancel(error_text(exc))
            else:
                job.log_failure(f"job failed: {error_text(exc)}", exc, None)
                job.fail(exc)
        except JobLogError as error:  # keep the caller's exception, not ours
            log.warning("could not record job %s as ended: %s", job.id, error)
