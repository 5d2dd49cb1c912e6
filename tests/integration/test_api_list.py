"""GET /api/v1/jobs: newest first, filters, cursor pagination, bad parameters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import joblog
from joblog.api.app import create_app
from tests.conftest import BACKENDS
from tests.support.api import ApiClient, api_client, backend_database


@pytest.fixture(scope="module", params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from backend_database(request, tmp_path_factory)


@pytest.fixture(scope="module")
def jobs(url: str) -> list[str]:
    """Seven jobs, oldest first: three completed failovers, a failed one, two running
    cleanups and a completed child of the last cleanup.

    Every test here only reads, so one database per backend serves the whole module.
    """
    tracker = joblog.Tracker(url, flush_interval=0.01)
    ids = []
    for n in range(4):
        job = tracker.start_job(
            "failover",
            "live",
            external_job_id=f"unified-live-failover-vm{n}-17585",
            context_id=f"vm-{n % 2}",
            owner="ops" if n < 2 else "dev",
        )
        if n == 3:
            job.fail("boom")
        else:
            job.complete()
        ids.append(job.id)
        time.sleep(0.002)  # distinct created_at on every backend
    for n in range(2):
        job = tracker.start_job("cleanup", "rollback", external_job_id=f"rollback-test-vm{n}")
        ids.append(job.id)
        time.sleep(0.002)
    child = tracker.start_job("volume", "detach", external_job_id="volume-1", parent=job)
    child.complete()
    ids.append(child.id)
    tracker.close()  # the cleanups stay "running" in the database
    return ids


@pytest.fixture(scope="module")
def api(url: str, jobs: list[str]) -> Iterator[ApiClient]:
    with api_client(create_app(url)) as client:
        yield client


def listed(api: ApiClient, query: str = "") -> list[str]:
    response = api.get(f"/api/v1/jobs{query}")
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()["jobs"]]


class TestListing:
    def test_newest_first(self, api: ApiClient, jobs: list[str]) -> None:
        assert listed(api) == jobs[::-1]

    def test_status_repeated_and_comma_separated(self, api: ApiClient, jobs: list[str]) -> None:
        expected = [jobs[5], jobs[4], jobs[3]]
        assert listed(api, "?status=running&status=failed") == expected
        assert listed(api, "?status=running,FAILED") == expected

    def test_job_type(self, api: ApiClient, jobs: list[str]) -> None:
        assert listed(api, "?job_type=cleanup") == [jobs[5], jobs[4]]

    def test_oldest_first(self, api: ApiClient, jobs: list[str]) -> None:
        assert listed(api, "?sort=oldest") == jobs
        assert listed(api, "?sort=newest&job_type=cleanup") == [jobs[5], jobs[4]]

    def test_top_level_leaves_child_jobs_out(self, api: ApiClient, jobs: list[str]) -> None:
        assert listed(api, "?top_level=true") == jobs[5::-1]
        assert listed(api, "?top_level=false") == jobs[::-1]

    @pytest.mark.parametrize("value", ["%", "_", "\\", "ops%", "o_s", "%25", "%5C"])
    def test_owner_and_context_are_exact_not_patterns(
        self, api: ApiClient, jobs: list[str], value: str
    ) -> None:
        assert listed(api, f"?owner={value}") == []
        assert listed(api, f"?context_id={value}") == []

    def test_context_and_owner(self, api: ApiClient, jobs: list[str]) -> None:
        assert listed(api, "?context_id=vm-1") == [jobs[3], jobs[1]]
        assert listed(api, "?owner=ops&context_id=vm-0") == [jobs[0]]

    def test_external_id_prefix_is_literal(self, api: ApiClient, jobs: list[str]) -> None:
        assert listed(api, "?external_id_prefix=rollback-") == [jobs[5], jobs[4]]
        assert listed(api, "?external_id_prefix=%25") == []

    def test_since_and_until(self, api: ApiClient, jobs: list[str]) -> None:
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert listed(api, f"?since={past.replace('+', '%2B')}") == jobs[::-1]
        assert listed(api, f"?since={future.replace('+', '%2B')}") == []
        assert listed(api, f"?until={past}") == []

    def test_cursor_pages_cover_everything_once(self, api: ApiClient, jobs: list[str]) -> None:
        seen: list[str] = []
        cursor = ""
        pages = 0
        while True:
            body = api.get(f"/api/v1/jobs?limit=4&cursor={cursor}").json()
            seen += [job["id"] for job in body["jobs"]]
            pages += 1
            if body["next_cursor"] is None:
                break
            cursor = body["next_cursor"]
        assert seen == jobs[::-1]
        assert pages == 2

    @pytest.mark.parametrize("limit", [1, 2, 3])
    def test_oldest_first_pages_cover_everything_once(
        self, api: ApiClient, jobs: list[str], limit: int
    ) -> None:
        seen: list[str] = []
        cursor = ""
        while True:
            body = api.get(f"/api/v1/jobs?sort=oldest&limit={limit}&cursor={cursor}").json()
            seen += [job["id"] for job in body["jobs"]]
            if body["next_cursor"] is None:
                break
            cursor = body["next_cursor"]
        assert seen == jobs

    def test_filtered_pages_cover_the_filtered_jobs_once(
        self, api: ApiClient, jobs: list[str]
    ) -> None:
        first = api.get("/api/v1/jobs?top_level=1&owner=ops&limit=1").json()
        second = api.get(
            f"/api/v1/jobs?top_level=1&owner=ops&limit=1&cursor={first['next_cursor']}"
        )
        assert [j["id"] for j in first["jobs"] + second.json()["jobs"]] == [jobs[1], jobs[0]]
        assert second.json()["next_cursor"] is None

    def test_last_page_has_no_cursor(self, api: ApiClient, jobs: list[str]) -> None:
        assert api.get("/api/v1/jobs?limit=7").json()["next_cursor"] is None


class TestBadParameters:
    @pytest.mark.parametrize(
        ("query", "status"),
        [
            ("?status=exploded", 422),
            ("?limit=0", 422),
            ("?limit=501", 422),
            ("?limit=ten", 422),
            ("?since=yesterday", 422),
            ("?until=2026-13-45", 422),
            ("?since=0001-01-01T00:00:00%2B14:00", 422),
            ("?cursor=not-base64!", 400),
            ("?cursor=aGVsbG8", 400),
            ("?job_type=a%00b", 422),
            ("?owner=" + "x" * 300, 422),
            ("?context_id=" + "x" * 60_000, 422),
            ("?context_id=a%00", 422),
            ("?sort=random", 422),
            ("?sort=NEWEST%00", 422),
            ("?top_level=maybe", 422),
            ("?since=99999-01-01T00:00:00Z", 422),
            ("?limit=99999999999999999999999", 422),
        ],
    )
    def test_is_a_json_4xx(self, api: ApiClient, query: str, status: int) -> None:
        response = api.get(f"/api/v1/jobs{query}")
        assert response.status_code == status
        body = response.json()
        assert body["error"] == "invalid_request"
        assert body["detail"][0]["loc"][0] == "query"
