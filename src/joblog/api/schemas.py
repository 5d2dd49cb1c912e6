"""Pydantic models that document the JSON in the OpenAPI document.

Handlers build their bodies with :mod:`joblog.api.serialize` and return them directly; these
models describe that shape for ``/openapi.json`` and ``/docs`` without validating every
response on the hot path.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = [
    "ErrorBody",
    "EventModel",
    "EventPage",
    "HealthBody",
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


class ErrorBody(BaseModel):
    error: str
    id: str | None = None
    detail: list[dict[str, Any]] | str | None = None


class HealthBody(BaseModel):
    status: str
    database: str
    detail: str | None = None
