"""Operational routes: ``/healthz`` for load balancers and ``/metrics`` for Prometheus."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response

from joblog.api import examples
from joblog.api.metrics import AppMetrics
from joblog.api.routes_jobs import json_response
from joblog.api.schemas import HealthBody
from joblog.api.settings import ApiSettings
from joblog.exceptions import StorageError
from joblog.storage.store import Store

__all__ = ["router"]

router = APIRouter(tags=["operations"])

JSON = "application/json"


@router.get(
    "/healthz",
    response_class=Response,
    responses={
        200: {"model": HealthBody, "content": {JSON: {"example": examples.HEALTH_OK}}},
        503: {"model": HealthBody, "content": {JSON: {"example": examples.HEALTH_DOWN}}},
    },
)
async def healthz(request: Request) -> Response:
    """200 when the database answers ``SELECT 1`` within the health timeout, else 503."""
    store: Store = request.app.state.store
    settings: ApiSettings = request.app.state.settings
    detail: str | None = None
    with anyio.move_on_after(settings.health_timeout) as scope:
        try:
            # Abandoned on timeout: a hung connect must not hold the answer back.
            await anyio.to_thread.run_sync(store.reads.ping, abandon_on_cancel=True)
        except StorageError as exc:
            detail = str(exc)
    if scope.cancelled_caught:
        detail = f"no answer within {settings.health_timeout:g}s"
    if detail is not None:
        body = {"status": "error", "database": "unavailable", "detail": detail}
        return json_response(body, status_code=503)
    return json_response({"status": "ok", "database": "ok"})


@router.get(
    "/metrics",
    # Plain Response: errors stay documented as JSON; the text format is declared for 200.
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "application/openmetrics-text": {"schema": {"type": "string"}},
            },
        }
    },
)
def metrics(request: Request) -> Response:
    """Requests and latencies per route, ingest counters, jobs by type and status (from
    the database, cached a few seconds), open streams, pool use, housekeeping runs, the
    process's own metrics, and an attached tracker's writer counters. OpenMetrics when
    the ``Accept`` header asks for it."""
    app_metrics: AppMetrics = request.app.state.metrics
    body, content_type = app_metrics.render(request.headers.get("accept"))
    return Response(body, media_type=content_type)
