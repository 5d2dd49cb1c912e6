"""Handles on a job reported over HTTP: the in-process JobHandle/StepHandle API, remotely.

State changes are synchronous calls (the server numbers steps and applies the rules);
log events go through the client's batch writer. Each handle carries a
:class:`~joblog.lifecycle.Frame`, so ``logging`` calls inside ``with job.step(...)`` are
attributed exactly as in process, and ``.owner`` is the client, which is how the
logging handler knows the job is its own.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from joblog.exceptions import InvalidTransition, JobLogError
from joblog.lifecycle import Frame, JobLifecycle, StepLifecycle, current_step
from joblog.model import JobStatus, PlannedStep, StepStatus
from joblog.writer import BatchWriter

if TYPE_CHECKING:
    from joblog.client import Client

__all__ = ["RemoteJob", "RemoteStep"]

log = logging.getLogger("joblog.client")
CANCEL_POLL_SECONDS = 1.0


class RemoteStep(StepLifecycle):
    """One running step of a remote job. Use it through ``with job.step(name):``."""

    job: RemoteJob

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
        self.frame = Frame(job, self, ids)

    def __repr__(self) -> str:
        return f"<RemoteStep {self.job.id}#{self.seq} {self.name!r} {self.status.value}>"

    def _send_finish(self, status: StepStatus, error_message: str | None) -> None:
        answer = self.job.client.session.call(
            "PATCH",
            f"{self.job.path}/steps/{self.seq}",
            {"status": status.value, "error_message": error_message},
        )
        self.status = StepStatus(answer["status"])
        self.error_message = answer.get("error_message")


class RemoteJob(JobLifecycle[RemoteStep]):
    """A job reported to a joblog server. Obtain one from ``client.job(...)``."""

    # The server may be unreachable when a with-block ends: the caller's error wins.
    recording_errors: ClassVar[tuple[type[BaseException], ...]] = (JobLogError,)
    recording_log: ClassVar[logging.Logger] = log

    def __init__(
        self,
        client: Client,
        answer: dict[str, Any],
        parent: RemoteJob | None,
    ) -> None:
        self.client = client
        self.owner = client  # the logging handler's ownership check
        self.id = str(answer["id"])
        self.path = "/api/v1/jobs/" + quote(self.id, safe="")
        self.job_type = str(answer["job_type"])
        self.operation = str(answer["operation"])
        self.external_job_id: str | None = answer.get("external_job_id")
        self.planned = tuple(
            PlannedStep(str(p["name"]), float(p["weight"])) for p in answer["planned_steps"]
        )
        self.parent: RemoteJob | None = parent
        current = current_step()
        self.parent_step: Any = current if parent is not None else None
        if self.parent_step is not None and getattr(self.parent_step, "job", None) is not parent:
            self.parent_step = None
        self.status = JobStatus(answer["status"])
        self.percent = int(answer["percent_complete"])
        self.error_message: str | None = answer.get("error_message")
        self.frame = Frame(self, None, (self.id, None, self.external_job_id))
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

    def step_finished(self, step: RemoteStep) -> None:
        # The server already moved the percent by the plan; follow it, then add fractions.
        self._follow(self._computed_percent(with_fractions=False))
        self.recompute()

    # -- progress --------------------------------------------------------------------------

    def _follow(self, percent: float) -> None:
        with self._lock:
            self.percent = max(self.percent, min(int(percent), 100))

    def _send_percent(self, percent: int) -> None:
        answer = self.client.session.call("PATCH", self.path, {"percent": percent})
        self._follow(int(answer["percent_complete"]))

    # -- children ----------------------------------------------------------------------------

    def child(self, job_type: str, operation: str, **kwargs: Any) -> Any:
        """``with job.child(type, operation, ...)``: a child job whose progress rolls up."""
        return self.client.job(job_type, operation, parent=self, **kwargs)

    # -- ending ------------------------------------------------------------------------------

    def complete(self) -> None:
        """End the job; the server fails it instead if a required step failed."""
        self._end(JobStatus.COMPLETED, None)

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

    def _event_writer(self) -> BatchWriter:
        return self.client.writer

    # -- cancellation ------------------------------------------------------------------------

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
