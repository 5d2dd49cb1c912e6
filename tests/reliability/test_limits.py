"""Limits and hostile IDs: each refused with a clear 4xx, or stored as a plain string."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest

from joblog.api.app import create_app
from joblog.api.settings import ApiSettings
from joblog.stdlib import MAX_MESSAGE_CHARS
from tests.reliability.conftest import Record
from tests.support.api import ApiClient, api_client

TOKEN = "limits-write-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOSTILE_IDS = [
    "'; DROP TABLE log_events; --",
    "unified-live-failover-ünïcødé-😀-1758553933",
    "failover/with/slashes",
    "../../etc/passwd",
    "%2e%2e%2fetc",
    'a\\b"c',
]


@pytest.fixture
def api(database_url: str) -> Iterator[ApiClient]:
    app = create_app(database_url, settings=ApiSettings(write_tokens=(TOKEN,)))
    with api_client(app) as client:
        yield client


def test_limits_answer_with_clear_errors(api: ApiClient, reliability: Record) -> None:
    reliability.injected = (
        "a 256-character ID, page sizes 0 and 1001, a 6 MiB body, a "
        f"{MAX_MESSAGE_CHARS + 5000:,}-character log message"
    )
    long_id = api.get(f"/api/v1/jobs/{'x' * 256}")
    assert long_id.status_code == 404
    assert long_id.json()["error"] == "job_not_found"
    pages = [api.get("/api/v1/jobs", params={"limit": n}).status_code for n in (0, 1001)]
    assert pages == [422, 422]
    huge = api.request(
        "POST",
        "/api/v1/events",
        headers={**AUTH, "Content-Type": "application/json"},
        content=b'{"batch_key": "k", "events": [' + b" " * (6 * 1024 * 1024) + b"]}",
    )
    assert huge.status_code == 413
    assert huge.json()["error"] == "payload_too_large"
    created = api.request(
        "POST", "/api/v1/jobs", headers=AUTH, json={"job_type": "failover", "operation": "live"}
    )
    assert created.status_code == 201
    job_id = created.json()["id"]
    message = "m" * (MAX_MESSAGE_CHARS + 5000)
    stored = api.request(
        "POST",
        "/api/v1/events",
        headers=AUTH,
        json={
            "batch_key": "long",
            "events": [{"job_id": job_id, "level": "INFO", "message": message}],
        },
    )
    assert stored.status_code == 200
    (event,) = api.get(f"/api/v1/jobs/{job_id}/logs").json()["events"]
    assert event["message"].endswith("[truncated 5000 characters]")
    reliability.measured = {
        "ID": f"{long_id.status_code} {long_id.json()['error']}",
        "page sizes": f"{pages[0]}, {pages[1]} invalid_request",
        "body": f"{huge.status_code} {huge.json()['error']}",
        "message": f"stored cut to {MAX_MESSAGE_CHARS:,} characters + marker",
    }


def test_hostile_ids_are_plain_strings(api: ApiClient, reliability: Record) -> None:
    reliability.injected = "IDs with SQL metacharacters, unicode, slashes and path traversal"
    answers = []
    for external_id in HOSTILE_IDS:
        # Fully quoted, as a GUI building a URL must do (a literal "../" is resolved away
        # by every HTTP client before it is sent).
        quoted = quote(external_id, safe="")
        assert api.get(f"/api/v1/jobs/{quoted}").status_code == 404
        created = api.request(
            "POST",
            "/api/v1/jobs",
            headers=AUTH,
            json={"job_type": "failover", "operation": "live", "external_job_id": external_id},
        )
        assert created.status_code == 201
        found = api.get(f"/api/v1/jobs/{quoted}")
        assert found.status_code == 200, external_id
        assert found.json()["job"]["external_job_id"] == external_id
        answers.append(found.status_code)
    jobs = api.get("/api/v1/jobs", params={"limit": 100}).json()["jobs"]
    assert len(jobs) == len(HOSTILE_IDS)  # and the tables are still there
    reliability.measured = {
        "IDs": len(HOSTILE_IDS),
        "unknown": "404 each",
        "after creating them": f"found by the exact string: {answers.count(200)}/{len(answers)}",
    }
