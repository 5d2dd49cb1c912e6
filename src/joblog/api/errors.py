"""Every error the API answers with, as JSON: ``{"error": "<code>", ...}``.

Bad input gets 400 or 422 with ``{"error": "invalid_request", "detail": [...]}``, an unknown
ID 404 ``job_not_found``, a database that cannot be reached 503 ``database_unavailable``.
Writes the job's state forbids get 409 ``invalid_transition``; a new job whose external ID a
running job holds 409 ``external_id_in_use`` (with ``running_job_id``).
Nothing a client sends should produce a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from joblog.exceptions import (
    ExternalIdInUse,
    InvalidTransition,
    JobNotFound,
    StorageError,
    StorageUnavailable,
)

__all__ = ["InvalidRequest", "error_body", "install_error_handlers"]

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


async def _on_http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return JSONResponse(
        error_body(code, detail=exc.detail), status_code=exc.status_code, headers=exc.headers
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(InvalidRequest, _on_invalid)
    app.add_exception_handler(JobNotFound, _on_not_found)
    app.add_exception_handler(StorageError, _on_storage)
    app.add_exception_handler(ExternalIdInUse, _on_conflict)
    app.add_exception_handler(InvalidTransition, _on_conflict)
    app.add_exception_handler(StarletteHTTPException, _on_http)
