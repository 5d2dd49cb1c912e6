"""The dashboard's pages: the live jobs list and one job's live page.

``build_router()`` returns the routes; the API's app factory includes them. Handlers read
``request.app.state.store`` and ``request.app.state.resolver``. The pages are rendered
complete on the server (they read well without JavaScript); small scripts under
``static/`` then keep them live from the JSON API and its Server-Sent Events stream.
"""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from joblog.api import params
from joblog.api.errors import InvalidRequest
from joblog.exceptions import JobNotFound, StorageError
from joblog.model import JobStatus, JobSummary, ResolvedBy
from joblog.resolve import Resolver
from joblog.storage.queries import JOB_SORTS, JobFilter
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
    "favicon.svg": "image/svg+xml",
}
LIST_LIMIT = 50
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


def job_page(request: Request, any_id: str) -> Response:
    """One job, found by internal UUID, external ID or legacy failover ID."""
    resolver: Resolver = request.app.state.resolver
    try:
        summary = resolver.resolve(any_id)
    except JobNotFound:
        return _page("not_found.html", 404, any_id=any_id[:MAX_QUERY_LENGTH])
    except StorageError as exc:
        return _problem(503, "The database cannot be reached", str(exc))
    return _page("job.html", 200, **job_context(summary, any_id))


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
