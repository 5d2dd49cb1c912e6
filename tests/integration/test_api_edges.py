"""Hostile input at the edges, on SQLite, PostgreSQL and MariaDB: every route of the app.

Routes are enumerated from the app itself (a route added later is covered without a
change here): NUL and invalid UTF-8 in any path or query part answer 404 / 422, never a
5xx; numbers out of a BIGINT's range, malformed cursors and ``Last-Event-ID`` answer
400 / 422; an unknown value of an enumerated parameter answers 422 naming the allowed ones.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

import joblog
from joblog._config import MAX_BIGINT
from joblog.api.app import create_app
from joblog.api.errors import UNUSABLE_TEXT
from joblog.api.params import encode_event_cursor, encode_job_cursor
from joblog.api.settings import ApiSettings
from joblog.model import JobStatus
from tests.conftest import BACKENDS
from tests.support.api import ApiClient, LiveServer, api_client, backend_database, read_sse

WRITE = "edge-write-token-0123456789"
AUTH = {"Authorization": f"Bearer {WRITE}"}
EXTERNAL = "edge-job-1"

#: Percent-encoded as a client would send them: NUL, a byte that is no UTF-8 at all, a
#: lone low and a lone high surrogate (as CESU-8 would encode them), an overlong NUL, a
#: truncated sequence.
HOSTILE = ("%00", "a%00b", "%ff", "x%ed%b0%80", "%ed%a0%80", "%c0%80", "%e2%82")
#: A value for each path parameter that would otherwise route to real work.
USABLE_PATH_VALUES = {
    "any_id": EXTERNAL,
    "job_id": EXTERNAL,
    "seq": "1",
    "name": "app.css",
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
}
#: The methods a route takes that a client can call (HEAD mirrors GET).
_SKIPPED_METHODS = {"HEAD"}


@pytest.fixture(scope="module", params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from backend_database(request, tmp_path_factory)


@pytest.fixture(scope="module")
def job_id(url: str) -> str:
    """A finished job with one log line, so that valid IDs reach the database."""
    tracker = joblog.Tracker(url, flush_interval=0.01)
    try:
        with tracker.job("failover", "edge", external_job_id=EXTERNAL) as job:
            tracker.log_event("INFO", "the only line")
        tracker.flush(30)
        return job.id
    finally:
        tracker.close()


def make_app(url: str) -> FastAPI:
    return create_app(url, settings=ApiSettings(write_tokens=(WRITE,), poll_interval=0.02))


@pytest.fixture(scope="module")
def api(url: str, job_id: str) -> Iterator[ApiClient]:
    with api_client(make_app(url)) as client:
        yield client


@pytest.fixture(scope="module")
def live(url: str, job_id: str) -> Iterator[LiveServer]:
    """The app behind uvicorn: what a real server puts in ``path`` and ``raw_path``."""
    with LiveServer(make_app(url)) as server:
        yield server


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30, headers=AUTH) as client:
        yield client


# -- the route table -------------------------------------------------------------------------


def routes(app: FastAPI) -> list[tuple[str, str, list[str], list[str]]]:
    """(method, path template, path parameters, declared query parameters) of every route."""
    table = []
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        queries = [param.alias for param in dependant.query_params] if dependant else []
        for method in sorted((route.methods or set()) - _SKIPPED_METHODS):
            table.append((method, route.path_format, list(route.param_convertors), queries))
    return table


def fill(template: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda match: values[match.group(1)], template)


def call(api: ApiClient, method: str, path: str) -> httpx.Response:
    # A body, so that write routes would get past their own validation if the guard let
    # the request through; the guard answers before any body is parsed.
    body = {} if method in ("POST", "PATCH") else None
    return api.request(method, path, json=body, headers=AUTH, timeout=30)


class TestRouteTable:
    def test_covers_every_documented_operation_and_the_dashboard(self, api: ApiClient) -> None:
        table = {(method, path) for method, path, _, _ in routes(api.app)}
        documented = {
            (method.upper(), path)
            for path, operations in api.app.openapi()["paths"].items()
            for method in operations
        }
        assert documented and documented <= table
        assert {("GET", "/"), ("GET", "/jobs/{any_id}"), ("GET", "/static/{name}")} <= table
        assert ("GET", "/api/v1/jobs/{any_id}/stream") in table


class TestHostilePaths:
    @pytest.mark.parametrize("value", HOSTILE)
    def test_every_route_answers_404(self, api: ApiClient, value: str) -> None:
        wrong = {}
        for method, template, params, _ in routes(api.app):
            if params:
                path = fill(template, dict.fromkeys(params, value))
            else:
                path = template.rstrip("/") + "/" + value
            response = call(api, method, path)
            if response.status_code != 404:
                wrong[f"{method} {path}"] = response.status_code
        assert not wrong, f"not refused as expected (request: status): {wrong}"

    def test_api_answer_is_json_naming_the_path(self, api: ApiClient) -> None:
        response = api.get("/api/v1/jobs/%ff/logs")
        assert response.status_code == 404
        assert response.json() == {
            "error": "not_found",
            "detail": [{"loc": ["path"], "msg": UNUSABLE_TEXT, "type": "value_error"}],
        }

    def test_failover_route_answers_in_the_origins_shape(self, api: ApiClient) -> None:
        response = api.get("/api/v1/failover/a%00b/status")
        assert response.status_code == 404
        assert response.json() == {
            "success": False,
            "message": "Failover job not found",
            "error": "failover job not found: a\x00b",
        }

    def test_dashboard_answers_with_a_page(self, api: ApiClient) -> None:
        response = api.get("/jobs/%ed%b0%80")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert 'data-testid="problem"' in response.text

    def test_invalid_utf8_cannot_reach_an_id_holding_u_fffd(self, api: ApiClient, url: str) -> None:
        # Decoded leniently, %ff is U+FFFD, and a stored ID may hold U+FFFD (NUL replaced).
        tracker = joblog.Tracker(url)
        try:
            with tracker.job("failover", "edge", external_job_id="disk-\ufffd"):
                pass
            tracker.flush(30)
        finally:
            tracker.close()
        assert api.get("/api/v1/jobs/disk-%EF%BF%BD").status_code == 200
        assert api.get("/api/v1/jobs/disk-%ff").status_code == 404

    @pytest.mark.parametrize("path", ["/api/v1/jobs/a\udcffb", "/jobs/\ud800", "/static/\x00"])
    def test_surrogates_a_server_decoded_are_404_too(self, api: ApiClient, path: str) -> None:
        # No HTTP client can send these; a server decoding with surrogateescape could.
        assert asgi_status(api.app, path) == 404


def asgi_status(app: FastAPI, path: str) -> int:
    """The status ``app`` answers for an ASGI scope with this decoded ``path`` (no raw_path)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"joblog.test")],
        "client": ("127.0.0.1", 1),
        "server": ("joblog.test", 80),
    }
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    anyio.run(app, scope, receive, send)
    return statuses[0]


class TestHostileQueries:
    @pytest.mark.parametrize("value", HOSTILE)
    def test_every_parameter_of_every_route_answers_422(self, api: ApiClient, value: str) -> None:
        wrong = {}
        for method, template, params, queries in routes(api.app):
            path = fill(template, {name: USABLE_PATH_VALUES[name] for name in params})
            # Declared parameters, one undeclared, and a hostile parameter name.
            for query in [f"{name}={value}" for name in [*queries, "unknown"]] + [f"{value}=1"]:
                response = call(api, method, f"{path}?{query}")
                if response.status_code != 422:
                    wrong[f"{method} {path}?{query}"] = response.status_code
        assert not wrong, f"not refused as expected (request: status): {wrong}"

    def test_api_answer_names_the_parameter(self, api: ApiClient) -> None:
        response = api.get(f"/api/v1/jobs/{EXTERNAL}/logs?min_level=INFO&contains=a%00b")
        assert response.status_code == 422
        assert response.json() == {
            "error": "invalid_request",
            "detail": [{"loc": ["query", "contains"], "msg": UNUSABLE_TEXT, "type": "value_error"}],
        }

    def test_dashboard_answers_with_a_page(self, api: ApiClient) -> None:
        response = api.get("/?q=vm-%ff")
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("text/html")
        assert "Unusable search" in response.text

    def test_usable_unicode_still_works(self, api: ApiClient) -> None:
        # The guard refuses bytes, not characters: real non-ASCII text passes.
        assert api.get("/api/v1/jobs?job_type=r%C3%A9plication%20%F0%9F%9A%80").status_code == 200
        assert api.get("/?q=vm-%E2%9C%93").status_code == 200


class TestOverRealHttp:
    """The same decisions behind uvicorn, which decodes paths and queries itself."""

    @pytest.mark.parametrize("value", ["%00", "%ff", "%ed%b0%80"])
    def test_path_and_query(self, http: httpx.Client, value: str) -> None:
        assert http.get(f"/api/v1/jobs/{value}").status_code == 404
        assert http.get(f"/jobs/{value}").status_code == 404
        assert http.get(f"/api/v1/jobs?job_type={value}").status_code == 422
        assert http.get(f"/?q={value}").status_code == 422


# -- numbers, cursors and Last-Event-ID ------------------------------------------------------


def b64(text: bytes) -> str:
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


class TestLastEventId:
    @pytest.mark.parametrize(
        "header",
        [
            f"{MAX_BIGINT + 1}.abc",
            "9999999999999999999.abc",
            "99999999999999999999.abc",
            "-1.abc",
            "1.xyz",
            "1",
            "abc",
            "1e3.abc",
            "0x10.abc",
        ],
    )
    def test_out_of_range_or_malformed_is_400_json(self, http: httpx.Client, header: str) -> None:
        response = http.get(f"/api/v1/jobs/{EXTERNAL}/stream", headers={"Last-Event-ID": header})
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/json"
        assert response.json()["detail"][0]["loc"] == ["header", "last-event-id"]

    def test_resume_at_the_largest_id_ends_normally(self, http: httpx.Client) -> None:
        # At the edge of BIGINT the database is asked and answers: no loop, no abort.
        headers = {"Last-Event-ID": f"{MAX_BIGINT}.abc"}
        with http.stream("GET", f"/api/v1/jobs/{EXTERNAL}/stream", headers=headers) as response:
            assert response.status_code == 200
            events = list(read_sse(response))
        assert [event.event for event in events if event.event == "log"] == []
        assert events[-1].event == "end"
        assert events[-1].data["status"] == "completed"


class TestNumbersAndCursors:
    @pytest.mark.parametrize(
        ("query", "status"),
        [
            (f"after_id={MAX_BIGINT + 1}", 422),
            ("after_id=-1", 422),
            ("after_id=1e3", 422),
            (f"step_id={MAX_BIGINT + 1}", 422),
            (f"step_id=-{MAX_BIGINT + 1}", 422),
            ("limit=" + "9" * 30, 422),
            ("cursor=" + encode_event_cursor(MAX_BIGINT + 1), 400),
            ("cursor=" + encode_event_cursor(-1), 400),
            ("cursor=" + b64(b"e12\xff"), 400),
            ("cursor=" + b64(b"e" + b"9" * 19), 400),
        ],
    )
    def test_event_parameters_out_of_range(self, api: ApiClient, query: str, status: int) -> None:
        response = api.get(f"/api/v1/jobs/{EXTERNAL}/logs?{query}")
        assert response.status_code == status
        assert response.json()["error"] == "invalid_request"

    @pytest.mark.parametrize(
        "query",
        [
            f"after_id={MAX_BIGINT}",
            f"step_id=-{MAX_BIGINT}",
            f"step_id={MAX_BIGINT}",
            "cursor=" + encode_event_cursor(MAX_BIGINT),
            f"after_id={MAX_BIGINT}&format=ndjson",
        ],
    )
    def test_event_parameters_at_the_edge_reach_the_database(
        self, api: ApiClient, query: str
    ) -> None:
        response = api.get(f"/api/v1/jobs/{EXTERNAL}/logs?{query}")
        assert response.status_code == 200
        assert "the only line" not in response.text

    @pytest.mark.parametrize(
        "cursor",
        [
            b64(b"no separator"),
            b64(b"2026-01-01T00:00:00+00:00|"),
            b64(b"2026-01-01T00:00:00+00:00|a\x00b"),
            b64(b"2026-01-01T00:00:00+00:00|\xed\xb0\x80"),
            b64(b"10000-01-01T00:00:00|x"),
            b64(b"2026-01-01T00:00:00+00:00|" + b"x" * 300),
        ],
    )
    def test_malformed_job_cursor_is_400(self, api: ApiClient, cursor: str) -> None:
        response = api.get(f"/api/v1/jobs?cursor={cursor}")
        assert response.status_code == 400
        assert response.json()["detail"][0]["loc"] == ["query", "cursor"]

    @pytest.mark.parametrize(
        ("moment", "listed"),
        [(datetime(1, 1, 1, tzinfo=UTC), False), (datetime.max.replace(tzinfo=UTC), True)],
    )
    def test_job_cursor_at_the_calendars_ends(
        self, api: ApiClient, job_id: str, moment: datetime, listed: bool
    ) -> None:
        response = api.get(f"/api/v1/jobs?cursor={encode_job_cursor(moment, 'x')}")
        assert response.status_code == 200
        assert (job_id in {job["id"] for job in response.json()["jobs"]}) is listed

    @pytest.mark.parametrize("seq", [str(2**31), "0", "-1", "one"])
    def test_step_number_out_of_range_is_422(self, api: ApiClient, seq: str) -> None:
        response = call(api, "PATCH", f"/api/v1/jobs/{EXTERNAL}/steps/{seq}")
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["path", "seq"]


# -- enumerated parameters -------------------------------------------------------------------

_STATUSES = [status.value for status in JobStatus if status is not JobStatus.UNKNOWN]


class TestEnumeratedParameters:
    @pytest.mark.parametrize(
        ("path", "allowed"),
        [
            ("/api/v1/jobs?status=bogus", _STATUSES),
            ("/api/v1/jobs?status=running,bogus", _STATUSES),
            ("/api/v1/jobs?status=running&status=unknown", _STATUSES),
            (f"/api/v1/jobs/{EXTERNAL}/logs?min_level=LOUD", ["DEBUG", "INFO", "WARN", "ERROR"]),
            (f"/api/v1/jobs/{EXTERNAL}/logs?format=xml", ["json", "ndjson"]),
        ],
    )
    def test_api_answers_422_naming_the_allowed_values(
        self, api: ApiClient, path: str, allowed: list[str]
    ) -> None:
        response = api.get(path)
        assert response.status_code == 422
        message = response.json()["detail"][0]["msg"]
        assert all(value in message for value in allowed), message

    @pytest.mark.parametrize(
        ("query", "allowed"),
        [
            ("status=bogus", _STATUSES),
            ("status=running,bogus", _STATUSES),
            ("children=yes", ["children=1"]),
        ],
    )
    def test_dashboard_answers_422_naming_the_allowed_values(
        self, api: ApiClient, query: str, allowed: list[str]
    ) -> None:
        response = api.get(f"/?{query}")
        assert response.status_code == 422
        assert all(value in response.text for value in allowed)

    def test_known_values_still_filter(self, api: ApiClient, job_id: str) -> None:
        listed = api.get("/api/v1/jobs?status=completed,running").json()["jobs"]
        assert job_id in {job["id"] for job in listed}
        assert api.get("/api/v1/jobs?status=failed").json()["jobs"] == []
        assert api.get("/?status=completed&children=1").status_code == 200
