"""The read-side JSON routes under /api/v1: a job by any ID, the job list, a job's logs.

IDs in paths are plain strings and may hold slashes (``{any_id:path}``); an ID ending in
``/logs`` or ``/stream`` therefore reaches the suffix route, never the status route. An ID
longer than 255 characters is unknown: 404 ``job_not_found``; one holding NUL or invalid
UTF-8 never gets here (:class:`~joblog.api.errors.InputGuard` answers 404).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from joblog.api import params, state
from joblog.api.conditional import conditional_summary, validated
from joblog.api.errors import InvalidRequest
from joblog.api.lean import LeanRoute
from joblog.api.schemas import ErrorBody, EventPage, JobPage, SummaryModel
from joblog.api.serialize import dumps, event_to_dict, job_to_dict, summary_to_dict
from joblog.model import JobSummary
from joblog.resolve import EventScope, Resolver
from joblog.storage.queries import EventFilter, JobFilter
from joblog.storage.store import Store

__all__ = [
    "attachment",
    "events_response",
    "json_response",
    "router",
    "status_response",
    "status_router",
]

router = APIRouter(prefix="/api/v1", tags=["jobs"])
#: The status route alone, included after ``router`` (its ``{any_id:path}`` would swallow
#: the /logs route), lean: every GUI poll lands here.
status_router = APIRouter(prefix="/api/v1", tags=["jobs"], route_class=LeanRoute)

JSON = "application/json"
NDJSON = "application/x-ndjson"
NDJSON_PAGE = 1000
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}}
_BAD: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Malformed cursor"},
    422: {"model": ErrorBody, "description": "Invalid parameter"},
    503: {"model": ErrorBody, "description": "Database unavailable"},
}


def json_response(body: Any, status_code: int = 200) -> Response:
    return Response(dumps(body), status_code=status_code, media_type=JSON)


def _resolver(request: Request) -> Resolver:
    resolver: Resolver = request.app.state.resolver
    return resolver


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


# -- one job ---------------------------------------------------------------------------------

_SUMMARY_DOC: dict[int | str, dict[str, Any]] = {
    200: {"model": SummaryModel, "description": "The job, resolved from any ID"},
    **_NOT_FOUND,
    503: _BAD[503],
}


async def status_response(request: Request, any_id: str) -> Response:
    """The resolved summary as JSON (the hot path of every GUI poll), with its ETag:
    304 when ``If-None-Match`` names it (see :mod:`joblog.api.conditional`)."""
    return await conditional_summary(request, any_id, "status", _summary_body)


def _summary_body(summary: JobSummary) -> bytes:
    return dumps(summary_to_dict(summary))


# -- a job's log events ----------------------------------------------------------------------


def _scope(resolver: Resolver, any_id: str) -> EventScope:
    return resolver.locate(any_id).scope


@router.get(
    "/jobs/{any_id:path}/logs",
    responses={
        200: {
            "model": EventPage,
            "content": {NDJSON: {"schema": {"type": "string", "description": "one event a line"}}},
        },
        **_NOT_FOUND,
        **_BAD,
    },
    response_class=Response,
)
async def job_logs(
    any_id: str,
    request: Request,
    min_level: Annotated[str | None, Query(description="DEBUG, INFO, WARN or ERROR")] = None,
    step_id: Annotated[int | None, Query(ge=-params.MAX_BIGINT, le=params.MAX_BIGINT)] = None,
    since: Annotated[str | None, Query(description="ISO-8601, inclusive")] = None,
    until: Annotated[str | None, Query(description="ISO-8601, exclusive")] = None,
    contains: Annotated[str | None, Query(max_length=params.MAX_TEXT)] = None,
    trace_id: Annotated[
        str | None, Query(max_length=32, description="Only this OpenTelemetry trace's events")
    ] = None,
    after_id: Annotated[int | None, Query(ge=0, le=params.MAX_BIGINT)] = None,
    before_id: Annotated[
        int | None,
        Query(ge=1, le=params.MAX_BIGINT, description="Older pages: the newest events below it"),
    ] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    format: Annotated[Literal["json", "ndjson"], Query()] = "json",
) -> Response:
    """The job's log events in order; ``format=ndjson`` streams every matching event.

    ``before_id`` pages backwards: the ``limit`` newest events below that ID (still oldest
    first), and ``next_before_id`` to pass for the page before those (null: none older).
    """
    filters = EventFilter(
        min_level=params.parse_level(min_level),
        step_ids=() if step_id is None else (step_id,),
        since=params.parse_datetime("since", since),
        until=params.parse_datetime("until", until),
        contains=params.parse_text("contains", contains),
        trace_id=params.parse_trace_id(["query", "trace_id"], trace_id),
    )
    start = params.decode_event_cursor(cursor)
    if after_id is not None:
        start = max(after_id, start or 0)
    scope = await run_in_threadpool(_scope, _resolver(request), any_id)
    return await events_response(
        _store(request),
        scope,
        filters,
        start,
        before_id,
        limit,
        ndjson=format == "ndjson",
        download_name=any_id,
    )


async def events_response(
    store: Store,
    scope: EventScope | None,
    filters: EventFilter,
    start: int | None,
    before_id: int | None,
    limit: int,
    *,
    ndjson: bool,
    download_name: str,
) -> Response:
    """A page of events (or all of them as NDJSON, saved as ``joblog-<download_name>``)
    of a job's ``scope``; with no scope, of ``filters.trace_id``'s trace, whatever their job."""
    if ndjson:
        return StreamingResponse(
            _ndjson(store, scope, filters, start, before_id),
            media_type=NDJSON,
            headers={"Content-Disposition": attachment(download_name, ".ndjson")},
        )
    if before_id is not None:
        older = await run_in_threadpool(
            _page, store, scope, filters, start, limit + 1, before_id, True
        )
        more_older = len(older) > limit
        older = older[1:] if more_older else older
        body = {
            "events": [event_to_dict(e) for e in older],
            "next_cursor": None,
            "next_before_id": older[0].id if more_older else None,
        }
        return json_response(body)
    events = await run_in_threadpool(_page, store, scope, filters, start, limit + 1)
    more = len(events) > limit
    events = events[:limit]
    next_cursor = params.encode_event_cursor(events[-1].id) if more else None
    return json_response({"events": [event_to_dict(e) for e in events], "next_cursor": next_cursor})


def attachment(any_id: str, suffix: str) -> str:
    """A Content-Disposition that saves as ``joblog-<id><suffix>``: an ASCII name with
    anything unsafe as ``_``, and the exact ID in ``filename*`` (RFC 6266)."""
    plain = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in any_id)
    exact = quote(f"joblog-{any_id}{suffix}", safe="")
    return f"attachment; filename=\"joblog-{plain[:100]}{suffix}\"; filename*=UTF-8''{exact}"


def _page(
    store: Store,
    scope: EventScope | None,
    filters: EventFilter,
    after_id: int | None,
    limit: int,
    before_id: int | None = None,
    newest_first: bool = False,
) -> list[Any]:
    if scope is not None and scope.empty:
        return []
    return store.reads.list_events(  # no scope: the trace_id filter is the scope
        job_id=scope.job_id if scope else None,
        external_job_id=scope.external_job_id if scope else None,
        filters=filters,
        after_id=after_id,
        before_id=before_id,
        newest_first=newest_first,
        limit=limit,
    )


async def _ndjson(
    store: Store,
    scope: EventScope | None,
    filters: EventFilter,
    after_id: int | None,
    before_id: int | None = None,
) -> AsyncIterator[bytes]:
    # Page through the events so that a job with millions of lines never sits in memory.
    while True:
        events = await run_in_threadpool(
            _page, store, scope, filters, after_id, NDJSON_PAGE, before_id
        )
        if not events:
            return
        yield b"".join(dumps(event_to_dict(event)) + b"\n" for event in events)
        if len(events) < NDJSON_PAGE:
            return
        after_id = events[-1].id


# -- the job list ----------------------------------------------------------------------------


@router.get("/jobs", responses={200: {"model": JobPage}, **_BAD}, response_class=Response)
def list_jobs(
    request: Request,
    status: Annotated[
        list[str], Query(description="Repeat it or separate with commas: running,failed")
    ] = [],  # noqa: B006 - FastAPI copies defaults per request
    job_type: Annotated[str | None, Query()] = None,
    context_id: Annotated[str | None, Query()] = None,
    owner: Annotated[str | None, Query()] = None,
    external_id_prefix: Annotated[str | None, Query()] = None,
    since: Annotated[str | None, Query(description="Created at or after (ISO-8601)")] = None,
    until: Annotated[str | None, Query(description="Created before (ISO-8601)")] = None,
    top_level: Annotated[bool, Query(description="Only jobs without a parent job")] = False,
    sort: Annotated[Literal["newest", "oldest"], Query(description="By creation time")] = "newest",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> Response:
    """Jobs newest (or oldest) first, filtered; follow ``next_cursor`` for the next page
    (with the same ``sort``)."""
    if len(status) > 16:
        raise InvalidRequest(["query", "status"], "at most 16 status values")
    filters = JobFilter(
        status=params.parse_statuses(status),
        job_type=params.parse_text("job_type", job_type),
        context_id=params.parse_text("context_id", context_id),
        owner=params.parse_text("owner", owner),
        external_id_prefix=params.parse_text("external_id_prefix", external_id_prefix),
        since=params.parse_datetime("since", since),
        until=params.parse_datetime("until", until),
        top_level=top_level,
    )
    before = params.decode_job_cursor(cursor)
    jobs = _store(request).reads.list_jobs(filters, limit=limit + 1, before=before, sort=sort)
    tag = state.list_tag(jobs)  # the extra row too: whether a next page exists
    if state.not_modified(request.headers.get("if-none-match"), tag):
        return validated(request, b"", tag)
    more = len(jobs) > limit
    jobs = jobs[:limit]
    next_cursor = params.encode_job_cursor(jobs[-1].created_at, jobs[-1].id) if more else None
    body = {"jobs": [job_to_dict(job) for job in jobs], "next_cursor": next_cursor}
    return validated(request, dumps(body), tag)


# In a router included last: ``{any_id:path}`` would otherwise swallow the /logs route
# (and the stream router is included before these for the same reason).
@status_router.get("/jobs/{any_id:path}", responses=_SUMMARY_DOC, response_class=Response)
async def job_status(any_id: str, request: Request) -> Response:
    """The job known by ``any_id`` (UUID, external ID, log-event ID or legacy ID)."""
    return await status_response(request, any_id)
