"""ETag / If-None-Match on the status, failover-status and list routes; the summary cache.

A 304 must never hide a change: each test moves one thing the body shows (status,
percent, a step, a child, a new log event, a heartbeat) and checks that the old ETag no
longer matches, on every backend.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import joblog
from joblog._ids import utcnow
from joblog._ops import InsertEvents, UpdateJob
from joblog.api.app import create_app
from joblog.api.cache import SummaryCache
from joblog.api.state import MAX_IF_NONE_MATCH, not_modified
from tests.conftest import BACKENDS
from tests.support.api import ApiClient, api_client, backend_database


@pytest.fixture(scope="module", params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from backend_database(request, tmp_path_factory)


@pytest.fixture(scope="module")
def tracker(url: str) -> Iterator[joblog.Tracker]:
    tracker = joblog.Tracker(url, flush_interval=0.01, external_id_policy="allow")
    yield tracker
    tracker.close()


@pytest.fixture(scope="module")
def api(url: str, tracker: joblog.Tracker) -> Iterator[ApiClient]:
    with api_client(create_app(url)) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def tag_of(api: ApiClient, path: str) -> str:
    response = api.get(path)
    assert response.status_code == 200, response.text
    return response.headers["etag"]


def still_matches(api: ApiClient, path: str, tag: str) -> bool:
    response = api.get(path, headers={"If-None-Match": tag})
    assert response.status_code in (200, 304)
    return response.status_code == 304


@pytest.fixture
def running(tracker: joblog.Tracker) -> Iterator[joblog.JobHandle]:
    job = tracker.start_job("failover", "live", external_job_id=unique("gui"))
    tracker.flush(30)
    yield job
    if job.running:
        job.complete()
    tracker.flush(30)


def path_of(job: joblog.JobHandle) -> str:
    return f"/api/v1/jobs/{job.id}"


class TestStatusETag:
    def test_a_weak_etag_that_must_be_revalidated(
        self, api: ApiClient, running: joblog.JobHandle
    ) -> None:
        response = api.get(path_of(running))
        assert response.headers["etag"].startswith('W/"')
        assert response.headers["cache-control"] == "no-cache"

    def test_the_same_state_is_304_without_a_body(
        self, api: ApiClient, running: joblog.JobHandle
    ) -> None:
        tag = tag_of(api, path_of(running))
        response = api.get(path_of(running), headers={"If-None-Match": tag})
        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["etag"] == tag

    def test_the_tag_is_the_same_from_cache_and_from_a_fresh_build(
        self, api: ApiClient, running: joblog.JobHandle
    ) -> None:
        first, second = tag_of(api, path_of(running)), tag_of(api, path_of(running))
        assert first == second

    def test_star_matches_an_existing_job(self, api: ApiClient, running: joblog.JobHandle) -> None:
        assert api.get(path_of(running), headers={"If-None-Match": "*"}).status_code == 304

    def test_star_does_not_hide_a_missing_job(self, api: ApiClient) -> None:
        response = api.get("/api/v1/jobs/no-such-job-x", headers={"If-None-Match": "*"})
        assert response.status_code == 404

    def test_status_change(
        self, api: ApiClient, tracker: joblog.Tracker, running: joblog.JobHandle
    ) -> None:
        tag = tag_of(api, path_of(running))
        running.fail("disk gone")
        tracker.flush(30)
        assert not still_matches(api, path_of(running), tag)
        assert api.get(path_of(running)).json()["job"]["status"] == "failed"

    def test_percent_change(
        self, api: ApiClient, tracker: joblog.Tracker, running: joblog.JobHandle
    ) -> None:
        tag = tag_of(api, path_of(running))
        running.progress(42)
        tracker.flush(30)
        assert not still_matches(api, path_of(running), tag)

    def test_a_step_starts_and_finishes(
        self, api: ApiClient, tracker: joblog.Tracker, running: joblog.JobHandle
    ) -> None:
        before = tag_of(api, path_of(running))
        step = running.start_step("snapshotting")
        tracker.flush(30)
        started = tag_of(api, path_of(running))
        assert started != before
        step.fail("no space")
        tracker.flush(30)
        assert not still_matches(api, path_of(running), started)

    def test_a_child_starts_and_ends(
        self, api: ApiClient, tracker: joblog.Tracker, running: joblog.JobHandle
    ) -> None:
        before = tag_of(api, path_of(running))
        child = tracker.start_job("volume", "copy", parent=running)
        tracker.flush(30)
        with_child = tag_of(api, path_of(running))
        assert with_child != before
        child.progress(50)
        tracker.flush(30)
        halfway = tag_of(api, path_of(running))
        assert halfway != with_child
        child.complete()
        tracker.flush(30)
        assert not still_matches(api, path_of(running), halfway)

    def test_a_new_log_event(
        self, api: ApiClient, tracker: joblog.Tracker, running: joblog.JobHandle
    ) -> None:
        tag = tag_of(api, path_of(running))
        row = (running.id, None, None, "INFO", "one more line", None, utcnow(), None, None)
        tracker.store.apply_batch([InsertEvents([row])])
        assert not still_matches(api, path_of(running), tag)
        events = api.get(path_of(running)).json()["recent_events"]
        assert events[-1]["message"] == "one more line"

    def test_a_heartbeat_shown_in_the_body(
        self, api: ApiClient, tracker: joblog.Tracker, running: joblog.JobHandle
    ) -> None:
        tag = tag_of(api, path_of(running))
        tracker.store.apply_batch([UpdateJob(running.id, {"heartbeat_at": utcnow()})])
        assert not still_matches(api, path_of(running), tag)

    def test_each_asked_id_is_its_own_resource(
        self, api: ApiClient, running: joblog.JobHandle
    ) -> None:
        by_uuid = api.get(path_of(running)).json()
        by_external = api.get(f"/api/v1/jobs/{running.external_job_id}").json()
        assert by_uuid["resolved_by"] == "job_id"
        assert by_external["resolved_by"] == "external_job_id"


class TestFailoverETag:
    def test_304_and_change(
        self, api: ApiClient, tracker: joblog.Tracker, running: joblog.JobHandle
    ) -> None:
        path = f"/api/v1/failover/{running.external_job_id}/status"
        tag = tag_of(api, path)
        assert api.get(path, headers={"If-None-Match": tag}).status_code == 304
        running.progress(70)
        tracker.flush(30)
        response = api.get(path, headers={"If-None-Match": tag})
        assert response.status_code == 200
        assert response.json()["progress"] == 70
        assert response.json()["job_details"]["gui_job_id"] == running.external_job_id

    def test_unknown_id_keeps_the_origin_404(self, api: ApiClient) -> None:
        response = api.get("/api/v1/failover/nope-x/status", headers={"If-None-Match": "*"})
        assert response.status_code == 404
        assert response.json()["success"] is False


class TestListETag:
    def test_304_until_a_listed_job_changes(
        self, api: ApiClient, tracker: joblog.Tracker, running: joblog.JobHandle
    ) -> None:
        path = "/api/v1/jobs?status=running&limit=500"
        tag = tag_of(api, path)
        assert api.get(path, headers={"If-None-Match": tag}).status_code == 304
        running.progress(10)
        tracker.flush(30)
        assert not still_matches(api, path, tag)


class TestHostileIfNoneMatch:
    """Whatever the header holds, the answer is the body (200) unless it names the tag."""

    @pytest.mark.parametrize(
        "header",
        [
            "garbage",
            '"unterminated',
            "W/",
            '""',
            ",,,,",
            'W/W/"x"',
            '"' + "a" * 20_000 + '"',
            ", ".join(f'"t{n}"' for n in range(500)),
            "é\u00ff",
        ],
    )
    def test_never_a_match_nor_an_error(
        self, api: ApiClient, running: joblog.JobHandle, header: str
    ) -> None:
        response = api.get(path_of(running), headers={"If-None-Match": header.encode("latin-1")})
        assert response.status_code == 200

    def test_the_tag_among_others_matches(self, api: ApiClient, running: joblog.JobHandle) -> None:
        tag = tag_of(api, path_of(running))
        header = f'"a", W/"b", {tag}, "c"'
        assert api.get(path_of(running), headers={"If-None-Match": header}).status_code == 304

    def test_strong_form_of_a_weak_tag_matches(
        self, api: ApiClient, running: joblog.JobHandle
    ) -> None:
        tag = tag_of(api, path_of(running))
        assert still_matches(api, path_of(running), tag.removeprefix("W/"))


class TestNotModified:
    """The parser alone (RFC 9110 weak comparison)."""

    def test_weak_and_strong_compare_equal(self) -> None:
        assert not_modified('"1.ab.cd"', 'W/"1.ab.cd"')
        assert not_modified('W/"1.ab.cd"', 'W/"1.ab.cd"')

    def test_too_long_never_matches(self) -> None:
        tag = 'W/"1.ab.cd"'
        assert not not_modified(tag + " " * MAX_IF_NONE_MATCH, tag)

    def test_only_the_first_64_entries_count(self) -> None:
        tag = 'W/"1.ab.cd"'
        assert not not_modified(", ".join(['"x"'] * 64 + [tag]), tag)
        assert not_modified(", ".join(['"x"'] * 63 + [tag]), tag)

    def test_empty_and_none(self) -> None:
        assert not not_modified("", 'W/"x"')
        assert not not_modified(None, 'W/"x"')


class TestSummaryCache:
    def test_a_body_is_served_only_for_its_tag(self) -> None:
        cache = SummaryCache()
        cache.put(("status", "a"), "job-1", "t1", b"body", finished=False)
        assert cache.get(("status", "a"), "t1") == b"body"
        assert cache.get(("status", "a"), "t2") is None

    def test_forget_drops_every_entry_of_a_job(self) -> None:
        cache = SummaryCache()
        cache.put(("status", "a"), "job-1", "t", b"1", finished=False)
        cache.put(("failover", "a"), "job-1", "t", b"2", finished=False)
        cache.put(("status", "b"), "job-2", "t", b"3", finished=False)
        cache.forget(["job-1"])
        assert len(cache) == 1
        assert cache.get(("status", "b"), "t") == b"3"

    def test_expired_entries_are_not_served(self) -> None:
        cache = SummaryCache(ttl=0.0)
        cache.put(("status", "a"), "job-1", "t", b"1", finished=False)
        assert cache.get(("status", "a"), "t") is None

    def test_the_oldest_go_first_past_the_limit(self) -> None:
        cache = SummaryCache(max_entries=2)
        for name in "abc":
            cache.put(("status", name), f"job-{name}", "t", name.encode(), finished=True)
        assert len(cache) == 2
        assert cache.get(("status", "a"), "t") is None

    def test_the_change_hub_empties_it(self, url: str, tracker: joblog.Tracker) -> None:
        app = create_app(url)
        try:
            app.state.summaries.put(("status", "x"), "job-9", "t", b"1", finished=True)
            app.state.hub.wake([("j", "job-9")])
            assert len(app.state.summaries) == 0
        finally:
            app.state.store.close()
