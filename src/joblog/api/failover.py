"""``GET /api/v1/failover/{job_id}/status``: the origin platform's contract, unchanged.

The platform's GUI polls this path and reads the body its Go handler
(``GetFailoverJobStatus``, struct ``JobStatusResponse``) returns::

    {success, message, job_id, status, progress, start_time, duration, job_details, error?}

``duration`` is a Go ``time.Duration``: integer nanoseconds. ``job_details`` differs for
joblog's jobs and for rows of the older ``failover_jobs`` table (whose ``status`` is the
raw phase and ``progress`` the platform's phase map). Resolution is the one resolver's,
so every ID the GUI holds works: UUID, external ID, context ID, log events, legacy row.
joblog's own, richer shape stays at ``/api/v1/jobs/{any_id}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from joblog.api.conditional import conditional_summary
from joblog.api.lean import LeanRoute
from joblog.api.schemas import FAILOVER_EXAMPLES, FailoverNotFound, FailoverStatus
from joblog.api.serialize import dumps, iso, step_to_dict
from joblog.exceptions import JobNotFound
from joblog.model import JobStatus, JobSummary, LegacyFailoverJob, ResolvedBy
from joblog.resolve import legacy_percent

__all__ = [
    "PREFIX",
    "TRACKING_SOURCE",
    "failover_status_body",
    "not_found_body",
    "refusal",
    "router",
]

router = APIRouter(prefix="/api/v1", tags=["failover (origin GUI contract)"], route_class=LeanRoute)
#: Every path this router serves starts so (the input guard answers them in this shape).
PREFIX = "/api/v1/failover/"

#: ``job_details.tracking_source``: the origin's names for how the ID was matched.
TRACKING_SOURCE = {
    ResolvedBy.JOB_ID: "direct_joblog_uuid",
    ResolvedBy.EXTERNAL_JOB_ID: "external_job_id_correlation",
    ResolvedBy.CONTEXT_ID: "context_id",
    ResolvedBy.LOG_EVENTS: "log_events",
    ResolvedBy.FAILOVER_JOBS: "legacy_failover_jobs",
}

#: ``job_details.job_category`` by job type, when the job's metadata names none (the
#: origin's categories: system, failover, replication, scheduler, discovery, bulk).
_CATEGORY = {
    "failover": "failover",
    "replication": "replication",
    "migration": "replication",
    "scheduler": "scheduler",
    "schedule_management": "scheduler",
    "schedule_control": "scheduler",
    "discovery": "discovery",
    "bulk-operations": "bulk",
}
_NS = 1_000_000_000


def _nanoseconds(seconds: float | None) -> int:
    return 0 if seconds is None else max(round(seconds * _NS), 0)


def failover_status_body(summary: JobSummary, asked: str) -> dict[str, Any]:
    """The ``JobStatusResponse`` of a resolved summary; ``asked`` is the ID the GUI sent."""
    if summary.legacy is not None:
        return _legacy_body(summary, summary.legacy)
    job, progress = summary.job, summary.progress
    metadata = job.metadata if isinstance(job.metadata, dict) else {}
    total = progress.planned_steps
    category = metadata.get("job_category")
    details: dict[str, Any] = {
        "job_type": job.job_type,
        "operation": job.operation,
        "context_id": job.context_id,
        "external_job_id": job.external_job_id,
        "job_category": category
        if isinstance(category, str)
        else _CATEGORY.get(job.job_type, "system"),
        "total_steps": total,
        "completed_steps": progress.completed_steps,
        "failed_steps": progress.failed_steps,
        "running_steps": progress.running_steps,
        "step_completion": round(100.0 * progress.completed_steps / total, 1) if total else 0.0,
        "error_message": job.error_message,
        "metadata": metadata,
        "tracking_source": TRACKING_SOURCE[summary.resolved_by],
        "gui_job_id": asked,
        "internal_job_id": None if job.status is JobStatus.UNKNOWN else job.id,
        # joblog's extras
        "current_step": progress.current_step,
        "eta_seconds": summary.eta_seconds,
        "steps": [step_to_dict(step) for step in summary.steps],
    }
    body: dict[str, Any] = {
        "success": True,
        "message": "Job status retrieved successfully",
        "job_id": job.id,
        "status": job.status.value,
        "progress": progress.percent,
        "start_time": iso(job.started_at or job.created_at),
        "duration": _nanoseconds(summary.elapsed_seconds),
        "job_details": details,
    }
    if job.error_message and job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        body["error"] = job.error_message
    return body


def _legacy_body(summary: JobSummary, legacy: LegacyFailoverJob) -> dict[str, Any]:
    started = legacy.started_at or legacy.created_at
    body: dict[str, Any] = {
        "success": True,
        "message": "Job status retrieved successfully",
        "job_id": legacy.job_id,
        "status": legacy.status,
        "progress": legacy_percent(legacy.status),
        "start_time": iso(started),
        "duration": _nanoseconds(summary.elapsed_seconds),
        "job_details": {
            "vm_id": legacy.vm_id,
            "vm_name": legacy.source_vm_name,
            "job_type": legacy.job_type,
            "destination_vm_id": legacy.destination_vm_id,
            "error_message": legacy.error_message,
            "started_at": iso(started),
            "completed_at": iso(legacy.completed_at),
            "tracking_source": TRACKING_SOURCE[ResolvedBy.FAILOVER_JOBS],
            # What the GUI's progress proxy reads for joblog's jobs, here too.
            "metadata": {"vm_name": legacy.source_vm_name, "failover_type": legacy.job_type},
        },
    }
    if legacy.status == "failed" and legacy.error_message:
        body["error"] = legacy.error_message
    return body


def not_found_body(any_id: str) -> dict[str, Any]:
    return {
        "success": False,
        "message": "Failover job not found",
        "error": f"failover job not found: {any_id}",
    }


def refusal(status: int, detail: list[dict[str, Any]], path: str) -> Response:
    """The input guard's answer in the origin's shape: an unusable ID is not found."""
    if status == 404:
        return _json(not_found_body(path.removeprefix(PREFIX).removesuffix("/status")), 404)
    body = {"success": False, "message": "Invalid request", "error": str(detail[0]["msg"])}
    return _json(body, status)


def _json(body: dict[str, Any], status_code: int = 200) -> Response:
    return Response(dumps(body), status_code=status_code, media_type="application/json")


@router.get(
    "/failover/{job_id:path}/status",
    response_class=Response,
    responses={
        200: {
            "model": FailoverStatus,
            "description": "The job, as the origin platform's Go handler reports it",
            "content": {"application/json": {"examples": FAILOVER_EXAMPLES}},
        },
        404: {"model": FailoverNotFound, "description": "No job is known by that ID"},
    },
)
async def failover_status(job_id: str, request: Request) -> Response:
    """The status of a job by any ID the GUI holds, in the origin platform's shape."""
    try:
        return await conditional_summary(
            request,
            job_id,
            "failover",
            lambda summary: dumps(failover_status_body(summary, job_id)),
        )
    except JobNotFound:
        return _json(not_found_body(job_id), 404)
