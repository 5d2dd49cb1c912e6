"""GET /api/v1/jobs/{any_id}/logs: filters, cursor pagination, NDJSON, bad parameters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

import joblog
from joblog._ops import InsertEvents
from joblog.api import routes_jobs
from joblog.api.app import create_app
from joblog.api.params import encode_event_cursor
from joblog.storage import schema
from tests.conftest import BACKENDS
from tests.support.api import ApiClient, api_client, backend_database

EXTERNAL = "unified-live-failover-pgtest2-1758553933"


@pytest.fixture(scope="module", params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from backend_database(request, tmp_path_factory)


@pytest.fixture(scope="module")
def job(url: str) -> dict[str, Any]:
    """A job with two steps and six events: DEBUG..ERROR, two of them mentioning 'disk';
    three events of a producer that never made a job row; a legacy failover row.

    Every test here only reads, so one database per backend serves the whole module.
    """
    tracker = joblog.Tracker(url, flush_interval=0.01)
    with tracker.job("failover", "live", external_job_id=EXTERNAL) as handle:
        tracker.log_event("DEBUG", "planning")
        with handle.step("validation") as validation:
            tracker.log_event("INFO", "checking disk 1")
            tracker.log_event("WARN", "disk 2 is slow")
        with handle.step("snapshot") as snapshot:
            tracker.log_event("INFO", "snapshot taken")
            tracker.log_event("ERROR", "quota exceeded (100%)")
        tracker.log_event("INFO", "done")
        tracker.log_event("INFO", "saved to C:\\temp\\Report")
    tracker.flush(30)
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        (None, None, "go-producer-7", "INFO", f"line {n}", None, now, None, None) for n in range(3)
    ]
    tracker.store.apply_batch([InsertEvents(rows)])
    with tracker.store.engine.begin() as conn:
        conn.execute(
            schema.failover_jobs.insert().values(
                job_id="legacy-1", job_type="live", status="pending", created_at=now
            )
        )
    tracker.close()
    return {"id": handle.id, "validation": validation.id, "snapshot": snapshot.id}


@pytest.fixture(scope="module")
def api(url: str, job: dict[str, Any]) -> Iterator[ApiClient]:
    with api_client(create_app(url)) as client:
        yield client


def messages(api: ApiClient, query: str = "", any_id: str = EXTERNAL) -> list[str]:
    response = api.get(f"/api/v1/jobs/{any_id}/logs{query}")
    assert response.status_code == 200, response.text
    return [event["message"] for event in response.json()["events"]]


ALL = [
    "planning",
    "checking disk 1",
    "disk 2 is slow",
    "snapshot taken",
    "quota exceeded (100%)",
    "done",
    "saved to C:\\temp\\Report",
]


class TestFilters:
    def test_all_in_order_by_any_id(self, api: ApiClient, job: dict[str, Any]) -> None:
        assert messages(api) == ALL
        assert messages(api, any_id=job["id"]) == ALL

    @pytest.mark.parametrize("level", ["warn", "WARNING", "Warn"])
    def test_min_level_in_any_case(self, api: ApiClient, job: dict[str, Any], level: str) -> None:
        assert messages(api, f"?min_level={level}") == ["disk 2 is slow", "quota exceeded (100%)"]

    def test_step(self, api: ApiClient, job: dict[str, Any]) -> None:
        assert messages(api, f"?step_id={job['snapshot']}") == ALL[3:5]

    def test_contains_is_literal(self, api: ApiClient, job: dict[str, Any]) -> None:
        assert messages(api, "?contains=disk") == ALL[1:3]
        assert messages(api, "?contains=100%25") == ["quota exceeded (100%)"]
        assert messages(api, "?contains=_") == []

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("\\", [ALL[6]]),
            ("C:\\temp", [ALL[6]]),
            ("\\\\", []),
            ("%", [ALL[4]]),
            ("_", []),
            ("/", []),
            ("[a-z]", []),
            ("DISK", ALL[1:3]),
            ("report", [ALL[6]]),
        ],
    )
    def test_contains_is_literal_and_ignores_case(
        self, api: ApiClient, job: dict[str, Any], text: str, expected: list[str]
    ) -> None:
        response = api.get(f"/api/v1/jobs/{EXTERNAL}/logs", params={"contains": text})
        assert response.status_code == 200
        assert [event["message"] for event in response.json()["events"]] == expected

    def test_since_and_until(self, api: ApiClient, job: dict[str, Any]) -> None:
        events = api.get(f"/api/v1/jobs/{EXTERNAL}/logs").json()["events"]
        third = events[2]["ts"]
        assert messages(api, f"?since={third}")[0] == events[2]["message"]
        assert messages(api, f"?until={events[0]['ts']}") == []

    def test_events_only_external_id(self, api: ApiClient) -> None:
        assert messages(api, any_id="go-producer-7") == ["line 0", "line 1", "line 2"]

    def test_legacy_job_has_no_logs(self, api: ApiClient) -> None:
        assert messages(api, any_id="legacy-1") == []

    def test_unknown_id_is_404(self, api: ApiClient) -> None:
        response = api.get("/api/v1/jobs/nobody/logs")
        assert response.status_code == 404
        assert response.json() == {"error": "job_not_found", "id": "nobody"}


class TestPagination:
    def test_cursor_pages_cover_everything_once(self, api: ApiClient, job: dict[str, Any]) -> None:
        seen: list[str] = []
        cursor = ""
        while True:
            body = api.get(f"/api/v1/jobs/{EXTERNAL}/logs?limit=4&cursor={cursor}").json()
            seen += [event["message"] for event in body["events"]]
            if body["next_cursor"] is None:
                break
            cursor = body["next_cursor"]
        assert seen == ALL

    @pytest.mark.parametrize("limit", [1, 2, 3, 7, 8])
    def test_before_id_pages_back_over_everything_once(
        self, api: ApiClient, job: dict[str, Any], limit: int
    ) -> None:
        pages: list[list[str]] = []
        before = 2**63 - 1
        while before is not None:
            body = api.get(f"/api/v1/jobs/{EXTERNAL}/logs?limit={limit}&before_id={before}").json()
            pages.append([event["message"] for event in body["events"]])
            assert body["next_cursor"] is None
            before = body["next_before_id"]
        assert [message for page in reversed(pages) for message in page] == ALL
        assert all(len(page) == limit for page in pages[:-1])
        assert len(pages) == -(-len(ALL) // limit)

    def test_before_id_with_filters_and_after_id(self, api: ApiClient, job: dict[str, Any]) -> None:
        events = api.get(f"/api/v1/jobs/{EXTERNAL}/logs").json()["events"]
        last = events[-1]["id"]
        assert messages(api, f"?before_id={last}&contains=disk") == ALL[1:3]
        assert messages(api, f"?before_id={last}&min_level=ERROR&limit=1") == [ALL[4]]
        between = f"?after_id={events[1]['id']}&before_id={events[4]['id']}"
        assert messages(api, between) == ALL[2:4]
        assert messages(api, f"?after_id={last}&before_id={last}") == []
        assert messages(api, f"?before_id={events[0]['id']}") == []

    def test_before_id_on_a_legacy_job_is_empty(self, api: ApiClient) -> None:
        body = api.get("/api/v1/jobs/legacy-1/logs?before_id=5").json()
        assert body == {"events": [], "next_cursor": None, "next_before_id": None}

    def test_after_id(self, api: ApiClient, job: dict[str, Any]) -> None:
        events = api.get(f"/api/v1/jobs/{EXTERNAL}/logs").json()["events"]
        assert messages(api, f"?after_id={events[3]['id']}") == ALL[4:]


class TestNdjson:
    def test_streams_every_matching_event(
        self, api: ApiClient, job: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(routes_jobs, "NDJSON_PAGE", 2)  # force several internal pages
        response = api.get(f"/api/v1/jobs/{EXTERNAL}/logs?format=ndjson&limit=1")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert [line["message"] for line in lines] == ALL

    def test_before_id_bounds_the_download(self, api: ApiClient, job: dict[str, Any]) -> None:
        events = api.get(f"/api/v1/jobs/{EXTERNAL}/logs").json()["events"]
        response = api.get(
            f"/api/v1/jobs/{EXTERNAL}/logs?format=ndjson&before_id={events[2]['id']}"
        )
        assert [json.loads(line)["message"] for line in response.text.splitlines()] == ALL[:2]

    def test_applies_filters(self, api: ApiClient, job: dict[str, Any]) -> None:
        response = api.get(f"/api/v1/jobs/{EXTERNAL}/logs?format=ndjson&min_level=ERROR")
        assert [json.loads(line)["message"] for line in response.text.splitlines()] == [
            "quota exceeded (100%)"
        ]


class TestBadParameters:
    @pytest.mark.parametrize(
        ("query", "status"),
        [
            ("?min_level=LOUD", 422),
            ("?limit=0", 422),
            ("?limit=1001", 422),
            ("?after_id=-1", 422),
            ("?step_id=abc", 422),
            ("?step_id=99999999999999999999", 422),
            ("?since=last-tuesday", 422),
            ("?until=2026-02-30T00:00:00Z", 422),
            ("?format=xml", 422),
            ("?contains=a%00b", 422),
            ("?contains=" + "%25" * 256, 422),
            ("?contains=" + "x" * 60_000, 422),
            ("?before_id=0", 422),
            ("?before_id=-5", 422),
            ("?before_id=9223372036854775808", 422),
            ("?before_id=1e3", 422),
            ("?cursor=@@@", 400),
            ("?cursor=" + encode_event_cursor(10**19), 400),
        ],
    )
    def test_is_a_json_4xx(
        self, api: ApiClient, job: dict[str, Any], query: str, status: int
    ) -> None:
        response = api.get(f"/api/v1/jobs/{EXTERNAL}/logs{query}")
        assert response.status_code == status
        assert response.json()["error"] == "invalid_request"
