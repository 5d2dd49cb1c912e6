"""Sessions and the cancel button in real Chromium, on a server with read and write tokens:
login CSRF from another site, read and write sessions, the cancel request seen live,
two tabs at once, a job that ended first, and signing out for every copy of the cookie."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from joblog.api.app import create_app
from joblog.api.sessions import SESSION_COOKIE
from joblog.api.settings import ApiSettings
from joblog.exceptions import JobCancelled
from joblog.web.server import BackgroundServer

from .conftest import Live, unique_vm

pytestmark = pytest.mark.browser

LONG = 30_000  # ms: generous, the suite may share the machine
WRITE = "write-token-browser-0123456789"
READ = "read-token-browser-0123456789"
REQUESTED = "Cancel requested: waiting for the job to stop."


@pytest.fixture(scope="module")
def guarded(live: Live) -> Iterator[str]:
    """A second server on the same database, with read and write tokens: its URL."""
    settings = ApiSettings(write_tokens=(WRITE,), read_tokens=(READ,), poll_interval=0.1)
    server = BackgroundServer(create_app(store=live.tracker.store, settings=settings)).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A second browser (its own cookies), for a second person or a copied cookie."""
    context = browser.new_context()
    yield context
    context.close()


@dataclass
class RunningJob:
    """A running job; it completes when ``finish`` is set, and, when it honours cancel
    requests, ends cancelled as soon as its producer sees one."""

    external_job_id: str
    finish: threading.Event
    thread: threading.Thread


def running_job(live: Live, *, honour_cancel: bool = True) -> RunningJob:
    external = unique_vm("cancel-me-")
    finish = threading.Event()
    started = threading.Event()

    def producer() -> None:
        # JobCancelled ends the job as cancelled, then leaves the block like any exception.
        with (
            contextlib.suppress(JobCancelled),
            live.tracker.job("backup", "nightly", external_job_id=external) as job,
        ):
            live.tracker.log_event("INFO", "working")
            started.set()
            while not finish.wait(0.1):
                if honour_cancel:
                    job.raise_if_cancel_requested()  # -> JobCancelled: the job ends cancelled

    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    live.threads.append(thread)
    assert started.wait(15)
    live.wait_for_job(external)
    return RunningJob(external, finish, thread)


def sign_in(page: Page, base: str, token: str, target: str) -> None:
    page.goto(f"{base}/login?next={target}")
    page.locator("#token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("session-role")).to_be_visible()


def cancel_status(page: Page, url: str, csrf: str) -> int:
    """What a script on the page gets when it posts a cancel with this CSRF token."""
    status: int = page.evaluate(
        "async ([url, csrf]) => (await fetch(url, {method: 'POST',"
        " headers: {'X-CSRF-Token': csrf}})).status",
        [url, csrf],
    )
    return status


class TestLoginCsrf:
    def test_a_sign_in_sent_from_another_site_fails(self, guarded: str, page: Page) -> None:
        page.goto(f"{guarded}/login")  # the victim has the sign-in form's cookie
        attacker = f"""<!doctype html><form id=f method=post action="{guarded}/login">
            <input name=token value="{READ}"><input name=csrf_token value="guessed">
            <input name=next value="/"></form>
            <script>document.getElementById('f').submit()</script>"""
        page.route(
            "http://attacker.test/**",
            lambda route: route.fulfill(body=attacker, content_type="text/html"),
        )
        page.goto("http://attacker.test/")
        expect(page.get_by_role("alert")).to_contain_text("came from another site", timeout=LONG)
        assert SESSION_COOKIE not in {c["name"] for c in page.context.cookies()}

    def test_the_servers_own_form_signs_in(self, guarded: str, page: Page) -> None:
        sign_in(page, guarded, READ, "/")
        expect(page.get_by_test_id("session-role")).to_have_text("Signed in: read")


class TestCancel:
    def test_a_read_session_is_offered_a_write_sign_in_and_cannot_cancel(
        self, live: Live, guarded: str, page: Page
    ) -> None:
        job = running_job(live)
        try:
            sign_in(page, guarded, READ, f"/jobs/{job.external_job_id}")
            expect(page.get_by_test_id("cancel-sign-in")).to_be_visible()
            expect(page.get_by_test_id("cancel-button")).to_have_count(0)
            csrf = page.get_by_test_id("job-page").get_attribute("data-csrf")
            assert csrf
            url = f"/api/v1/jobs/{job.external_job_id}/cancel"
            assert cancel_status(page, url, csrf) == 403
            assert live.tracker.resolve(job.external_job_id).job.cancel_requested is False
        finally:
            job.finish.set()

    def test_a_write_session_cancels_and_every_open_page_sees_it_land(
        self, live: Live, guarded: str, page: Page, context: BrowserContext
    ) -> None:
        job = running_job(live)
        target = f"/jobs/{job.external_job_id}"
        watcher = context.new_page()
        sign_in(watcher, guarded, READ, target)
        sign_in(page, guarded, WRITE, target)
        expect(page.get_by_test_id("job-status")).to_have_text("running")
        page.get_by_test_id("cancel-button").click()
        expect(page.get_by_test_id("cancel-confirm")).to_be_visible()
        page.get_by_test_id("cancel-no").click()  # changed their mind: nothing is sent
        expect(page.get_by_test_id("cancel-confirm")).to_be_hidden()
        assert live.tracker.resolve(job.external_job_id).job.cancel_requested is False
        page.get_by_test_id("cancel-button").click()
        page.get_by_test_id("cancel-yes").click()
        expect(page.get_by_test_id("cancel-state")).to_have_text(REQUESTED)
        expect(page.get_by_test_id("cancel-button")).to_be_hidden()
        # The producer sees the request and stops; both pages follow it live.
        for viewer in (watcher, page):
            expect(viewer.get_by_test_id("job-status")).to_have_text("cancelled", timeout=LONG)
            expect(viewer.get_by_test_id("cancel-box")).to_be_hidden()

    def test_the_request_shows_on_another_page_before_the_job_stops(
        self, live: Live, guarded: str, page: Page, context: BrowserContext
    ) -> None:
        job = running_job(live, honour_cancel=False)
        target = f"/jobs/{job.external_job_id}"
        try:
            sign_in(page, guarded, READ, target)
            expect(page.get_by_test_id("cancel-state")).to_have_text("")
            other = context.new_page()
            sign_in(other, guarded, WRITE, target)
            other.get_by_test_id("cancel-button").click()
            other.get_by_test_id("cancel-yes").click()
            expect(page.get_by_test_id("cancel-state")).to_have_text(REQUESTED, timeout=LONG)
            expect(page.get_by_test_id("job-status")).to_have_text("running")
        finally:
            job.finish.set()
        expect(page.get_by_test_id("job-status")).to_have_text("completed", timeout=LONG)
        expect(page.get_by_test_id("cancel-box")).to_be_hidden()

    def test_two_tabs_cancelling_at_once_both_land(
        self, live: Live, guarded: str, page: Page
    ) -> None:
        job = running_job(live, honour_cancel=False)
        target = f"/jobs/{job.external_job_id}"
        try:
            sign_in(page, guarded, WRITE, target)
            second = page.context.new_page()
            second.goto(guarded + target)
            for tab in (page, second):
                tab.get_by_test_id("cancel-button").click()
            # Both clicks go out before either page can hear of the other's.
            click = "document.querySelector('[data-testid=cancel-yes]').click()"
            page.evaluate(click)
            second.evaluate(click)
            for tab in (page, second):
                expect(tab.get_by_test_id("cancel-state")).to_have_text(REQUESTED)
            assert live.tracker.resolve(job.external_job_id).job.cancel_requested is True
        finally:
            job.finish.set()

    def test_a_job_that_ended_first_is_explained(
        self, live: Live, guarded: str, page: Page
    ) -> None:
        job = running_job(live)
        # The page hears nothing after it loads: it still shows a running job at the click.
        page.route("**/stream", lambda route: route.abort())
        page.route("**/api/v1/jobs/*-*-*-*-*", lambda route: route.abort())
        sign_in(page, guarded, WRITE, f"/jobs/{job.external_job_id}")
        job.finish.set()
        job.thread.join(30)
        live.tracker.flush(5)
        page.get_by_test_id("cancel-button").click()
        page.get_by_test_id("cancel-yes").click()
        expect(page.get_by_test_id("cancel-state")).to_have_text("The job has already ended.")
        expect(page.get_by_test_id("job-status")).to_have_text("running")


class TestSignOut:
    def test_get_logout_signs_nobody_out(self, guarded: str, page: Page) -> None:
        sign_in(page, guarded, READ, "/")
        response = page.goto(f"{guarded}/logout")
        assert response is not None and response.status == 405
        page.goto(f"{guarded}/")
        expect(page.get_by_test_id("session-role")).to_be_visible()

    def test_sign_out_ends_the_session_for_a_copied_cookie(
        self, guarded: str, page: Page, context: BrowserContext
    ) -> None:
        sign_in(page, guarded, READ, "/")
        copied = [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
        assert copied
        context.add_cookies(copied)  # e.g. stolen, or a second machine
        thief = context.new_page()
        thief.goto(f"{guarded}/")
        expect(thief.get_by_test_id("session-role")).to_be_visible()
        page.get_by_test_id("sign-out").click()
        expect(page.locator("#token")).to_be_visible()  # back at the sign-in form
        thief.goto(f"{guarded}/")
        expect(thief.locator("#token")).to_be_visible()
        assert "/login?next=" in thief.url
