"""The dashboard's pages over HTTP: resolution, 404s, escaping, search, filters, static files."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import markupsafe
import pytest

from joblog._ops import InsertEvents
from joblog.api.app import create_app
from joblog.demo import insert_failover_job
from joblog.tracker import Tracker
from tests.support.api import ApiClient, api_client

HOSTILE = '<script>alert("x")</script>'


@pytest.fixture
def client(tracker: Tracker, database_url: str) -> Iterator[ApiClient]:
    with api_client(create_app(database_url)) as client:
        yield client


def finished_job(tracker: Tracker, external_job_id: str, **kwargs: object) -> str:
    with tracker.job("failover", "live-failover", external_job_id=external_job_id, **kwargs) as job:
        with job.step("validation"):
            pass
    tracker.flush(10)
    return job.id


class TestJobPage:
    def test_external_id_renders_the_job(self, tracker: Tracker, client: ApiClient) -> None:
        finished_job(tracker, "unified-live-failover-pgtest2-1758553933")
        response = client.get("/jobs/unified-live-failover-pgtest2-1758553933")
        assert response.status_code == 200
        assert 'data-testid="job-title">unified-live-failover-pgtest2-1758553933<' in response.text

    def test_unknown_id_is_a_404_page_with_a_search_box(self, client: ApiClient) -> None:
        response = client.get("/jobs/nope-123")
        assert response.status_code == 404
        assert "Job not found" in response.text
        assert 'data-testid="not-found-search"' in response.text

    def test_legacy_id_shows_the_legacy_note(self, tracker: Tracker, client: ApiClient) -> None:
        insert_failover_job(tracker.store, job_id="legacy-42", status="snapshotting")
        response = client.get("/jobs/legacy-42")
        assert response.status_code == 200
        assert 'data-testid="legacy-note"' in response.text

    def test_producer_text_is_escaped(self, tracker: Tracker, client: ApiClient) -> None:
        with tracker.job("failover", "live-failover", external_job_id=HOSTILE, owner=HOSTILE):
            tracker.log_event("INFO", HOSTILE, {"vm": HOSTILE})
        tracker.flush(10)
        text = client.get("/jobs/" + HOSTILE).text
        assert HOSTILE not in text
        assert "&lt;script&gt;" in text

    def test_failed_job_shows_the_readable_error(self, tracker: Tracker, client: ApiClient) -> None:
        with (
            pytest.raises(ConnectionRefusedError),
            tracker.job("failover", "live-failover", external_job_id="f-1") as job,
            job.step("vm-creation"),
        ):
            raise ConnectionRefusedError("[Errno 111] Connection refused")
        tracker.flush(10)
        text = client.get("/jobs/f-1").text
        assert "The job failed during step vm-creation. A service could not be reached." in text


class TestJobsList:
    def test_full_id_in_search_redirects_to_the_job(
        self, tracker: Tracker, client: ApiClient
    ) -> None:
        finished_job(tracker, "unified-test-failover-web-01-1")
        response = client.get("/", params={"q": "unified-test-failover-web-01-1"})
        assert response.status_code == 303
        assert response.headers["location"] == "/jobs/unified-test-failover-web-01-1"

    def test_prefix_search_filters_the_list(self, tracker: Tracker, client: ApiClient) -> None:
        finished_job(tracker, "unified-test-failover-web-01-1")
        finished_job(tracker, "rollback-test-failover-web-01-2")
        text = client.get("/", params={"q": "rollback-"}).text
        assert "rollback-test-failover-web-01-2" in text
        assert "unified-test-failover-web-01-1" not in text.split("<tbody")[1]

    def test_child_jobs_are_listed_only_when_asked(
        self, tracker: Tracker, client: ApiClient
    ) -> None:
        with tracker.job("failover", "live-failover", external_job_id="parent-1") as job:
            with job.child("volume-attachment", "attach-volume", external_job_id="child-1"):
                pass
        tracker.flush(10)
        assert "child-1" not in client.get("/").text
        assert "child-1" in client.get("/", params={"children": "1"}).text

    def test_unknown_status_is_a_422_page_naming_the_statuses(self, client: ApiClient) -> None:
        response = client.get("/", params={"status": "exploded"})
        assert response.status_code == 422
        assert "Unknown status" in response.text
        assert "pending, running, completed, failed, cancelled" in response.text

    @pytest.mark.parametrize("value", ["yes", "true", "2"])
    def test_unknown_children_value_is_a_422_page(self, client: ApiClient, value: str) -> None:
        response = client.get("/", params={"children": value})
        assert response.status_code == 422
        assert "children=1" in response.text


class TestStaticFiles:
    def test_serves_an_allowed_file(self, client: ApiClient) -> None:
        response = client.get("/static/app.css")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/css")

    @pytest.mark.parametrize("name", ["pages.py", "..%2Fpages.py", "nope.js"])
    def test_refuses_anything_else(self, client: ApiClient, name: str) -> None:
        assert client.get("/static/" + name).status_code == 404


@pytest.mark.parametrize("query", ["q=a%00b", "job_type=%00", "q=%ED%A0%80x%00", "q=%ff"])
def test_unusable_searches_are_422_on_every_backend(database_url: str, query: str) -> None:
    with api_client(create_app(database_url)) as client:
        response = client.get(f"/?{query}")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "Unusable search" in response.text


class TestListPaging:
    def test_pages_follow_the_api_cursor(self, tracker: Tracker, client: ApiClient) -> None:
        for n in range(52):
            tracker.start_job("backup", "nightly", external_job_id=f"page-job-{n:02d}").complete()
        tracker.flush(10)
        first = client.get("/").text
        assert 'data-testid="next-page"' in first and "page-job-51" in first
        assert "page-job-01" not in first.split("<tbody")[1]
        oldest = client.get("/", params={"sort": "oldest"}).text.split("<tbody")[1]
        assert oldest.index("page-job-00") < oldest.index("page-job-01")

    @pytest.mark.parametrize(
        ("query", "status"),
        [("sort=random", 422), ("since=yesterday", 422), ("cursor=@@@", 400)],
    )
    def test_bad_values_are_4xx_pages(self, client: ApiClient, query: str, status: int) -> None:
        response = client.get(f"/?{query}")
        assert response.status_code == status
        assert response.headers["content-type"].startswith("text/html")

    def test_owner_markup_is_escaped(self, tracker: Tracker, client: ApiClient) -> None:
        text = client.get("/", params={"owner": HOSTILE}).text
        assert HOSTILE not in text
        assert "&lt;script&gt;" in text


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="module")
def logged_job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiClient]:
    """A job with 130 events (one of them hostile markup, three in a trace), on SQLite:
    the job page only reads, through the read path the log API shares."""
    url = f"sqlite:///{tmp_path_factory.mktemp('pages') / 'joblog.db'}"
    tracker = Tracker(url, flush_interval=0.05)
    with tracker.job("failover", "live-failover", external_job_id="log-1") as job:
        for n in range(125):
            tracker.log_event("DEBUG" if n % 2 else "INFO", f"line {n:03d} 50% done_{n}")
        tracker.log_event("WARN", HOSTILE)
        rows = [
            (job.id, None, "log-1", "ERROR", f"traced {n}", None, datetime.now(UTC), TRACE, None)
            for n in range(3)
        ]
        tracker.flush(10)
        tracker.store.apply_batch([InsertEvents(rows)])
        tracker.log_event("INFO", "last line")
    tracker.flush(10)
    tracker.close()
    with api_client(create_app(url)) as client:
        yield client


def log_lines(page: str) -> list[str]:
    tail = page.split('data-testid="log-tail"', 1)[1].split("</ol>", 1)[0]
    return re.findall(r'<span class="log-msg">([^<]*)</span>', tail)


class TestJobPageLog:
    def test_unfiltered_shows_the_newest_with_more_to_load(self, logged_job: ApiClient) -> None:
        page = logged_job.get("/jobs/log-1").text
        lines = log_lines(page)
        assert len(lines) == 20 and lines[-1] == "last line"
        assert 'data-more-older="true"' in page

    def test_contains_filters_through_the_read_path(self, logged_job: ApiClient) -> None:
        page = logged_job.get("/jobs/log-1", params={"contains": "DONE_12"}).text
        assert log_lines(page) == [f"line {n:03d} 50% done_{n}" for n in (12, *range(120, 125))]
        assert 'value="DONE_12"' in page and 'data-more-older="false"' in page

    def test_like_wildcards_are_literal(self, logged_job: ApiClient) -> None:
        assert log_lines(logged_job.get("/jobs/log-1", params={"contains": "0%_d"}).text) == []
        page = logged_job.get("/jobs/log-1", params={"contains": "% done_1", "min_level": "INFO"})
        expected = [n for n in (1, *range(10, 20), *range(100, 125)) if n % 2 == 0]
        assert log_lines(page.text) == [f"line {n:03d} 50% done_{n}" for n in expected]

    def test_trace_filter_and_its_clear_link(self, logged_job: ApiClient) -> None:
        page = logged_job.get("/jobs/log-1", params={"trace_id": TRACE.upper()}).text
        assert log_lines(page) == ["traced 0", "traced 1", "traced 2"]
        assert f'data-testid="trace-filter-id">{TRACE}<' in page
        assert f'href="?trace_id={TRACE}"' in page

    def test_a_filtered_page_pages_back_a_hundred_at_a_time(self, logged_job: ApiClient) -> None:
        page = logged_job.get("/jobs/log-1", params={"contains": "line"}).text
        assert len(log_lines(page)) == 100 and 'data-more-older="true"' in page

    def test_markup_in_the_search_and_the_log_is_text(self, logged_job: ApiClient) -> None:
        page = logged_job.get("/jobs/log-1", params={"contains": HOSTILE}).text
        assert HOSTILE not in page
        assert log_lines(page) == [str(markupsafe.escape(HOSTILE))]
        assert 'value="&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"' in page

    @pytest.mark.parametrize(
        ("query", "status"),
        [
            ("contains=" + "x" * 256, 422),
            ("trace_id=xyz", 422),
            ("trace_id=" + "0" * 32, 422),
            ("min_level=LOUD", 422),
            ("contains=a%00b", 422),
            ("contains=%ED%A0%80", 422),
        ],
    )
    def test_unusable_filters_are_422_pages(
        self, logged_job: ApiClient, query: str, status: int
    ) -> None:
        response = logged_job.get(f"/jobs/log-1?{query}")
        assert response.status_code == status
        assert response.headers["content-type"].startswith("text/html")

    def test_the_download_link_is_the_apis_ndjson(self, logged_job: ApiClient) -> None:
        page = logged_job.get("/jobs/log-1").text
        href = re.search(r'href="([^"]+)" download data-testid="log-download"', page)
        assert href is not None and href.group(1).endswith("/logs?format=ndjson")
        response = logged_job.get(html.unescape(href.group(1)))
        assert len(response.text.splitlines()) == 130
        assert response.headers["content-disposition"].startswith("attachment; filename=")
