"""Examples for the OpenAPI document, written once and checked against the schemas.

:func:`add_examples` puts them into the generated document (FastAPI drops every null
from it, so examples declared on the models would lose their null fields): each model's
example on its schema (:data:`SCHEMA_EXAMPLES`, by schema name), so every body and answer
that uses a model shows one in ``/docs``; the error body of each status on the answers
(one ``ErrorBody`` model answers 400 to 503, each with its own ``error`` code); and the
answers that are not JSON (the event stream, NDJSON logs, the metrics text). The values
were taken from a real failover job's answers; a test checks each against its schema.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from fastapi import FastAPI

__all__ = [
    "ERROR_EXAMPLES",
    "EVENT",
    "JOB",
    "MEDIA_EXAMPLES",
    "SCHEMA_EXAMPLES",
    "STEP",
    "SUMMARY",
    "add_examples",
    "install_examples",
]

JOB_ID = "54c961b7-ddca-4293-af3f-6dc3eb99a95e"
EXTERNAL_ID = "unified-live-failover-pgtest2-1758553933"

JOB: dict[str, Any] = {
    "id": JOB_ID,
    "parent_job_id": None,
    "job_type": "failover",
    "operation": "unified-live-failover",
    "status": "running",
    "external_job_id": EXTERNAL_ID,
    "context_id": "vm-pgtest2",
    "owner": "alice",
    "percent_complete": 33,
    "metadata": {"vm_name": "pgtest2"},
    "error_message": None,
    "created_at": "2025-09-22T14:32:13.459374Z",
    "started_at": "2025-09-22T14:32:13.459374Z",
    "completed_at": None,
    "updated_at": "2025-09-22T14:32:41.471401Z",
    "heartbeat_at": "2025-09-22T14:32:41.459374Z",
    "cancel_requested": False,
    "planned_steps": [
        {"name": "validation", "weight": 1.0},
        {"name": "snapshot", "weight": 1.0},
        {"name": "volume-switch", "weight": 1.0},
    ],
}
STEP: dict[str, Any] = {
    "id": "3767726299355728977",
    "job_id": JOB_ID,
    "seq": 2,
    "name": "snapshot",
    "status": "running",
    "started_at": "2025-09-22T14:32:21.471428Z",
    "completed_at": None,
    "duration_seconds": None,
    "error_message": None,
    "weight": 1.0,
    "allow_failure": False,
}
EVENT: dict[str, Any] = {
    "id": 4711,
    "job_id": JOB_ID,
    "step_id": "3767726299355728977",
    "external_job_id": EXTERNAL_ID,
    "level": "INFO",
    "message": "snapshot of pgtest2 started",
    "attrs": {"logger": "failover", "vm": "pgtest2"},
    "ts": "2025-09-22T14:32:21.501114Z",
    "trace_id": None,
    "span_id": None,
}
SUMMARY: dict[str, Any] = {
    "resolved_by": "external_job_id",
    "job": JOB,
    "steps": [
        {
            **STEP,
            "id": "3767726299354954725",
            "seq": 1,
            "name": "validation",
            "status": "completed",
            "started_at": "2025-09-22T14:32:13.471262Z",
            "completed_at": "2025-09-22T14:32:21.471356Z",
            "duration_seconds": 8.0,
        },
        STEP,
        {
            **STEP,
            "id": None,
            "seq": None,
            "name": "volume-switch",
            "status": "pending",
            "started_at": None,
        },
    ],
    "progress": {
        "percent": 33,
        "planned_steps": 3,
        "completed_steps": 1,
        "failed_steps": 0,
        "running_steps": 1,
        "current_step": "snapshot",
    },
    "elapsed_seconds": 28.0,
    "eta_seconds": 56.0,
    "recent_events": [EVENT],
    "children": [],
    "legacy": None,
}
JOB_PAGE: dict[str, Any] = {"jobs": [JOB], "next_cursor": "MjAyNS0wOS0yMlQxNDozMjoxMy40NTkzNzQ"}
EVENT_PAGE: dict[str, Any] = {"events": [EVENT], "next_cursor": None, "next_before_id": None}
HEALTH_OK: dict[str, Any] = {"status": "ok", "database": "ok"}
HEALTH_DOWN: dict[str, Any] = {
    "status": "error",
    "database": "unavailable",
    "detail": "no answer within 2s",
}

# -- request bodies ---------------------------------------------------------------------------

JOB_CREATE: dict[str, Any] = {
    "job_type": "failover",
    "operation": "unified-live-failover",
    "external_job_id": EXTERNAL_ID,
    "context_id": "vm-pgtest2",
    "owner": "alice",
    "steps": ["validation", {"name": "snapshot", "weight": 3}, "volume-switch"],
    "metadata": {"vm_name": "pgtest2"},
}
STEP_CREATE: dict[str, Any] = {"name": "snapshot", "weight": 3, "allow_failure": False}
STEP_FINISH: dict[str, Any] = {"status": "failed", "error_message": "snapshot timed out"}
JOB_UPDATE: dict[str, Any] = {"percent": 45}
EVENT_IN: dict[str, Any] = {
    "external_job_id": EXTERNAL_ID,
    "step_seq": 2,
    "level": "INFO",
    "message": "snapshot of pgtest2 started",
    "attrs": {"vm": "pgtest2"},
    "ts": "2025-09-22T14:32:21.501114Z",
}
EVENT_BATCH: dict[str, Any] = {
    "batch_key": "7d4b2c4e-1f7a-4a51-9a8e-3c2b1d0e9f87",
    "events": [EVENT_IN],
}

# -- what no model says -----------------------------------------------------------------------

#: The error body of each status, as the API answers it (see :mod:`joblog.api.errors`).
ERROR_EXAMPLES: dict[str, dict[str, Any]] = {
    "400": {
        "error": "invalid_request",
        "detail": [{"loc": ["query", "cursor"], "msg": "malformed cursor", "type": "value_error"}],
    },
    "401": {"error": "unauthorized", "detail": "missing bearer token"},
    "403": {"error": "forbidden", "detail": "a write token is required"},
    "404": {"error": "job_not_found", "id": EXTERNAL_ID},
    "405": {"error": "method_not_allowed", "detail": "Method Not Allowed"},
    "409": {"error": "invalid_transition", "detail": "job is already failed"},
    "413": {"error": "payload_too_large", "max_bytes": 1048576},
    "422": {
        "error": "invalid_request",
        "detail": [
            {"loc": ["query", "limit"], "msg": "must be at most 500", "type": "value_error"}
        ],
    },
    "503": {"error": "database_unavailable"},
}


def _compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def _sse(event: str, data: Any, event_id: str) -> str:
    return f"event: {event}\nid: {event_id}\ndata: {_compact(data)}\n\n"


#: Examples of the answers that are not JSON, by media type.
MEDIA_EXAMPLES: dict[str, str] = {
    "text/event-stream": "retry: 2000\n\n"
    + _sse("snapshot", SUMMARY, "4711.a41c")
    + _sse("log", {**EVENT, "id": 4712, "message": "snapshot 60% done"}, "4712.a41c")
    + _sse("step", {**STEP, "status": "completed", "duration_seconds": 31.5}, "4712.b07e")
    + _sse("end", {"status": "completed", "error_message": None}, "4712.b07e"),
    "application/x-ndjson": _compact(EVENT)
    + "\n"
    + _compact({**EVENT, "id": 4712, "level": "WARN", "message": "snapshot slow"})
    + "\n",
    "text/plain": (
        "# HELP joblog_http_requests_total HTTP requests answered, by route template.\n"
        "# TYPE joblog_http_requests_total counter\n"
        'joblog_http_requests_total{method="GET",route="/api/v1/jobs/{any_id}",status="200"}'
        " 1042\n"
    ),
    "application/openmetrics-text": (
        "# HELP joblog_streams_open Live streams open in this process.\n"
        "# TYPE joblog_streams_open gauge\n"
        "joblog_streams_open 3.0\n"
        "# EOF\n"
    ),
}
#: Each model's examples, by its schema's name in ``components.schemas``.
SCHEMA_EXAMPLES: dict[str, list[Any]] = {
    "JobModel": [JOB],
    "PlannedStepModel": [JOB["planned_steps"][0]],
    "StepModel": [STEP],
    "EventModel": [EVENT],
    "ProgressModel": [SUMMARY["progress"]],
    "SummaryModel": [SUMMARY],
    "JobPage": [JOB_PAGE],
    "EventPage": [EVENT_PAGE],
    "ErrorBody": [ERROR_EXAMPLES["404"]],
    "HealthBody": [HEALTH_OK, HEALTH_DOWN],
    "IngestResult": [{"stored": 1, "duplicate": False}, {"stored": 0, "duplicate": True}],
    "FailoverNotFound": [
        {
            "success": False,
            "message": "Job not found",
            "error": f"failover job not found: {EXTERNAL_ID}",
        }
    ],
    "JobCreate": [JOB_CREATE],
    "PlannedStepIn": [{"name": "snapshot", "weight": 3}],
    "StepCreate": [STEP_CREATE],
    "StepFinish": [STEP_FINISH],
    "JobUpdate": [JOB_UPDATE, {"status": "failed", "error_message": "volume switch failed"}],
    "EventIn": [EVENT_IN],
    "EventBatch": [EVENT_BATCH],
}
_ERROR_SCHEMA = "#/components/schemas/ErrorBody"


def add_examples(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the examples above wherever it has none yet (examples a route
    declares are kept)."""
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        if name in SCHEMA_EXAMPLES and "examples" not in schema:
            schema["examples"] = copy.deepcopy(SCHEMA_EXAMPLES[name])
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status, answer in operation.get("responses", {}).items():
                for media_type, content in answer.get("content", {}).items():
                    if "example" in content or "examples" in content:
                        continue
                    ref = content.get("schema", {}).get("$ref")
                    if ref == _ERROR_SCHEMA and status in ERROR_EXAMPLES:
                        content["example"] = copy.deepcopy(ERROR_EXAMPLES[status])
                    elif status == "422" and "HTTPValidationError" in str(ref):
                        content["example"] = copy.deepcopy(ERROR_EXAMPLES["422"])
                    elif media_type in MEDIA_EXAMPLES:
                        content["example"] = MEDIA_EXAMPLES[media_type]
    return document


def install_examples(app: FastAPI) -> None:
    """Make ``app.openapi()`` return its document with :func:`add_examples` applied."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_examples(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
