"""``POST /v1/logs``: an OTLP/HTTP logs receiver, so any OpenTelemetry SDK reports to joblog.

Point a standard OTLP/HTTP log exporter at ``http://<joblog>/v1/logs`` with the header
``Authorization: Bearer <write token>`` (the access-control middleware guards the path
like every write). Bodies are protobuf (``application/x-protobuf``) or OTLP JSON
(``application/json``), plain or gzip/deflate; :mod:`joblog.api.otlp` decodes them and
maps each log record onto an event, which is stored through the ingest path of
``POST /api/v1/events`` (:meth:`ProducerWrites.ingest_events`: its batch keys, its
resolver, its job rules).

Exactly once: the batch key of the records is derived from the (decompressed) body, so
an exporter that sends a request again after a timeout stores nothing twice. Records are
stored in transactions of :data:`CHUNK` events, each under its own key (``otlp:<sha256 of
the body>:<chunk>``): a retry after a failure in the middle stores only what is missing.

Answers, as the OTLP specification asks: 200 with an ``ExportLogsServiceResponse`` in
the request's encoding (``partial_success`` counts the records refused, with their
reasons: a ``joblog.job_id`` no job has, a step the job lacks, a ``joblog.*`` value that
cannot be stored); 400 for a body that does not decode, 415 for another content type or
encoding, 413 for a body over the limit (compressed or not), 401/403 without a write
token, 503 with ``Retry-After`` while the database is away (exporters retry those).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from joblog.api import otlp
from joblog.api.auth import require_write
from joblog.api.metrics import AppMetrics
from joblog.api.schemas import ErrorBody
from joblog.api.settings import ApiSettings
from joblog.exceptions import InvalidTransition, JobNotFound, StorageUnavailable
from joblog.resolve import Resolver
from joblog.storage.producer import IncomingEvent, ProducerWrites
from joblog.storage.store import Store

__all__ = ["CHUNK", "PATH", "router"]

PATH = "/v1/logs"
#: Events stored per transaction (and per batch key): the ingest API's own batch limit.
CHUNK = 1000
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
#: Seconds an exporter is asked to wait before retrying while the database is away.
RETRY_AFTER = "5"

router = APIRouter(tags=["otlp"], dependencies=[Depends(require_write)])

_STATUS_SCHEMA = {
    "type": "object",
    "description": "google.rpc.Status",
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
    "examples": [{"code": 3, "message": "not an OTLP logs request: truncated protobuf"}],
}
#: OTLP's binary encoding: an example can only say what the bytes are.
_BINARY = {
    "schema": {"type": "string", "format": "binary"},
    "example": "<binary opentelemetry.proto message>",
}
_EXAMPLE_REQUEST = {
    "resourceLogs": [
        {
            "resource": {
                "attributes": [
                    {"key": "service.name", "value": {"stringValue": "failover-service"}},
                    {
                        "key": "joblog.external_job_id",
                        "value": {"stringValue": "unified-live-failover-vm42-1758553933"},
                    },
                ]
            },
            "scopeLogs": [
                {
                    "scope": {"name": "failover"},
                    "logRecords": [
                        {
                            "timeUnixNano": "1769860800123456789",
                            "severityNumber": 9,
                            "severityText": "INFO",
                            "body": {"stringValue": "snapshot of vm42 started"},
                            "attributes": [{"key": "joblog.step", "value": {"intValue": "1"}}],
                            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
                            "spanId": "00f067aa0ba902b7",
                        }
                    ],
                }
            ],
        }
    ]
}
_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "An ExportLogsServiceRequest (OTLP), optionally gzip-encoded",
        "content": {
            PROTOBUF: _BINARY,
            JSON: {"schema": {"type": "object"}, "example": _EXAMPLE_REQUEST},
        },
    }
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "ExportLogsServiceResponse; partialSuccess counts refused records",
        "content": {
            PROTOBUF: _BINARY,
            JSON: {
                "schema": {"type": "object"},
                "example": {
                    "partialSuccess": {
                        "rejectedLogRecords": "1",
                        "errorMessage": "1 log records rejected: no job 'x' (1)",
                    }
                },
            },
        },
    },
    400: {
        "description": "The body is not an OTLP logs request",
        "content": {PROTOBUF: _BINARY, JSON: {"schema": _STATUS_SCHEMA}},
    },
    401: {"model": ErrorBody, "description": "No or malformed Authorization header"},
    403: {"model": ErrorBody, "description": "Not a write token"},
    413: {"model": ErrorBody, "description": "Body (or its decompressed size) too large"},
    415: {
        "description": "Not application/x-protobuf or application/json, or an unknown "
        "Content-Encoding",
        "content": {JSON: {"schema": _STATUS_SCHEMA}},
    },
    503: {
        "description": "Database unavailable: retry after Retry-After seconds",
        "content": {PROTOBUF: _BINARY, JSON: {"schema": _STATUS_SCHEMA}},
    },
}


def _encoding(content_type: str | None) -> otlp.Encoding | None:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in (PROTOBUF, "application/protobuf"):
        return "protobuf"
    if media == JSON:
        return "json"
    return None


def _status(status: int, code: int, message: str, encoding: otlp.Encoding) -> Response:
    media = PROTOBUF if encoding == "protobuf" else JSON
    headers = {"Retry-After": RETRY_AFTER} if status == 503 else None
    body = otlp.encode_status(code, message, encoding)
    return Response(body, status_code=status, media_type=media, headers=headers)


@router.post(PATH, response_class=Response, responses=_RESPONSES, openapi_extra=_OPENAPI)
async def export_logs(request: Request) -> Response:
    """Receive OTLP log records (any OpenTelemetry SDK's OTLP/HTTP exporter); records
    carrying ``joblog.external_job_id``, ``joblog.job_id`` or ``joblog.step`` (on the
    record or its resource) are attached to that job and step."""
    encoding = _encoding(request.headers.get("content-type"))
    if encoding is None:
        message = f"send {PROTOBUF} or {JSON}"
        return _status(415, otlp.INVALID_ARGUMENT, message, "json")
    coding = request.headers.get("content-encoding")
    body = await request.body()
    settings: ApiSettings = request.app.state.settings
    metrics: AppMetrics = request.app.state.metrics
    try:
        rejected = await run_in_threadpool(
            _receive, request, body, coding, encoding, settings.max_body_bytes, metrics
        )
    except otlp.UnsupportedEncoding as error:
        metrics.count_batch("otlp", "refused", 0)
        return _status(415, otlp.INVALID_ARGUMENT, str(error), encoding)
    except otlp.BodyTooLarge:
        metrics.count_batch("otlp", "refused", 0)
        body_json = {"error": "payload_too_large", "max_bytes": settings.max_body_bytes}
        return JSONResponse(body_json, status_code=413, headers={"Connection": "close"})
    except otlp.Undecodable as error:
        metrics.count_batch("otlp", "refused", 0)
        return _status(400, otlp.INVALID_ARGUMENT, str(error), encoding)
    except StorageUnavailable:
        return _status(503, otlp.UNAVAILABLE, "database unavailable: retry later", encoding)
    media = PROTOBUF if encoding == "protobuf" else JSON
    return Response(otlp.encode_response(rejected, encoding), media_type=media)


def _receive(
    request: Request,
    body: bytes,
    coding: str | None,
    encoding: otlp.Encoding,
    limit: int,
    metrics: AppMetrics,
) -> list[str]:
    """Decode, map and store; the reasons of the records refused."""
    data = otlp.decompress(body, coding, limit)
    mapped = otlp.map_records(otlp.decode(data, encoding), datetime.now(UTC))
    digest = hashlib.sha256(encoding.encode() + b"\n" + data).hexdigest()
    state = request.app.state
    writes = _Chunks(state.producer, state.resolver, state.store, metrics)
    for index in range(0, len(mapped.events), CHUNK):
        chunk = mapped.events[index : index + CHUNK]
        mapped.reject(writes.store_chunk(f"otlp:{digest}:{index // CHUNK}", chunk))
    metrics.count_rejected("otlp", len(mapped.rejected))
    return mapped.rejected


class _Chunks:
    """Stores chunks through the ingest path; on a refusal, finds the records to blame."""

    def __init__(
        self, producer: ProducerWrites, resolver: Resolver, store: Store, metrics: AppMetrics
    ) -> None:
        self.producer = producer
        self.resolver = resolver
        self.store = store
        self.metrics = metrics
        self._jobs: dict[str, bool] = {}
        self._attached: dict[str, str | None] = {}
        self._steps: dict[str, set[int]] = {}

    def store_chunk(self, key: str, events: Sequence[IncomingEvent]) -> list[str]:
        """Store ``events`` once under ``key``; the reasons of those refused."""
        try:
            self._ingest(key, events)
            return []
        except (JobNotFound, InvalidTransition):
            pass
        # Some record names a job or step that is not there: store the others under the
        # same key, so that a retry of the request still stores each record at most once.
        kept: list[IncomingEvent] = []
        reasons: list[str] = []
        for event in events:
            reason = self._fault(event)
            if reason is None:
                kept.append(event)
            else:
                reasons.append(reason)
        if kept:
            try:
                self._ingest(key, kept)
            except (JobNotFound, InvalidTransition) as error:  # changed meanwhile
                reasons += [str(error)] * len(kept)
        return reasons

    def _ingest(self, key: str, events: Sequence[IncomingEvent]) -> None:
        try:
            stored = self.producer.ingest_events(key, events)
        except StorageUnavailable:
            self.metrics.count_batch("otlp", "failed", len(events))
            raise
        self.metrics.count_batch("otlp", "stored" if stored else "duplicate", len(events))

    def _fault(self, event: IncomingEvent) -> str | None:
        """Why the ingest path refuses ``event``, from the read path (the same resolver)."""
        job_id = event.job_id
        if job_id is None and event.external_job_id is not None:
            if event.external_job_id not in self._attached:
                self._attached[event.external_job_id] = self.resolver.attach(event.external_job_id)
            job_id = self._attached[event.external_job_id]
        if job_id is not None:
            if job_id not in self._jobs:
                self._jobs[job_id] = self.store.reads.get_job(job_id) is not None
            if not self._jobs[job_id]:
                return f"no job {job_id!r}"
        if event.step_seq is None:
            return None
        if job_id is None:
            return f"no job holds external ID {event.external_job_id!r}, so it has no steps"
        if job_id not in self._steps:
            steps = self.store.reads.steps_of(job_id)
            self._steps[job_id] = {step.seq for step in steps if step.seq is not None}
        if event.step_seq not in self._steps[job_id]:
            return f"job {job_id} has no step {event.step_seq}"
        return None
