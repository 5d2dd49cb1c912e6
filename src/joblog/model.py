"""Plain data: the job, its steps, its log events and the summary a GUI shows.

These classes know nothing of SQL or HTTP; storage builds them from rows and the API
serialises them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "OPEN_JOB_STATUSES",
    "TERMINAL_JOB_STATUSES",
    "Job",
    "JobStatus",
    "JobSummary",
    "LegacyFailoverJob",
    "Level",
    "LogEvent",
    "PlannedStep",
    "Progress",
    "ResolvedBy",
    "Step",
    "StepStatus",
]


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: Only in summaries built from log events whose producer never created a job row.
    UNKNOWN = "unknown"


TERMINAL_JOB_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
#: A job not yet ended: its events are never pruned, it can be cancelled, it may be reaped.
OPEN_JOB_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING)


class StepStatus(enum.StrEnum):
    #: A declared step that has not started; never stored, only shown in summaries.
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


class Level(enum.StrEnum):
    """The four levels of the log_events table (WARNING is stored as WARN)."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"

    @property
    def rank(self) -> int:
        return _LEVEL_RANK[self]

    @classmethod
    def parse(cls, value: str) -> Level:
        """Accept a level name in any case, WARNING/CRITICAL/FATAL included."""
        name = value.strip().upper()
        name = {"WARNING": "WARN", "CRITICAL": "ERROR", "FATAL": "ERROR"}.get(name, name)
        try:
            return cls(name)
        except ValueError:
            raise ValueError(f"unknown level {value!r}: use DEBUG, INFO, WARN or ERROR") from None


_LEVEL_RANK = {Level.DEBUG: 10, Level.INFO: 20, Level.WARN: 30, Level.ERROR: 40}


class ResolvedBy(enum.StrEnum):
    """Which tier of resolution found the job."""

    JOB_ID = "job_id"
    EXTERNAL_JOB_ID = "external_job_id"
    CONTEXT_ID = "context_id"
    LOG_EVENTS = "log_events"
    FAILOVER_JOBS = "failover_jobs"


@dataclass(frozen=True, slots=True)
class PlannedStep:
    name: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    job_type: str
    operation: str
    status: JobStatus
    created_at: datetime
    parent_job_id: str | None = None
    external_job_id: str | None = None
    context_id: str | None = None
    owner: str | None = None
    percent_complete: int = 0
    metadata: dict[str, Any] | None = None
    error_message: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    updated_at: datetime | None = None
    heartbeat_at: datetime | None = None
    cancel_requested: bool = False
    planned_steps: tuple[PlannedStep, ...] = ()

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_JOB_STATUSES


@dataclass(frozen=True, slots=True)
class Step:
    id: int | None
    job_id: str
    seq: int | None
    name: str
    status: StepStatus
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error_message: str | None = None
    weight: float = 1.0
    allow_failure: bool = False

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds()


@dataclass(frozen=True, slots=True)
class LogEvent:
    id: int
    job_id: str | None
    step_id: int | None
    external_job_id: str | None
    level: Level
    message: str
    attrs: dict[str, Any] | None
    ts: datetime
    #: The OpenTelemetry span active when the event was logged (lowercase hex), if any.
    trace_id: str | None = None
    span_id: str | None = None


@dataclass(frozen=True, slots=True)
class LegacyFailoverJob:
    """A row of the older system's failover_jobs table."""

    id: int
    job_id: str
    vm_id: str | None
    job_type: str
    status: str
    source_vm_name: str | None
    error_message: str | None
    created_at: datetime | None
    updated_at: datetime | None
    completed_at: datetime | None
    #: Present on the origin platform's table (joblog's own copy of it may lack them).
    started_at: datetime | None = None
    destination_vm_id: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    percent: int
    planned_steps: int
    completed_steps: int
    failed_steps: int
    running_steps: int
    current_step: str | None


@dataclass(frozen=True, slots=True)
class JobSummary:
    """Everything a GUI needs to show one job, and how its ID was resolved."""

    job: Job
    resolved_by: ResolvedBy
    steps: list[Step]
    progress: Progress
    elapsed_seconds: float | None
    eta_seconds: float | None
    recent_events: list[LogEvent]
    children: list[Job] = field(default_factory=list)
    legacy: LegacyFailoverJob | None = None
