"""The job rules, as pure functions: what a new job row holds and how a job ends.

Both producers of job state follow them: the in-process handles (:mod:`joblog.handles`,
state in memory, changes queued) and the ingest path (:mod:`joblog.storage.producer`,
state read from the rows in one transaction). Nothing here touches a database or a
clock; callers pass ``now``.

The rules:

* progress never goes backwards and stays within 0..100 (:func:`next_percent`);
* a step still running when its job ends is failed (:data:`ENDED_WHILE_RUNNING`);
* a job asked to complete after a required step failed (or was failed by the rule above)
  fails instead, naming the steps (:func:`ending`);
* a completed job is at 100%, and its planned steps that never started are recorded as
  skipped with a reason, so a finished job has no pending step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from joblog._storable import storable
from joblog.model import JobStatus, PlannedStep, StepStatus

__all__ = [
    "ENDED_WHILE_RUNNING",
    "ENDINGS",
    "NEVER_STARTED",
    "Ending",
    "StepFacts",
    "ending",
    "new_job_row",
    "new_step_row",
    "next_percent",
    "planned_weight",
]

#: The statuses a job can end with.
ENDINGS = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})

#: Error message of a step that was still running when its job ended.
ENDED_WHILE_RUNNING = "the job ended while this step was still running"

#: Reason recorded for a planned step that never started in a job that ended.
NEVER_STARTED = "not started: the job ended {status} first"


@dataclass(frozen=True, slots=True)
class StepFacts:
    """What the ending rules need to know of a step."""

    name: str
    status: StepStatus
    allow_failure: bool = False
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class Ending:
    """How a job ends: its final status and error, its percent when that changes, the
    running steps to fail and the planned steps to record as skipped."""

    status: JobStatus
    error_message: str | None
    percent: int | None
    fail_running: tuple[str, ...]
    running_error: str
    skip_planned: tuple[str, ...]
    skip_reason: str


def next_percent(current: int, proposed: float) -> int | None:
    """The new percent when ``proposed`` moves the job forward, else None."""
    percent = min(max(int(proposed), 0), 100)
    return percent if percent > current else None


def ending(
    requested: JobStatus,
    error_message: str | None,
    steps: Sequence[StepFacts],
    planned: Iterable[PlannedStep] = (),
) -> Ending:
    """How a job asked to end as ``requested`` ends, given its steps so far."""
    if requested not in ENDINGS:
        raise ValueError(f"a job cannot end as {requested.value}")
    running = tuple(s.name for s in steps if s.status is StepStatus.RUNNING)
    running_error = ENDED_WHILE_RUNNING
    status, message, percent = requested, error_message, None
    if requested is JobStatus.COMPLETED:
        failed = [
            (s.name, s.error_message)
            for s in steps
            if not s.allow_failure
            and (s.status is StepStatus.FAILED or s.status is StepStatus.RUNNING)
        ]
        if failed:
            names = ", ".join(repr(name) for name, _ in failed)
            first = failed[0][1]
            if first is None:
                first = running_error if failed[0][0] in running else "failed"
            status, message = JobStatus.FAILED, f"step {names} failed: {first}"
        else:
            message, percent = None, 100
    started = {s.name for s in steps}
    never = tuple(p.name for p in planned if p.name not in started)
    return Ending(
        status=status,
        error_message=message,
        percent=percent,
        fail_running=running,
        running_error=running_error,
        skip_planned=never,
        skip_reason=NEVER_STARTED.format(status=status.value),
    )


def new_job_row(
    job_id: str,
    job_type: str,
    operation: str,
    *,
    now: datetime,
    external_job_id: str | None = None,
    context_id: str | None = None,
    owner: str | None = None,
    parent_job_id: str | None = None,
    planned: Sequence[PlannedStep] = (),
    metadata: Mapping[str, Any] | None = None,
    start: bool = True,
    exclusive: bool = False,
) -> dict[str, Any]:
    """The job_tracking row of a new job: running (or pending until its first step).

    ``exclusive``: started under the "reject" policy; while the job is open the database
    refuses any other exclusive job with the same external ID."""
    return {
        "id": job_id,
        "parent_job_id": parent_job_id,
        "job_type": job_type,
        "operation": operation,
        "status": (JobStatus.RUNNING if start else JobStatus.PENDING).value,
        "external_job_id": external_job_id,
        "context_id": context_id,
        "owner": owner,
        "percent_complete": 0,
        "metadata": storable(dict(metadata)) if metadata else None,
        "planned_steps": [{"name": p.name, "weight": p.weight} for p in planned] or None,
        "cancel_requested": False,
        "exclusive_external_id": exclusive and external_job_id is not None,
        "created_at": now,
        "started_at": now if start else None,
        "updated_at": now,
        "heartbeat_at": now,
    }


def new_step_row(
    step_id: int,
    job_id: str,
    seq: int,
    name: str,
    *,
    now: datetime,
    weight: float = 1.0,
    allow_failure: bool = False,
    status: StepStatus = StepStatus.RUNNING,
    error_message: str | None = None,
) -> dict[str, Any]:
    """The job_steps row of a step that starts now (or, when ``status`` is an ending,
    one recorded as already finished, e.g. a planned step skipped at the job's end)."""
    return {
        "id": step_id,
        "job_id": job_id,
        "seq": seq,
        "name": name,
        "status": status.value,
        "weight": weight,
        "allow_failure": allow_failure,
        "error_message": error_message,
        "started_at": now,
        "completed_at": None if status is StepStatus.RUNNING else now,
    }


def planned_weight(planned: Iterable[PlannedStep], name: str, weight: float | None) -> float:
    """A step's weight: as given, else its planned weight, else 1."""
    if weight is not None:
        return float(weight)
    return next((float(p.weight) for p in planned if p.name == name), 1.0)
