"""``GET /api/v1/traces/{trace_id}/events``: the log events of one OpenTelemetry trace.

A trace crosses jobs and services: its events are every stored event carrying its
``trace_id`` (from a span active in a tracker's process, an ingest batch, or an OTLP log
record), whatever job they belong to, in insertion order. Paged and filtered like a
job's logs (``/api/v1/jobs/{id}/logs``, also filterable by ``trace_id``), NDJSON included.
A malformed trace ID is a 422; a well-formed one nothing carries is an empty page.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from joblog.api import params
from joblog.api.errors import InvalidRequest
from joblog.api.routes_jobs import NDJSON, events_response
from joblog.api.schemas import ErrorBody, EventPage
from joblog.storage.queries import EventFilter
from joblog.storage.store import Store

__all__ = ["EXAMPLE_TRACE_ID", "router"]

router = APIRouter(prefix="/api/v1", tags=["traces"])

EXAMPLE_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
_EXAMPLE_PAGE = {
    "events": [
        {
            "id": 1042,
            "job_id": "0b7c2f0e-5d43-4a57-9d55-1c1d7b9a3f10",
            "step_id": "7329014400000001",
            "external_job_id": "unified-live-failover-vm42-1758553933",
            "level": "INFO",
            "message": "snapshot of vm42 started",
            "attrs": {"service.name": "failover-service", "otel.scope": "failover"},
            "ts": "2026-01-31T12:00:00.123456Z",
            "trace_id": EXAMPLE_TRACE_ID,
            "span_id": "00f067aa0ba902b7",
        }
    ],
    # Not null: FastAPI drops nulls from route examples (api/examples.py adds those later).
    "next_cursor": "ZTEwNDI",
}


@router.get(
    "/traces/{trace_id}/events",
    response_class=Response,
    responses={
        200: {
            "model": EventPage,
            "content": {
                "application/json": {"example": _EXAMPLE_PAGE},
                NDJSON: {"schema": {"type": "string", "description": "one event a line"}},
            },
        },
        400: {"model": ErrorBody, "description": "Malformed cursor"},
        422: {"model": ErrorBody, "description": "Malformed trace ID or invalid parameter"},
        503: {"model": ErrorBody, "description": "Database unavailable"},
    },
)
async def trace_events(
    request: Request,
    trace_id: Annotated[
        str,
        Path(
            max_length=64,
            description="32 hex digits (W3C trace context), any case",
            examples=[EXAMPLE_TRACE_ID],
        ),
    ],
    min_level: Annotated[str | None, Query(description="DEBUG, INFO, WARN or ERROR")] = None,
    since: Annotated[str | None, Query(description="ISO-8601, inclusive")] = None,
    until: Annotated[str | None, Query(description="ISO-8601, exclusive")] = None,
    contains: Annotated[str | None, Query(max_length=params.MAX_TEXT)] = None,
    after_id: Annotated[int | None, Query(ge=0, le=params.MAX_BIGINT)] = None,
    before_id: Annotated[
        int | None,
        Query(ge=1, le=params.MAX_BIGINT, description="Older pages: the newest events below it"),
    ] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    format: Annotated[Literal["json", "ndjson"], Query()] = "json",
) -> Response:
    """Every event of the trace, across jobs, oldest first; ``format=ndjson`` streams
    them all. Pages as a job's logs do: ``next_cursor``, or ``before_id`` backwards."""
    trace = params.parse_trace_id(["path", "trace_id"], trace_id)
    if trace is None:
        raise InvalidRequest(["path", "trace_id"], "a trace ID is 32 hex digits, not all zero")
    filters = EventFilter(
        min_level=params.parse_level(min_level),
        since=params.parse_datetime("since", since),
        until=params.parse_datetime("until", until),
        contains=params.parse_text("contains", contains),
        trace_id=trace,
    )
    start = params.decode_event_cursor(cursor)
    if after_id is not None:
        start = max(after_id, start or 0)
    store: Store = request.app.state.store
    return await events_response(
        store,
        None,
        filters,
        start,
        before_id,
        limit,
        ndjson=format == "ndjson",
        download_name=f"trace-{trace}",
    )
