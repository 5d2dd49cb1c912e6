"""A job's log in real Chromium: search, trace filter and older pages through the log API,
the NDJSON download, and hostile text shown as text."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, expect

from joblog._ops import InsertEvents

from .conftest import Live, unique_vm

pytestmark = pytest.mark.browser

LONG = 30_000  # ms: generous, the suite may share the machine
TRACE_A = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_B = "0af7651916cd43dd8448eb211c80319c"
MSG = "[data-testid=log-row] .log-msg"
MARKUP = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


def logged_job(live: Live, lines: int = 0, traced: bool = False) -> tuple[str, str]:
    """A finished job with ``lines`` numbered events, a few words to search for, markup,
    and (``traced``) events of two traces; its external ID and internal ID."""
    external = unique_vm("log-job-")
    tracker = live.tracker
    with tracker.job("backup", "nightly", external_job_id=external) as job:
        for n in range(lines):
            tracker.log_event("INFO", f"line {n:03d}")
        tracker.log_event("INFO", "Disk sda is 50% full")
        tracker.log_event("WARN", "disk sdb is 50_ full")
        tracker.log_event("ERROR", MARKUP)
        if traced:
            tracker.flush(10)
            now = datetime.now(UTC)
            rows = [
                (job.id, None, external, "INFO", message, None, now, trace, None)
                for message, trace in [
                    ("request a starts", TRACE_A),
                    ("request b starts", TRACE_B),
                    ("request a ends", TRACE_A),
                ]
            ]
            tracker.store.apply_batch([InsertEvents(rows)])
        tracker.log_event("INFO", "all done")
    tracker.flush(10)
    return external, job.id


def messages(page: Page) -> list[str]:
    return page.locator("[data-testid=log-row]:visible .log-msg").all_text_contents()


def search(page: Page, text: str) -> None:
    page.get_by_test_id("log-search").fill(text)
    page.get_by_test_id("log-search").press("Enter")


def set_search(page: Page, script_value: str) -> None:
    """Put text a keyboard cannot type (NUL, a lone surrogate) in the box, and submit."""
    page.evaluate(
        "(value) => { const box = document.querySelector('[data-testid=log-search]');"
        " box.value = value; box.form.requestSubmit(); }",
        script_value,
    )


class TestSearch:
    def test_finds_matching_lines_in_any_case_and_puts_them_in_the_url(
        self, live: Live, page: Page
    ) -> None:
        external, _ = logged_job(live, lines=30)
        page.goto(f"{live.url}/jobs/{external}")
        with page.expect_request(lambda r: "contains=DISK" in r.url and "/logs?" in r.url):
            search(page, "DISK")
        expect(page.locator("[data-testid=log-row]")).to_have_count(2)
        assert messages(page) == ["Disk sda is 50% full", "disk sdb is 50_ full"]
        assert parse_qs(urlparse(page.url).query) == {"contains": ["DISK"]}
        search(page, "")  # the newest page again: all 34 events, fewer than a page
        expect(page.locator("[data-testid=log-row]")).to_have_count(34)

    def test_percent_and_underscore_are_literal(self, live: Live, page: Page) -> None:
        external, _ = logged_job(live)
        page.goto(f"{live.url}/jobs/{external}")
        search(page, "50%")
        expect(page.locator("[data-testid=log-row]")).to_have_count(1)
        assert messages(page) == ["Disk sda is 50% full"]
        search(page, "50_")
        expect(page.locator(MSG)).to_have_text(["disk sdb is 50_ full"])

    def test_markup_in_the_log_and_the_search_is_text(self, live: Live, page: Page) -> None:
        external, _ = logged_job(live)
        page.goto(f"{live.url}/jobs/{external}")
        search(page, "<script>")
        expect(page.locator("[data-testid=log-row]")).to_have_count(1)
        assert messages(page) == [MARKUP]
        expect(page.get_by_test_id("log-search")).to_have_value("<script>")
        page.reload()  # the same search, rendered by the server from the URL
        expect(page.locator("[data-testid=log-row]")).to_have_count(1)
        assert messages(page) == [MARKUP]
        assert page.evaluate("window.__pwned") is None
        assert (
            page.locator("[data-testid=log-tail] img, [data-testid=log-tail] script").count() == 0
        )

    @pytest.mark.parametrize(
        ("text", "says"),
        [
            ("a\x00b", "contains:"),
            ("x" * 300, "at most 255 characters"),
            ("\ud800", "unpaired surrogate"),
        ],
        ids=["nul", "too-long", "lone-surrogate"],
    )
    def test_unusable_text_gets_a_message_and_keeps_the_log(
        self, live: Live, page: Page, text: str, says: str
    ) -> None:
        external, _ = logged_job(live)
        page.goto(f"{live.url}/jobs/{external}")
        before = messages(page)
        # JSON escapes reach the page as the very characters (a lone surrogate included).
        set_search(page, text)
        expect(page.get_by_test_id("log-notice")).to_contain_text(says)
        assert messages(page) == before
        search(page, "disk")  # and the box still works
        expect(page.locator("[data-testid=log-row]")).to_have_count(2)
        expect(page.get_by_test_id("log-notice")).to_be_hidden()

    def test_live_lines_follow_the_search(self, live: Live, page: Page) -> None:
        external = unique_vm("log-live-")
        started, go = threading.Event(), threading.Event()

        def producer() -> None:
            with live.tracker.job("backup", "nightly", external_job_id=external):
                live.tracker.log_event("INFO", "needle one")
                started.set()
                go.wait(30)
                live.tracker.log_event("INFO", "haystack")
                live.tracker.log_event("INFO", "NEEDLE two")
                live.tracker.flush(10)
                go.wait(30)

        thread = threading.Thread(target=producer, daemon=True)
        thread.start()
        live.threads.append(thread)
        assert started.wait(15)
        live.wait_for_job(external)
        page.goto(f"{live.url}/jobs/{external}")
        search(page, "needle")
        expect(page.locator(MSG)).to_have_text(["needle one"])
        go.set()
        expect(page.locator(MSG)).to_have_text(["needle one", "NEEDLE two"], timeout=LONG)
        expect(page.get_by_test_id("job-status")).to_have_text("completed", timeout=LONG)
        assert "haystack" not in messages(page)


class TestOlderPages:
    def test_older_events_load_a_page_at_a_time_in_order(self, live: Live, page: Page) -> None:
        external, _ = logged_job(live, lines=230)  # 234 events in all
        page.goto(f"{live.url}/jobs/{external}")
        rows = page.locator("[data-testid=log-row]")
        expect(rows).to_have_count(20)
        older = page.get_by_test_id("log-older")
        for count in (120, 220, 234):
            older.click()
            expect(rows).to_have_count(count)
        expect(older).to_be_hidden()
        shown = messages(page)
        assert shown[:230] == [f"line {n:03d}" for n in range(230)]
        assert shown[-1] == "all done"
        ids = page.locator("[data-testid=log-row]").evaluate_all(
            "(rows) => rows.map((row) => Number(row.dataset.eventId))"
        )
        assert ids == sorted(ids) and len(set(ids)) == len(ids)

    def test_older_pages_keep_the_search(self, live: Live, page: Page) -> None:
        external, _ = logged_job(live, lines=150)
        page.goto(f"{live.url}/jobs/{external}?contains=line%200")
        rows = page.locator("[data-testid=log-row]")
        expect(rows).to_have_count(100)  # line 000..099 match "line 0"
        expect(page.get_by_test_id("log-older")).to_be_hidden()
        search(page, "line 1")
        expect(rows).to_have_count(50)  # line 100..149
        assert messages(page)[0] == "line 100"


class TestDownload:
    def test_downloads_the_whole_log_as_ndjson(self, live: Live, page: Page) -> None:
        external, job_id = logged_job(live, lines=5)
        page.goto(f"{live.url}/jobs/{external}")
        with page.expect_download() as download:
            page.get_by_test_id("log-download").click()
        assert download.value.suggested_filename == f"joblog-{job_id}.ndjson"
        lines = pathlines(download.value.path())
        assert len(lines) == 9 and '"message":"line 000"' in lines[0]

    def test_the_link_follows_the_search(self, live: Live, page: Page) -> None:
        external, _ = logged_job(live)
        page.goto(f"{live.url}/jobs/{external}")
        search(page, "disk")
        link = page.get_by_test_id("log-download")
        expect(link).to_have_text("Download matches (NDJSON)")
        with page.expect_download() as download:
            link.click()
        assert len(pathlines(download.value.path())) == 2


def pathlines(path: object) -> list[str]:
    with open(str(path), encoding="utf-8") as file:
        return file.read().splitlines()


class TestTraceFilter:
    def test_clicking_a_trace_shows_only_its_events(self, live: Live, page: Page) -> None:
        external, _ = logged_job(live, traced=True)
        page.goto(f"{live.url}/jobs/{external}")
        traced = page.locator("[data-testid=log-row]", has_text="request a starts")
        traced.get_by_test_id("log-trace").click()
        expect(page.locator(MSG)).to_have_text(["request a starts", "request a ends"])
        expect(page.get_by_test_id("trace-filter-id")).to_have_text(TRACE_A)
        assert parse_qs(urlparse(page.url).query) == {"trace_id": [TRACE_A]}
        page.get_by_test_id("trace-filter-clear").click()
        expect(page.get_by_test_id("trace-filter")).to_be_hidden()
        expect(page.locator("[data-testid=log-row]", has_text="request b starts")).to_be_visible()
        assert urlparse(page.url).query == ""

    def test_a_trace_link_works_without_javascript(self, live: Live, browser: object) -> None:
        from playwright.sync_api import Browser

        assert isinstance(browser, Browser)
        external, _ = logged_job(live, traced=True)
        context = browser.new_context(java_script_enabled=False)
        try:
            page = context.new_page()
            page.goto(f"{live.url}/jobs/{external}")
            row = page.locator("[data-testid=log-row]", has_text="request b starts")
            row.get_by_test_id("log-trace").click()
            expect(page.locator(MSG)).to_have_text(["request b starts"])
        finally:
            context.close()
