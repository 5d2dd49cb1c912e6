"""Bad write requests get a JSON 4xx that says what is wrong, and write nothing (SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from joblog.api.app import create_app
from joblog.api.settings import ApiSettings
from tests.support.api import ApiClient, api_client

WRITE = "write-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {WRITE}"}
JOB = {"job_type": "failover", "operation": "unified"}


@pytest.fixture
def api(make_database: Any) -> Iterator[ApiClient]:
    # Validation happens before any SQL, so one backend is enough; what reaches the
    # database is tested on all three in test_api_write.py.
    settings = ApiSettings(write_tokens=(WRITE,), max_body_bytes=256 * 1024)
    with api_client(create_app(make_database("sqlite"), settings=settings)) as client:
        yield client


def post(api: ApiClient, path: str, body: Any) -> Any:
    return api.request("POST", path, json=body, headers=AUTH)


def event(**fields: Any) -> dict[str, Any]:
    return {"external_job_id": "gui-1", "level": "INFO", "message": "m", **fields}


def locations(response: Any) -> list[list[str]]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    return [item["loc"] for item in body["detail"]]


class TestJobBodies:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"operation": "x"}, "job_type"),
            ({**JOB, "job_type": "x" * 51}, "job_type"),
            ({**JOB, "operation": ""}, "operation"),
            ({**JOB, "external_job_id": "x" * 256}, "external_job_id"),
            ({**JOB, "external_job_id": "a\x00b"}, "external_job_id"),
            ({**JOB, "owner": 7}, "owner"),
            ({**JOB, "steps": [{"name": "a", "weight": 0}]}, "steps"),
            ({**JOB, "metadata": [1, 2]}, "metadata"),
            ({**JOB, "metadata": {"blob": "x" * 70_000}}, "metadata"),
            ({**JOB, "external_id": "typo"}, "external_id"),
        ],
    )
    def test_invalid_job_is_a_422_naming_the_field(
        self, api: ApiClient, body: dict[str, Any], field: str
    ) -> None:
        assert any(field in loc for loc in locations(post(api, "/api/v1/jobs", body)))
        assert api.get("/api/v1/jobs").json()["jobs"] == []

    def test_malformed_json_is_a_422(self, api: ApiClient) -> None:
        response = api.request(
            "POST",
            "/api/v1/jobs",
            content=b'{"job_type": ',
            headers={**AUTH, "content-type": "application/json"},
        )
        assert response.status_code == 422

    def test_body_that_is_not_an_object_is_a_422(self, api: ApiClient) -> None:
        assert post(api, "/api/v1/jobs", ["failover"]).status_code == 422

    @pytest.mark.parametrize(
        "body",
        [{"percent": 101}, {"percent": -1}, {"status": "running"}, {"status": "done"}],
    )
    def test_invalid_update_is_a_422(self, api: ApiClient, body: dict[str, Any]) -> None:
        post(api, "/api/v1/jobs", {**JOB, "external_job_id": "gui-1"})
        response = api.request("PATCH", "/api/v1/jobs/gui-1", json=body, headers=AUTH)
        assert response.status_code == 422

    def test_step_seq_must_be_a_number(self, api: ApiClient) -> None:
        post(api, "/api/v1/jobs", {**JOB, "external_job_id": "gui-1"})
        response = api.request(
            "PATCH", "/api/v1/jobs/gui-1/steps/first", json={"status": "completed"}, headers=AUTH
        )
        assert response.status_code in (404, 422)
        assert response.headers["content-type"] == "application/json"


class TestEventBodies:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"events": [event()]}, "batch_key"),
            ({"batch_key": "", "events": [event()]}, "batch_key"),
            ({"batch_key": "k" * 129, "events": [event()]}, "batch_key"),
            ({"batch_key": "has space", "events": [event()]}, "batch_key"),
            ({"batch_key": "k", "events": []}, "events"),
            ({"batch_key": "k", "events": [event()] * 1001}, "events"),
            ({"batch_key": "k", "events": [event(level="LOUD")]}, "level"),
            ({"batch_key": "k", "events": [event(external_job_id=None)]}, "events"),
            ({"batch_key": "k", "events": [event(ts="yesterday")]}, "ts"),
            ({"batch_key": "k", "events": [event(ts="0001-01-01T00:00:00+01:00")]}, "ts"),
            ({"batch_key": "k", "events": [event(attrs="text")]}, "attrs"),
            ({"batch_key": "k", "events": [event(attrs={"x": "y" * 70_000})]}, "events"),
            ({"batch_key": "k", "events": [event(step_seq=1, step_id=2)]}, "events"),
            ({"batch_key": "k", "events": [event(trace_id="0" * 32)]}, "trace_id"),
            ({"batch_key": "k", "events": [event(trace_id="xyz")]}, "trace_id"),
            ({"batch_key": "k", "events": [event(trace_id="a" * 33)]}, "trace_id"),
            ({"batch_key": "k", "events": [event(trace_id="\x00" * 32)]}, "trace_id"),
            ({"batch_key": "k", "events": [event(span_id="b" * 15, trace_id="a" * 32)]}, "span_id"),
            ({"batch_key": "k", "events": [event(span_id="b" * 16)]}, "events"),
        ],
    )
    def test_invalid_batch_is_a_422_naming_the_field(
        self, api: ApiClient, body: dict[str, Any], field: str
    ) -> None:
        found = locations(post(api, "/api/v1/events", body))
        assert any(field in loc for loc in found), found


class TestBodySize:
    def test_oversized_body_is_a_413(self, api: ApiClient) -> None:
        events = [event(message="x" * 10_000) for _ in range(40)]  # ~400 KiB > 256 KiB
        response = post(api, "/api/v1/events", {"batch_key": "k", "events": events})
        assert response.status_code == 413
        assert response.json() == {"error": "payload_too_large", "max_bytes": 256 * 1024}

    def test_oversized_chunked_body_is_a_413(self, api: ApiClient) -> None:
        def chunks() -> Iterator[bytes]:
            yield b'{"batch_key": "k", "events": ['
            for _ in range(300):
                yield (
                    b'{"external_job_id": "g", "level": "INFO", "message": "' + b"x" * 1000 + b'"},'
                )
            yield b"]}"

        response = api.request(
            "POST",
            "/api/v1/events",
            content=b"".join(chunks()),
            headers={**AUTH, "content-type": "application/json", "content-length": "10"},
        )
        assert response.status_code == 413
