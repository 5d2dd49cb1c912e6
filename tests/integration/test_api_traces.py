"""``GET /api/v1/traces/{trace_id}/events`` and the ``trace_id`` filter of a job's logs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from joblog.api.app import create_app
from joblog.api.settings import ApiSettings
from joblog.demo import insert_failover_job
from tests.conftest import BACKENDS
from tests.support.api import ApiClient, api_client, backend_database

WRITE = "traces-write-token-0123456789"
AUTH = {"Authorization": f"Bearer {WRITE}"}
TRACE_A = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_B = "0af7651916cd43dd8448eb211c80319c"
SPAN = "00f067aa0ba902b7"


@pytest.fixture(scope="module", params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from backend_database(request, tmp_path_factory)


@pytest.fixture(scope="module")
def api(url: str) -> Iterator[ApiClient]:
    """Two jobs; trace A crosses both (and an events-only ID), trace B stays in job 1.
    Shared by the module's tests, which only read (and add a legacy row)."""
    settings = ApiSettings(write_tokens=(WRITE,))
    with api_client(create_app(url, settings=settings)) as client:
        for external_id in ("job-1", "job-2"):
            body = {"job_type": "failover", "operation": "unified", "external_job_id": external_id}
            assert (
                client.request("POST", "/api/v1/jobs", json=body, headers=AUTH).status_code == 201
            )
        events = [
            ("job-1", TRACE_A, "INFO", "a1"),
            ("job-1", TRACE_B, "INFO", "b1"),
            ("job-2", TRACE_A, "ERROR", "a2 failed"),
            ("job-1", None, "INFO", "untraced"),
            ("events-only", TRACE_A, "DEBUG", "a3"),
        ]
        batch = {
            "batch_key": "k1",
            "events": [
                {"external_job_id": job, "trace_id": trace, "level": level, "message": message}
                | ({"span_id": SPAN} if trace else {})
                for job, trace, level, message in events
            ],
        }
        assert client.request("POST", "/api/v1/events", json=batch, headers=AUTH).is_success
        yield client


def messages(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [event["message"] for event in response.json()["events"]]


class TestTraceEvents:
    def test_every_event_of_the_trace_across_jobs_in_order(self, api: ApiClient) -> None:
        response = api.get(f"/api/v1/traces/{TRACE_A}/events")
        assert messages(response) == ["a1", "a2 failed", "a3"]
        first = response.json()["events"][0]
        assert (first["trace_id"], first["span_id"], first["external_job_id"]) == (
            TRACE_A,
            SPAN,
            "job-1",
        )

    def test_the_id_is_taken_in_any_case(self, api: ApiClient) -> None:
        assert messages(api.get(f"/api/v1/traces/{TRACE_B.upper()}/events")) == ["b1"]

    def test_a_trace_nothing_carries_is_an_empty_page(self, api: ApiClient) -> None:
        response = api.get(f"/api/v1/traces/{'1' * 32}/events")
        assert response.json() == {"events": [], "next_cursor": None}

    @pytest.mark.parametrize(
        "trace_id",
        ["abc", "0" * 32, "g" * 32, TRACE_A + "00", TRACE_A[:-1] + "%20", "%C3%A9" * 16],
    )
    def test_a_malformed_id_is_a_422(self, api: ApiClient, trace_id: str) -> None:
        response = api.get(f"/api/v1/traces/{trace_id}/events")
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_request"

    def test_pages_with_a_cursor(self, api: ApiClient) -> None:
        first = api.get(f"/api/v1/traces/{TRACE_A}/events", params={"limit": 2}).json()
        assert [e["message"] for e in first["events"]] == ["a1", "a2 failed"]
        rest = api.get(f"/api/v1/traces/{TRACE_A}/events", params={"cursor": first["next_cursor"]})
        assert messages(rest) == ["a3"]

    def test_older_pages_with_before_id(self, api: ApiClient) -> None:
        newest = api.get(f"/api/v1/traces/{TRACE_A}/events").json()["events"][-1]
        page = api.get(
            f"/api/v1/traces/{TRACE_A}/events", params={"before_id": newest["id"], "limit": 1}
        ).json()
        assert [e["message"] for e in page["events"]] == ["a2 failed"]
        assert page["next_before_id"] is not None

    def test_filters(self, api: ApiClient) -> None:
        url = f"/api/v1/traces/{TRACE_A}/events"
        assert messages(api.get(url, params={"min_level": "ERROR"})) == ["a2 failed"]
        assert messages(api.get(url, params={"contains": "A3"})) == ["a3"]

    def test_ndjson(self, api: ApiClient) -> None:
        response = api.get(f"/api/v1/traces/{TRACE_A}/events", params={"format": "ndjson"})
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert [line["message"] for line in lines] == ["a1", "a2 failed", "a3"]


class TestLogsTraceFilter:
    def test_a_jobs_events_of_one_trace(self, api: ApiClient) -> None:
        assert messages(api.get("/api/v1/jobs/job-1/logs", params={"trace_id": TRACE_A})) == ["a1"]
        assert messages(api.get("/api/v1/jobs/job-1/logs", params={"trace_id": TRACE_B})) == ["b1"]

    def test_with_ndjson(self, api: ApiClient) -> None:
        response = api.get(
            "/api/v1/jobs/job-2/logs", params={"trace_id": TRACE_A.upper(), "format": "ndjson"}
        )
        assert [json.loads(line)["message"] for line in response.text.splitlines()] == ["a2 failed"]

    def test_a_legacy_job_never_widens_to_the_whole_trace(self, api: ApiClient) -> None:
        insert_failover_job(
            api.app.state.store, job_id="legacy-1", vm_id="vm-1", status="completed"
        )
        response = api.get("/api/v1/jobs/legacy-1/logs", params={"trace_id": TRACE_A})
        assert messages(response) == []
        assert api.get("/api/v1/jobs/nobody/logs", params={"trace_id": TRACE_A}).status_code == 404

    @pytest.mark.parametrize("trace_id", ["xyz", "0" * 32, "a" * 33])
    def test_a_malformed_filter_is_a_422(self, api: ApiClient, trace_id: str) -> None:
        response = api.get("/api/v1/jobs/job-1/logs", params={"trace_id": trace_id})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "trace_id"]


class TestDocumented:
    def test_in_the_openapi_document_with_an_example(self, api: ApiClient) -> None:
        operation = api.get("/openapi.json").json()["paths"]["/api/v1/traces/{trace_id}/events"]
        example = operation["get"]["responses"]["200"]["content"]["application/json"]["example"]
        assert example["events"][0]["trace_id"] == TRACE_A
