"""Pydantic models that document the JSON in the OpenAPI document.

Handlers build their bodies with :mod:`joblog.api.serialize` and return them directly; these
models describe that shape for ``/openapi.json`` and ``/docs`` without validating every
response on the hot path.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = [
    "FAILOVER_EXAMPLES",
    "ErrorBody",
    "EventModel",
    "EventPage",
    "FailoverNotFound",
    "FailoverStatus",
    "HealthBody",
    "IngestResult",
    "JobModel",
    "JobPage",
    "LegacyModel",
    "ProgressModel",
    "StepModel",
    "SummaryModel",
]


class PlannedStepModel(BaseModel):
    name: str
    weight: float


class JobModel(BaseModel):
    id: str
    parent_job_id: str | None
    job_type: str
    operation: str
    status: str
    external_job_id: str | None
    context_id: str | None
    owner: str | None
    percent_complete: int
    metadata: dict[str, Any] | None
    error_message: str | None
    created_at: str
    started_at: str | None
    completed_at: str | None
    updated_at: str | None
    heartbeat_at: str | None
    cancel_requested: bool
    planned_steps: list[PlannedStepModel]


class StepModel(BaseModel):
    id: str | None
    job_id: str
    seq: int | None
    name: str
    status: str
    started_at: str | None
    completed_at: str | None
    duration_seconds: float | None
    error_message: str | None
    weight: float
    allow_failure: bool


class EventModel(BaseModel):
    id: int
    job_id: str | None
    step_id: str | None
    external_job_id: str | None
    level: str
    message: str
    attrs: dict[str, Any] | None
    ts: str
    trace_id: str | None = None
    span_id: str | None = None


class ProgressModel(BaseModel):
    percent: int
    planned_steps: int
    completed_steps: int
    failed_steps: int
    running_steps: int
    current_step: str | None


class LegacyModel(BaseModel):
    id: int
    job_id: str
    vm_id: str | None
    job_type: str
    status: str
    source_vm_name: str | None
    error_message: str | None
    created_at: str | None
    updated_at: str | None
    completed_at: str | None


class SummaryModel(BaseModel):
    """A job resolved from any ID, with how it was found (``resolved_by``)."""

    resolved_by: str
    job: JobModel
    steps: list[StepModel]
    progress: ProgressModel
    elapsed_seconds: float | None
    eta_seconds: float | None
    recent_events: list[EventModel]
    children: list[JobModel]
    legacy: LegacyModel | None


class JobPage(BaseModel):
    jobs: list[JobModel]
    next_cursor: str | None


class EventPage(BaseModel):
    events: list[EventModel]
    next_cursor: str | None
    #: Only with ``before_id``: the ``before_id`` of the next older page (null: none).
    next_before_id: int | None = None


class ErrorBody(BaseModel):
    error: str
    id: str | None = None
    detail: list[dict[str, Any]] | str | None = None


class IngestResult(BaseModel):
    """``POST /api/v1/events``: how many events were stored, and whether the batch key
    had been stored before (then nothing is stored again)."""

    stored: int
    duplicate: bool


class HealthBody(BaseModel):
    status: str
    database: str
    detail: str | None = None


class FailoverStatus(BaseModel):
    """The origin platform's ``JobStatusResponse`` (``duration`` in nanoseconds)."""

    success: bool
    message: str
    job_id: str
    status: str
    progress: float
    start_time: str | None
    duration: int
    job_details: dict[str, Any]
    error: str | None = None


class FailoverNotFound(BaseModel):
    success: bool
    message: str
    error: str


FAILOVER_EXAMPLES: dict[str, Any] = {
    "joblog job": {
        "summary": "A running failover tracked by joblog, found by its external ID",
        "value": {
            "success": True,
            "message": "Job status retrieved successfully",
            "job_id": "0b6f7d1e-5c1a-4f8e-9d7c-2a1b3c4d5e6f",
            "status": "running",
            "progress": 45,
            "start_time": "2025-09-22T14:32:13.000000Z",
            "duration": 95000000000,
            "job_details": {
                "job_type": "failover",
                "operation": "unified-live-failover",
                "context_id": "ctx-pgtest2-20250909-114231",
                "external_job_id": "unified-live-failover-pgtest2-1758553933",
                "job_category": "failover",
                "total_steps": 10,
                "completed_steps": 4,
                "failed_steps": 0,
                "running_steps": 1,
                "step_completion": 40.0,
                "error_message": None,
                "metadata": {"vm_name": "pgtest2", "failover_type": "live"},
                "tracking_source": "external_job_id_correlation",
                "gui_job_id": "unified-live-failover-pgtest2-1758553933",
                "internal_job_id": "0b6f7d1e-5c1a-4f8e-9d7c-2a1b3c4d5e6f",
                "current_step": "volume-switch",
                "eta_seconds": 110.0,
                "steps": [],
            },
        },
    },
    "legacy row": {
        "summary": "A row of the older failover_jobs table",
        "value": {
            "success": True,
            "message": "Job status retrieved successfully",
            "job_id": "failover-20250901-120000",
            "status": "snapshotting",
            "progress": 25,
            "start_time": "2025-09-01T12:00:00.000000Z",
            "duration": 42000000000,
            "job_details": {
                "vm_id": "vm-4711",
                "vm_name": "pgtest2",
                "job_type": "live",
                "destination_vm_id": None,
                "error_message": None,
                "started_at": "2025-09-01T12:00:00.000000Z",
                "completed_at": None,
                "tracking_source": "legacy_failover_jobs",
                "metadata": {"vm_name": "pgtest2", "failover_type": "live"},
            },
        },
    },
}
