"""The dashboard's pages: the live jobs list and one job's live page.

``build_router()`` returns the routes; the API's app factory includes them. Handlers read
``request.app.state.store``, ``resolver``, ``guard`` and ``sessions``. The pages are
rendered complete on the server (they read well without JavaScript); small scripts under
``static/`` then keep them live from the JSON API and its Server-Sent Events stream.

A job page takes the log API's own filters (``contains``, ``trace_id``, ``min_level``),
so a filtered log is a link; the page's script then pages and filters through the API.
Its cancel button is there for a write session (or a server whose writes are open), and
sends the session's CSRF token (:mod:`joblog.api.sessions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from joblog.api import params
from joblog.api.auth import TokenGuard
from joblog.api.errors import InvalidRequest
from joblog.api.sessions import Session, SessionBook
from joblog.exceptions import JobNotFound, StorageError
from joblog.model import OPEN_JOB_STATUSES, JobStatus, JobSummary, LogEvent, ResolvedBy
from joblog.resolve import EventScope, Resolver
from joblog.storage.queries import JOB_SORTS, EventFilter, JobFilter
from joblog.storage.store import Store
from joblog.web.errors import failed_step_name, readable_error
from joblog.web.render import render

__all__ = ["STATIC_FILES", "build_router", "job_href", "refusal"]

#: The only files ``/static/{name}`` serves, with their media types.
STATIC_FILES = {
    "app.css": "text/css; charset=utf-8",
    "common.js": "text/javascript; charset=utf-8",
    "jobs.js": "text/javascript; charset=utf-8",
    "job.js": "text/javascript; charset=utf-8",
    "job_log.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
LIST_LIMIT = 50
#: Log events a filtered job page shows, and the script loads per older page.
LOG_PAGE = 100
MAX_QUERY_LENGTH = 255
_STATUSES = tuple(s.value for s in JobStatus if s is not JobStatus.UNKNOWN)
#: ``children``: the checkbox sends 1; absent, empty or 0 leave child jobs out.
_CHILDREN = (None, "", "0", "1")
_STATIC_DIR = Path(str(resources.files("joblog.web") / "static"))


def job_href(id_or_external: str) -> str:
    """The dashboard URL of a job (any ID works; slashes and spaces are escaped)."""
    return "/jobs/" + quote(id_or_external, safe="")


def api_href(job_id: str, suffix: str = "") -> str:
    return "/api/v1/jobs/" + quote(job_id, safe="") + suffix


def build_router() -> APIRouter:
    """The dashboard routes: ``/``, ``/jobs/{any_id}`` and ``/static/{name}``."""
    router = APIRouter(include_in_schema=False)
    router.add_api_route("/", jobs_page, methods=["GET"], response_model=None)
    router.add_api_route("/jobs/{any_id:path}", job_page, methods=["GET"], response_model=None)
    router.add_api_route("/static/{name}", static_file, methods=["GET"], response_model=None)
    return router


def _page(template: str, status_code: int = 200, **context: object) -> HTMLResponse:
    return HTMLResponse(
        render(template, **context),
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


def _problem(status_code: int, title: str, detail: str, query: str = "") -> HTMLResponse:
    return _page("problem.html", status_code, title=title, detail=detail, query=query)


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking, for the top bar: their session, or where to sign in."""

    session: Session | None
    sign_in_href: str


def viewer(request: Request) -> Viewer:
    """The request's :class:`Viewer` (one read of the sessions' table, when a cookie came)."""
    guard: TokenGuard = request.app.state.guard
    sessions: SessionBook = request.app.state.sessions
    try:
        session = sessions.of_request(request.scope)
    except StorageError:
        session = None  # the page itself will say the database is away
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    sign_in = guard.has_tokens and session is None
    return Viewer(session, "/login?next=" + quote(here, safe="") if sign_in else "")


def refusal(status: int, detail: list[dict[str, Any]], _path: str) -> Response:
    """The API's input guard answering for a page: NUL or invalid UTF-8 in its path or query."""
    if status == 404:
        return _problem(404, "Not found", "A page address cannot hold NUL or invalid UTF-8.")
    name = detail[0]["loc"][-1]
    return _problem(
        status, "Unusable search", f"{name}: a search cannot hold NUL or invalid UTF-8."
    )


def jobs_page(
    request: Request,
    status: str | None = None,
    job_type: str | None = None,
    q: str | None = None,
    owner: str | None = None,
    context: str | None = None,
    since: str | None = None,
    until: str | None = None,
    sort: str | None = None,
    children: str | None = None,
    cursor: str | None = None,
) -> Response:
    """The jobs list; ``q`` is an external ID prefix, and a full ID jumps to its job.

    Child jobs (e.g. one per volume) are left out unless ``children=1``. ``since`` /
    ``until`` bound the creation time (a time without an offset is UTC); ``cursor`` is the
    API's, so the page and its live updates show the same rows.
    """
    store: Store = request.app.state.store
    resolver: Resolver = request.app.state.resolver
    # NUL and invalid UTF-8 never get here: the API's InputGuard answers 422 for them.
    status = status or None
    job_type = _text(job_type)
    owner, context = _text(owner), _text(context)
    query = (q or "").strip()
    sort = sort or "newest"
    if status is not None and status not in _STATUSES:
        return _problem(422, "Unknown status", f"Choose one of: {', '.join(_STATUSES)}.")
    if children not in _CHILDREN:
        return _problem(422, "Unknown children value", "Use children=1 (or 0, or leave it out).")
    if sort not in JOB_SORTS:
        return _problem(422, "Unknown sort", f"Choose one of: {', '.join(JOB_SORTS)}.")
    if len(query) > MAX_QUERY_LENGTH or (job_type is not None and len(job_type) > 50):
        return _problem(422, "Search too long", "IDs have at most 255 characters.")
    if any(value is not None and len(value) > MAX_QUERY_LENGTH for value in (owner, context)):
        return _problem(422, "Search too long", "Owners and contexts have at most 255 characters.")
    with_children = children == "1"
    try:
        since_at = params.parse_datetime("since", since)
        until_at = params.parse_datetime("until", until)
        before = params.decode_job_cursor(cursor)
    except InvalidRequest as exc:
        title = "Unusable page link" if exc.status_code == 400 else "Unusable time"
        return _problem(exc.status_code, title, f"{exc.loc[-1]}: {exc.msg}.")
    try:
        if query and _is_known_id(resolver, query):
            return RedirectResponse(job_href(query), status_code=303)
        filters = JobFilter(
            status=(status,) if status else (),
            job_type=job_type,
            owner=owner,
            context_id=context,
            external_id_prefix=query or None,
            since=since_at,
            until=until_at,
            top_level=not with_children,
        )
        jobs = store.reads.list_jobs(filters, limit=LIST_LIMIT + 1, before=before, sort=sort)
        everything = store.reads.list_jobs(JobFilter(), limit=200)
    except StorageError as exc:
        return _problem(503, "The database cannot be reached", str(exc))
    more = len(jobs) > LIST_LIMIT
    jobs = jobs[:LIST_LIMIT]
    next_cursor = params.encode_job_cursor(jobs[-1].created_at, jobs[-1].id) if more else None
    job_types = sorted({j.job_type for j in everything} | ({job_type} if job_type else set()))
    # The page's own search, as the form sends it; paging links change only the cursor.
    search = {
        "q": query,
        "status": status or "",
        "job_type": job_type or "",
        "owner": owner or "",
        "context": context or "",
        "since": since or "",
        "until": until or "",
        "sort": "" if sort == "newest" else sort,
        "children": "1" if with_children else "",
    }
    kept = {name: value for name, value in search.items() if value}
    api_query = {
        "limit": str(LIST_LIMIT),
        "top_level": "false" if with_children else "true",
        "sort": sort,
        **{name: value for name, value in kept.items() if name not in ("q", "children")},
    }
    if query:
        api_query["external_id_prefix"] = query
    if "context" in api_query:
        api_query["context_id"] = api_query.pop("context")
    if cursor:
        api_query["cursor"] = cursor
    return _page(
        "jobs.html",
        viewer=viewer(request),
        jobs=jobs,
        statuses=_STATUSES,
        job_types=job_types,
        sorts=JOB_SORTS,
        status=status or "",
        job_type=job_type or "",
        query=query,
        owner=owner or "",
        context=context or "",
        since=_local_input(since_at),
        until=_local_input(until_at),
        sort=sort,
        with_children=with_children,
        filtered=bool(kept),
        paged=bool(cursor),
        first_href="/" + ("?" + urlencode(kept) if kept else ""),
        next_href="/?" + urlencode({**kept, "cursor": next_cursor}) if next_cursor else "",
        api_url="/api/v1/jobs?" + urlencode(api_query),
        job_href=job_href,
        limit=LIST_LIMIT,
    )


def _text(value: str | None) -> str | None:
    return (value or "").strip() or None


def _local_input(moment: datetime | None) -> str:
    """A UTC datetime as a ``datetime-local`` input's value."""
    return moment.strftime("%Y-%m-%dT%H:%M") if moment is not None else ""


def _is_known_id(resolver: Resolver, any_id: str) -> bool:
    """True when some tier knows ``any_id`` (cheaper than building a summary)."""
    try:
        resolver.locate(any_id)
    except JobNotFound:
        return False
    return True


def job_page(
    request: Request,
    any_id: str,
    contains: str | None = None,
    trace_id: str | None = None,
    min_level: str | None = None,
) -> Response:
    """One job, found by internal UUID, external ID or legacy failover ID; its log
    filtered as the log API filters it."""
    resolver: Resolver = request.app.state.resolver
    try:
        log_filter = EventFilter(
            min_level=params.parse_level(min_level),
            contains=params.parse_text("contains", contains),
            trace_id=params.parse_trace_id(["query", "trace_id"], trace_id),
        )
    except InvalidRequest as exc:
        return _problem(422, "Unusable log search", f"{exc.loc[-1]}: {exc.msg}.")
    try:
        located = resolver.locate(any_id, with_job=True)
        summary = resolver.summary(located)
        events, more_older = _log_page(resolver, located.scope, log_filter, summary)
    except JobNotFound:
        return _page("not_found.html", 404, any_id=any_id[:MAX_QUERY_LENGTH])
    except StorageError as exc:
        return _problem(503, "The database cannot be reached", str(exc))
    context = job_context(summary, any_id)
    seen = viewer(request)
    session = seen.session
    guard: TokenGuard = request.app.state.guard
    writes = bool(request.app.state.settings.write_api)
    # A job row that is still open: not a legacy row, not events without a job row.
    cancellable = writes and not context["legacy"] and summary.job.status in OPEN_JOB_STATUSES
    can_cancel = guard.writes_open or (session is not None and session.role == "write")
    here = job_href(any_id)
    return _page(
        "job.html",
        200,
        **context,
        viewer=seen,
        events=events,
        more_older=more_older,
        log_page=LOG_PAGE,
        log_contains=log_filter.contains or "",
        log_trace=log_filter.trace_id or "",
        log_level=log_filter.min_level.value if log_filter.min_level else "DEBUG",
        download_url=api_href(summary.job.id, "/logs?format=ndjson"),
        cancellable=cancellable,
        can_cancel=cancellable and can_cancel,
        cancel_sign_in=(
            "/login?next=" + quote(here, safe="")
            if cancellable and not can_cancel and guard.session_writes
            else ""
        ),
        csrf_token=session.csrf_token if session is not None else "",
        cancel_url=api_href(summary.job.id, "/cancel"),
    )


def _log_page(
    resolver: Resolver, scope: EventScope, filters: EventFilter, summary: JobSummary
) -> tuple[list[LogEvent], bool]:
    """The newest events the page shows, and whether older ones may exist."""
    if filters == EventFilter():
        recent = summary.recent_events
        return recent, len(recent) >= resolver.recent_events
    if scope.empty:
        return [], False
    found = resolver.store.reads.list_events(
        job_id=scope.job_id,
        external_job_id=scope.external_job_id,
        filters=filters,
        newest_first=True,
        limit=LOG_PAGE + 1,
    )
    more = len(found) > LOG_PAGE
    return (found[1:] if more else found), more


def job_context(summary: JobSummary, any_id: str) -> dict[str, object]:
    """What job.html needs, beyond the summary itself."""
    job = summary.job
    step = failed_step_name(summary.steps)
    failed = job.status is JobStatus.FAILED
    return {
        "s": summary,
        "job": job,
        "any_id": any_id,
        "title": job.external_job_id or job.id,
        "legacy": summary.resolved_by is ResolvedBy.FAILOVER_JOBS,
        "failed": failed,
        "readable": readable_error(job.error_message, step) if failed else "",
        "summary_url": api_href(job.id),
        "stream_url": api_href(job.id, "/stream"),
        "logs_url": api_href(job.id, "/logs"),
        "job_href": job_href,
    }


def static_file(name: str) -> Response:
    """One of the dashboard's own static files (an allow-list, so no path tricks)."""
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        return _problem(404, "Not found", "There is no such file.")
    return FileResponse(
        _STATIC_DIR / name, media_type=media_type, headers={"Cache-Control": "no-cache"}
    )
