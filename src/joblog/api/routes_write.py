"""The write (ingest) API under /api/v1: producers in any language report over HTTP.

Each route is one transaction in :class:`~joblog.storage.producer.ProducerWrites`, which
applies the in-process tracker's rules (monotonic progress, gapless step numbers, no
"completed" after a failed required step). ``{any_id}`` is the internal UUID or the
external job ID (the newest job holding it). Every route needs a write token: the
:mod:`joblog.api.auth` middleware checks it before the body is even read.

Status codes: 201 created (job, step), 200 changed, 202 cancel requested, 401/403 token,
404 unknown job or step, 409 a transition the job's state forbids or an external ID held by
a running job, 413 body too large, 422 invalid body, 503 database unavailable.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from joblog.api.auth import require_write
from joblog.api.errors import InvalidRequest
from joblog.api.metrics import AppMetrics
from joblog.api.routes_jobs import json_response
from joblog.api.schemas import ErrorBody, IngestResult, JobModel, StepModel
from joblog.api.serialize import dumps, job_to_dict, step_to_dict
from joblog.api.write_schemas import EventBatch, JobCreate, JobUpdate, StepCreate, StepFinish
from joblog.exceptions import InvalidTransition, JobNotFound, StorageError
from joblog.model import JobStatus, PlannedStep, StepStatus
from joblog.resolve import Resolver
from joblog.storage.producer import ProducerWrites

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["ingest"], dependencies=[Depends(require_write)])


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        401: "No or malformed Authorization header",
        403: "Not a write token",
        404: "No job (or step) is known by that ID",
        409: "The job's state forbids it, or a running job holds the external ID",
        413: "Request body too large",
        422: "Invalid body",
        503: "Database unavailable",
    }
    return {code: {"model": ErrorBody, "description": described[code]} for code in codes}


_JOB: dict[int | str, dict[str, Any]] = {
    200: {"model": JobModel},
    **_errors(401, 403, 404, 409, 413, 422, 503),
}
_STEP: dict[int | str, dict[str, Any]] = {
    200: {"model": StepModel},
    **_errors(401, 403, 404, 409, 413, 422, 503),
}
_CREATED_JOB: dict[int | str, dict[str, Any]] = {
    201: {"model": JobModel, "description": "The job (its URL in Location)"},
    **_errors(401, 403, 404, 409, 413, 422, 503),
}
_CREATED_STEP: dict[int | str, dict[str, Any]] = {
    201: {"model": StepModel, "description": "The step (its URL in Location)"},
    **_errors(401, 403, 404, 409, 413, 422, 503),
}
AnyId = Annotated[str, Path(description="The job's internal UUID or its external job ID")]


def _producer(request: Request) -> ProducerWrites:
    producer: ProducerWrites = request.app.state.producer
    return producer


def _job_id(request: Request, any_id: str) -> str:
    resolver: Resolver = request.app.state.resolver
    return resolver.job_id(any_id)


def _created(body: dict[str, Any], location: str) -> Response:
    return Response(
        dumps(body),
        status_code=201,
        media_type="application/json",
        headers={"Location": location},
    )


@router.post("/jobs", status_code=201, response_class=Response, responses=_CREATED_JOB)
def start_job(body: JobCreate, request: Request) -> Response:
    """Start a job (``start: false``: pending until its first step). 409 when a running
    job holds ``external_job_id`` and the server's policy is ``reject``."""
    parent_id: str | None = None
    if body.parent is not None:
        try:
            parent_id = _job_id(request, body.parent)
        except JobNotFound:
            raise InvalidRequest(["body", "parent"], "no job is known by this ID") from None
    job = _producer(request).start_job(
        body.job_type,
        body.operation,
        external_job_id=body.external_job_id,
        context_id=body.context_id,
        owner=body.owner,
        parent_job_id=parent_id,
        planned=[PlannedStep(step.name, step.weight) for step in body.planned()],
        metadata=body.metadata,
        start=body.start,
    )
    return _created(job_to_dict(job), "/api/v1/jobs/" + quote(job.id, safe=""))


@router.post(
    "/jobs/{any_id:path}/steps", status_code=201, response_class=Response, responses=_CREATED_STEP
)
def start_step(any_id: AnyId, body: StepCreate, request: Request) -> Response:
    """Start the job's next step; its ``seq`` (1, 2, ...) names it in the finish call."""
    job_id = _job_id(request, any_id)
    step = _producer(request).start_step(
        job_id, body.name, weight=body.weight, allow_failure=body.allow_failure
    )
    location = f"/api/v1/jobs/{quote(job_id, safe='')}/steps/{step.seq}"
    return _created(step_to_dict(step), location)


@router.patch("/jobs/{any_id:path}/steps/{seq}", response_class=Response, responses=_STEP)
def finish_step(
    any_id: AnyId,
    seq: Annotated[int, Path(ge=1, le=2**31 - 1)],
    body: StepFinish,
    request: Request,
) -> Response:
    """End a running step as completed, failed or skipped; progress follows the plan."""
    job_id = _job_id(request, any_id)
    try:
        step = _producer(request).finish_step(
            job_id, seq, StepStatus(body.status), body.error_message
        )
    except JobNotFound:
        # The job was just resolved, so what is missing is the step.
        body_json = {"error": "step_not_found", "id": job_id, "seq": seq}
        return json_response(body_json, 404)
    return json_response(step_to_dict(step))


@router.post("/jobs/{any_id:path}/heartbeat", response_class=Response, responses=_JOB)
def heartbeat(any_id: AnyId, request: Request) -> Response:
    """Keep a running job from being reaped; the answer carries ``cancel_requested``."""
    return json_response(job_to_dict(_producer(request).heartbeat(_job_id(request, any_id))))


@router.post(
    "/jobs/{any_id:path}/cancel",
    status_code=202,
    response_class=Response,
    responses={202: {"model": JobModel}, **_errors(401, 403, 404, 409, 503)},
)
def request_cancel(any_id: AnyId, request: Request) -> Response:
    """Ask the job to stop (cooperative): its producer sees ``cancel_requested: true`` in
    heartbeat answers (or ``job.cancel_requested`` in Python) and ends it as cancelled."""
    job = _producer(request).request_cancel(_job_id(request, any_id))
    return json_response(job_to_dict(job), 202)


# Declared after the /steps/{seq} route: ``{any_id:path}`` would otherwise take the suffix.
@router.patch("/jobs/{any_id:path}", response_class=Response, responses=_JOB)
def update_job(any_id: AnyId, body: JobUpdate, request: Request) -> Response:
    """Set progress (a lower percent is ignored) and/or end the job; a job with a failed
    required step asked to complete ends failed, as in process."""
    job = _producer(request).update_job(
        _job_id(request, any_id),
        percent=None if body.percent is None else int(body.percent),
        status=None if body.status is None else JobStatus(body.status),
        error_message=body.error_message,
    )
    return json_response(job_to_dict(job))


@router.post(
    "/events",
    response_class=Response,
    responses={
        200: {
            "model": IngestResult,
            "description": '{"stored": n, "duplicate": false}, or {"stored": 0, '
            '"duplicate": true} when the batch key was already stored',
        },
        **_errors(401, 403, 413, 422, 503),
    },
)
def ingest_events(body: EventBatch, request: Request) -> Response:
    """Store a batch of log events atomically, once per ``batch_key``: a batch sent again
    (after a timeout, say) is answered ``duplicate: true`` and not stored twice."""
    metrics: AppMetrics = request.app.state.metrics
    try:
        stored = _producer(request).ingest_events(body.batch_key, body.events)
    except (JobNotFound, InvalidTransition) as exc:
        metrics.count_batch("http", "refused", len(body.events))
        raise InvalidRequest(["body", "events"], str(exc)) from None
    except StorageError:
        metrics.count_batch("http", "failed", len(body.events))
        raise
    metrics.count_batch("http", "stored" if stored else "duplicate", len(body.events))
    return json_response({"stored": len(body.events) if stored else 0, "duplicate": not stored})
