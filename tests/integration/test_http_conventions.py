"""HTTP conventions: OpenAPI examples on every operation, security headers on every answer,
``Allow`` on every 405, and ``/docs`` served from this server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

import joblog
from joblog.api import examples
from joblog.api.app import create_app
from joblog.api.docs import DOCS_CSP
from joblog.api.security import API_CSP, DASHBOARD_CSP
from joblog.api.settings import ApiSettings
from tests.support.api import ApiClient, api_client

WRITE = "conventions-write-token-0123"
READ = "conventions-read-token-01234"
AUTH = {"Authorization": f"Bearer {WRITE}"}
PARENT = "conventions-parent"
METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS")


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database with a finished parent job (steps, a child, log lines with attrs)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('conventions') / 'jobs.db'}"
    tracker = joblog.Tracker(url, flush_interval=0.01)
    try:
        with tracker.job("failover", "live", external_job_id=PARENT, steps=["a", "b"]) as job:
            with job.step("a"):
                tracker.log_event("WARN", "slow", {"vm": "pgtest2"})
            with tracker.job("volume", "switch", parent=job), job.step("b"):
                pass
        tracker.flush(30)
    finally:
        tracker.close()
    return url


@pytest.fixture(scope="module")
def api(url: str) -> Iterator[ApiClient]:
    with api_client(create_app(url, settings=ApiSettings(write_tokens=(WRITE,)))) as client:
        yield client


@pytest.fixture(scope="module")
def document(api: ApiClient) -> dict[str, Any]:
    answer = api.get("/openapi.json")
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


# -- OpenAPI examples ------------------------------------------------------------------------


def _schema(document: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = content.get("schema", {})
    ref = schema.get("$ref")
    return document["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def _examples(document: dict[str, Any], content: dict[str, Any]) -> list[Any]:
    """The media type's example(s), else its schema's."""
    if "example" in content:
        return [content["example"]]
    if "examples" in content:
        return [entry["value"] for entry in content["examples"].values()]
    return list(_schema(document, content).get("examples", []))


def _contents(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(operation, where, media type object) of every body and answer in the document."""
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            name = f"{method.upper()} {path}"
            for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
                yield name, f"request body {media_type}", content
            for status, answer in operation["responses"].items():
                for media_type, content in answer.get("content", {}).items():
                    yield name, f"{status} {media_type}", content


class TestOpenApiExamples:
    def test_every_body_and_answer_has_an_example(self, document: dict[str, Any]) -> None:
        missing = [
            f"{name}: {where}"
            for name, where, content in _contents(document)
            if not _examples(document, content)
        ]
        assert missing == []

    def test_every_answer_but_a_bodiless_one_declares_its_content(
        self, document: dict[str, Any]
    ) -> None:
        bare = [
            f"{method.upper()} {path}: {status}"
            for path, operations in document["paths"].items()
            for method, operation in operations.items()
            for status, answer in operation["responses"].items()
            if not answer.get("content") and status not in ("204", "304")
        ]
        assert bare == []

    def test_json_examples_match_their_schemas(self, document: dict[str, Any]) -> None:
        wrong = []
        for name, where, content in _contents(document):
            if "json" not in where.split()[-1] or "schema" not in content:
                continue
            validator = jsonschema_rs.Draft202012Validator(
                {"allOf": [content["schema"]], "components": document["components"]}
            )
            for example in _examples(document, content):
                errors = [error.message for error in validator.iter_errors(example)]
                if errors:
                    wrong.append(f"{name}: {where}: {errors[:2]}")
        assert wrong == []

    def test_every_schema_example_matches_its_schema(self, document: dict[str, Any]) -> None:
        schemas = document["components"]["schemas"]
        assert set(examples.SCHEMA_EXAMPLES) <= set(schemas)
        wrong = []
        for name, schema in schemas.items():
            validator = jsonschema_rs.Draft202012Validator(
                {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
            )
            wrong += [
                f"{name}: {error.message}"
                for example in schema.get("examples", [])
                for error in validator.iter_errors(example)
            ]
        assert wrong == []

    def test_error_examples_carry_the_code_of_their_status(self, document: dict[str, Any]) -> None:
        answers = document["paths"]["/api/v1/jobs/{any_id}"]["get"]["responses"]
        example = answers["404"]["content"]["application/json"]["example"]
        assert example == {"error": "job_not_found", "id": examples.EXTERNAL_ID}
        assert answers["503"]["content"]["application/json"]["example"] == {
            "error": "database_unavailable"
        }

    def test_the_request_examples_are_accepted_by_the_api(self, api: ApiClient) -> None:
        def call(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
            answer = api.request(method, path, json=body, headers=AUTH)
            assert answer.status_code in (200, 201), (path, answer.text)
            result: dict[str, Any] = answer.json()
            return result

        job = call("POST", "/api/v1/jobs", examples.JOB_CREATE)
        steps = f"/api/v1/jobs/{job['id']}/steps"
        call("POST", steps, {"name": "validation"})
        assert call("POST", steps, examples.STEP_CREATE)["seq"] == 2
        assert call("POST", "/api/v1/events", examples.EVENT_BATCH) == {
            "stored": 1,
            "duplicate": False,
        }
        assert call("PATCH", f"{steps}/2", examples.STEP_FINISH)["status"] == "failed"
        assert call("PATCH", f"/api/v1/jobs/{job['id']}", examples.JOB_UPDATE)["id"] == job["id"]


# -- security headers ------------------------------------------------------------------------

PAGES = ("/", f"/jobs/{PARENT}", "/jobs/no-such-job", "/?status=bogus", "/jobs/%00")
NOT_PAGES = (
    "/api/v1/jobs",
    f"/api/v1/jobs/{PARENT}",
    "/api/v1/jobs/no-such-job",
    f"/api/v1/jobs/{PARENT}/logs?format=ndjson",
    "/api/v1/jobs?limit=x",
    "/api/v1/jobs/%00",
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/static/app.css",
    "/static/job.js",
    "/docs/assets/swagger-ui.css",
)


def _common_headers_are_set(headers: Any) -> None:
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


class TestSecurityHeaders:
    @pytest.mark.parametrize("path", PAGES)
    def test_pages_allow_only_the_dashboards_own_files(self, api: ApiClient, path: str) -> None:
        answer = api.get(path)
        assert answer.headers["content-type"].startswith("text/html"), answer.text
        _common_headers_are_set(answer.headers)
        assert answer.headers["content-security-policy"] == DASHBOARD_CSP

    @pytest.mark.parametrize("path", NOT_PAGES)
    def test_everything_else_allows_nothing(self, api: ApiClient, path: str) -> None:
        answer = api.get(path)
        _common_headers_are_set(answer.headers)
        assert answer.headers["content-security-policy"] == API_CSP

    def test_the_docs_page_has_its_own_policy(self, api: ApiClient) -> None:
        answer = api.get("/docs")
        _common_headers_are_set(answer.headers)
        assert answer.headers["content-security-policy"] == DOCS_CSP

    def test_a_405_and_a_refused_write_carry_them(self, api: ApiClient) -> None:
        for answer in (api.request("DELETE", "/"), api.request("POST", "/api/v1/jobs", json={})):
            assert answer.status_code in (401, 405)
            _common_headers_are_set(answer.headers)

    def test_a_401_of_the_access_control_carries_them(self, url: str) -> None:
        settings = ApiSettings(write_tokens=(WRITE,), read_tokens=(READ,))
        with api_client(create_app(url, settings=settings)) as guarded:
            answer = guarded.get("/api/v1/jobs")
        assert answer.status_code == 401
        _common_headers_are_set(answer.headers)

    def test_the_sign_in_page_has_no_inline_style(self, url: str) -> None:
        settings = ApiSettings(write_tokens=(WRITE,), read_tokens=(READ,))
        with api_client(create_app(url, settings=settings)) as guarded:
            answer = guarded.get("/login")
        assert answer.status_code == 200
        assert answer.headers["content-security-policy"] == DASHBOARD_CSP
        assert not re.search(r"\sstyle\s*=|<style|<script", answer.text)

    def test_progress_bars_are_drawn_by_classes(self, api: ApiClient) -> None:
        html = api.get(f"/jobs/{PARENT}").text
        assert 'class="bar-fill fill-100"' in html
        assert "width:" not in html

    @pytest.mark.parametrize("path", [*PAGES[:3], "/docs"])
    def test_no_inline_script_style_or_handler_in_the_html(self, api: ApiClient, path: str) -> None:
        html = api.get(path).text
        assert "<style" not in html
        assert not re.search(r"\sstyle\s*=", html)
        assert not re.search(r"\son[a-z]+\s*=", html, re.I)
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, tag
        for body in re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S):
            assert body.strip() == "" or body.lstrip().startswith(("[", "{")), body[:80]


# -- Allow on 405 ----------------------------------------------------------------------------


def _route_paths(app: FastAPI) -> list[str]:
    values = {
        "any_id": "job-1",
        "job_id": "job-1",
        "seq": "1",
        "name": "app.css",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    }
    paths = set()
    for route in iter_route_contexts(app.routes):
        template = route.path_format
        if template:
            paths.add(re.sub(r"\{(\w+)\}", lambda match: values[match.group(1)], template))
    return sorted(paths)


class TestAllow:
    @pytest.mark.parametrize(
        ("method", "path", "allow"),
        [
            ("PUT", "/api/v1/jobs/x/steps", "GET, PATCH, POST"),
            ("DELETE", "/api/v1/jobs/x", "GET, PATCH"),
            ("PUT", "/api/v1/jobs", "GET, POST"),
            ("POST", "/", "GET"),
            ("DELETE", "/jobs/x/y", "GET"),
            ("POST", "/healthz", "GET"),
            ("OPTIONS", "/api/v1/failover/x/status", "GET"),
            ("PUT", "/docs/assets/swagger-ui.css", "GET"),
        ],
    )
    def test_names_every_method_of_every_route_at_the_path(
        self, api: ApiClient, method: str, path: str, allow: str
    ) -> None:
        answer = api.request(method, path, headers=AUTH)
        assert answer.status_code == 405
        assert answer.headers["allow"] == allow
        assert answer.json()["error"] == "method_not_allowed"

    def test_every_405_of_every_route_names_methods_that_are_not_405(self, api: ApiClient) -> None:
        problems = []
        for path in _route_paths(api.app):
            for method in METHODS:
                answer = api.request(method, path, headers=AUTH)
                if answer.status_code != 405:
                    continue
                allowed = answer.headers.get("allow", "").split(", ")
                if method in allowed or allowed == [""]:
                    problems.append(f"{method} {path}: Allow {allowed}")
                for other in allowed:
                    body = {} if other in ("POST", "PATCH") else None
                    again = api.request(other, path, headers=AUTH, json=body)
                    if again.status_code == 405:
                        problems.append(f"{method} {path}: Allow names {other}, which is 405")
        assert problems == []

    def test_put_and_delete_are_405_everywhere(self, api: ApiClient) -> None:
        statuses = {
            api.request(method, path, headers=AUTH).status_code
            for path in _route_paths(api.app)
            for method in ("PUT", "DELETE")
        }
        assert statuses == {405}


# -- /docs -----------------------------------------------------------------------------------


class TestDocs:
    def test_the_page_loads_swagger_ui_from_this_server(self, api: ApiClient) -> None:
        html = api.get("/docs").text
        sources = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sources == [
            "/docs/assets/favicon.png",
            "/docs/assets/swagger-ui.css",
            "/docs/assets/swagger-ui-bundle.js",
            "/docs/assets/api-docs.js",
        ]
        assert 'data-openapi-url="/openapi.json"' in html

    @pytest.mark.parametrize(
        ("name", "media_type"),
        [
            ("swagger-ui-bundle.js", "text/javascript"),
            ("swagger-ui.css", "text/css"),
            ("api-docs.js", "text/javascript"),
            ("favicon.png", "image/png"),
        ],
    )
    def test_assets_are_served(self, api: ApiClient, name: str, media_type: str) -> None:
        answer = api.get(f"/docs/assets/{name}")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith(media_type)
        assert len(answer.content) > 50

    @pytest.mark.parametrize(
        "name", ["index.html", "..%2F..%2Fapi%2Fapp.py", "redoc.standalone.js", "%00"]
    )
    def test_other_names_are_not_found(self, api: ApiClient, name: str) -> None:
        assert api.get(f"/docs/assets/{name}").status_code == 404

    def test_the_cdn_pages_are_gone(self, api: ApiClient) -> None:
        assert api.get("/redoc").status_code == 404
        assert "cdn" not in api.get("/docs").text.lower()

    def test_assets_come_from_the_installed_package(self) -> None:
        from importlib import resources

        bundle = Path(str(resources.files("fastapi_offline") / "static" / "swagger-ui-bundle.js"))
        assert bundle.is_file()
        joblog_root = Path(joblog.__file__).parent
        assert not list(joblog_root.rglob("swagger-ui*")), "Swagger UI's files are not copied"
