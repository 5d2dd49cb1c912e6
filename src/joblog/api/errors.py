"""Every error the API answers with, as JSON: ``{"error": "<code>", ...}``.

Bad input gets 400 or 422 with ``{"error": "invalid_request", "detail": [...]}``, an unknown
ID 404 ``job_not_found``, a database that cannot be reached 503 ``database_unavailable``.
Writes the job's state forbids get 409 ``invalid_transition``; a new job whose external ID a
running job holds 409 ``external_id_in_use`` (with ``running_job_id``).
Nothing a client sends should produce a 500.

:class:`InputGuard` decides, before any route runs, that a request's path and query are
text every backend can take: UTF-8 (as sent, before any lossy decoding) without NUL or
lone surrogates. A path that is not gets 404 (it names nothing), a query parameter 422.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from joblog.exceptions import (
    ExternalIdInUse,
    InvalidTransition,
    JobNotFound,
    StorageError,
    StorageUnavailable,
)

__all__ = [
    "UNUSABLE_TEXT",
    "InputGuard",
    "InvalidRequest",
    "Refusal",
    "allowed_methods",
    "error_body",
    "install_error_handlers",
    "json_refusal",
    "unusable_part",
]

log = logging.getLogger("joblog.api")


class InvalidRequest(Exception):
    """A parameter the route's own parsing refused (400 for cursors, else 422)."""

    def __init__(self, loc: Sequence[str], msg: str, *, status_code: int = 422) -> None:
        super().__init__(msg)
        self.loc = list(loc)
        self.msg = msg
        self.status_code = status_code

    def detail(self) -> list[dict[str, Any]]:
        return [{"loc": self.loc, "msg": self.msg, "type": "value_error"}]


def error_body(code: str, **fields: Any) -> dict[str, Any]:
    return {"error": code, **fields}


def _validation_detail(errors: Sequence[Any]) -> list[dict[str, Any]]:
    # pydantic's error dicts may hold exception objects in "ctx"; keep the plain parts.
    return [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "value_error")),
        }
        for error in errors
    ]


async def _on_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    body = error_body("invalid_request", detail=_validation_detail(exc.errors()))
    return JSONResponse(body, status_code=422)


async def _on_invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidRequest)
    body = error_body("invalid_request", detail=exc.detail())
    return JSONResponse(body, status_code=exc.status_code)


async def _on_not_found(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, JobNotFound)
    return JSONResponse(error_body("job_not_found", id=exc.job_id), status_code=404)


async def _on_conflict(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ExternalIdInUse):
        body = error_body(
            "external_id_in_use",
            detail=str(exc),
            external_job_id=exc.external_job_id,
            running_job_id=exc.running_job_id,
        )
    else:
        body = error_body("invalid_transition", detail=str(exc))
    return JSONResponse(body, status_code=409)


async def _on_storage(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, StorageUnavailable):
        log.warning("database unavailable: %s", exc)
        return JSONResponse(error_body("database_unavailable"), status_code=503)
    log.error("database error: %s", exc)
    return JSONResponse(error_body("database_error"), status_code=500)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request)
    return JSONResponse(
        error_body(code, detail=exc.detail), status_code=exc.status_code, headers=headers
    )


def allowed_methods(request: Request) -> str:
    """Every method some route takes at this path, for a 405's ``Allow``.

    Starlette names the methods of the first route whose path matched; with ``{any_id:path}``
    routes several match one path (``GET /api/v1/jobs/{any_id}`` takes ``x/steps`` too, where
    ``POST .../steps`` is another route), so the answer is their union.
    """
    path: str = request.scope.get("path", "")
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if route.methods and regex is not None and regex.match(path):
            methods |= route.methods
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(InvalidRequest, _on_invalid)
    app.add_exception_handler(JobNotFound, _on_not_found)
    app.add_exception_handler(StorageError, _on_storage)
    app.add_exception_handler(ExternalIdInUse, _on_conflict)
    app.add_exception_handler(InvalidTransition, _on_conflict)
    app.add_exception_handler(StarletteHTTPException, _on_http)


# -- the input guard -------------------------------------------------------------------------

#: Why a path or query part was refused (the ``msg`` of its ``detail`` entry).
UNUSABLE_TEXT = "must be UTF-8 text without NUL characters"
#: What no backend stores or compares: NUL (PostgreSQL) and lone surrogates (not UTF-8).
_UNUSABLE_CHARS = re.compile("[\x00\ud800-\udfff]")

#: Builds the answer to a refused request: (status, detail, decoded path) -> response.
Refusal = Callable[[int, list[dict[str, Any]], str], Response]


def _usable(raw: bytes) -> bool:
    """True when ``raw`` (percent-decoded bytes) is UTF-8 text without NUL."""
    if raw.isascii():
        return b"\x00" not in raw
    try:
        text = raw.decode("utf-8")  # strict: no invalid, overlong or surrogate sequences
    except UnicodeDecodeError:
        return False
    return "\x00" not in text


def _shown(raw: bytes) -> str:
    """Refused bytes as text a JSON or HTML answer can carry."""
    return _UNUSABLE_CHARS.sub("\ufffd", raw.decode("utf-8", "replace"))


def unusable_part(scope: Scope) -> list[str] | None:
    """The ``loc`` of the first unusable part of the request: ``["path"]`` or
    ``["query", name]``; None when the path and every query name and value are usable.

    The raw bytes are checked, because servers decode invalid UTF-8 to U+FFFD (so ``%ff``
    would otherwise match an ID holding U+FFFD), and the decoded path too, because a server
    may hand over lone surrogates (``surrogateescape``) or no ``raw_path`` at all.
    """
    path: str = scope.get("path", "")
    raw_path: bytes | None = scope.get("raw_path")
    if _UNUSABLE_CHARS.search(path) or (
        raw_path is not None and not _usable(unquote_to_bytes(raw_path.split(b"?", 1)[0]))
    ):
        return ["path"]
    query: bytes = scope.get("query_string", b"")
    if b"%" not in query and _usable(query):
        return None  # the common case: plain ASCII, nothing percent-encoded
    # latin-1 both ways keeps every byte as sent, so that the UTF-8 check sees the bytes.
    for name, value in parse_qsl(
        query.decode("latin-1"), keep_blank_values=True, encoding="latin-1"
    ):
        raw_name = name.encode("latin-1")
        if not (_usable(raw_name) and _usable(value.encode("latin-1"))):
            return ["query", _shown(raw_name)]
    return None


def json_refusal(status: int, detail: list[dict[str, Any]], _path: str) -> Response:
    """The API's answer: 404 ``not_found`` for a path, 422 ``invalid_request`` for a query."""
    code = "not_found" if status == 404 else "invalid_request"
    return JSONResponse(error_body(code, detail=detail), status_code=status)


class InputGuard:
    """Pure ASGI middleware: refuse a request whose path or query is not usable text.

    One decision for every route, present and future, on every backend (PostgreSQL refuses
    NUL, psycopg cannot encode surrogates, MariaDB and SQLite would quietly compare them).
    ``refusals`` says how to answer, by path prefix, first match wins (each part of the
    app keeps its own error shape); paths no prefix matches get :func:`json_refusal`.
    """

    def __init__(self, app: ASGIApp, refusals: Sequence[tuple[str, Refusal]] = ()) -> None:
        self.app = app
        self.refusals = tuple(refusals)

    def _refusal(self, path: str) -> Refusal:
        return next(
            (answer for prefix, answer in self.refusals if path.startswith(prefix)), json_refusal
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            loc = unusable_part(scope)
            if loc is not None:
                status = 404 if loc[0] == "path" else 422
                detail = [{"loc": loc, "msg": UNUSABLE_TEXT, "type": "value_error"}]
                path: str = scope.get("path", "")
                response = self._refusal(path)(status, detail, path)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
