"""Fixtures for the browser tests: a real server on a fresh SQLite database, real Chromium.

Debian's ``chromium`` is driven by Playwright through ``executable_path`` (Playwright's own
browser download is never used). Without it the tests skip, and fail under ``CI=true``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from joblog.demo import Scenario, Workload
from joblog.exceptions import JobNotFound
from joblog.handles import JobHandle
from joblog.model import Job
from joblog.tracker import Tracker
from joblog.web.server import BackgroundServer

CHROMIUM = os.environ.get("JOBLOG_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: Fast enough for the suite, slow enough that a person-visible sequence happens.
SPEED = 8.0

_VM_NUMBERS = itertools.count(1)


def _chromium_or_skip() -> str:
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if path is None:
        reason = f"Chromium not found at {CHROMIUM} (install Debian's chromium)"
        if IN_CI:
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    return path


@dataclass
class Live:
    """The running server and the tracker that feeds its database."""

    url: str
    tracker: Tracker
    threads: list[threading.Thread] = field(default_factory=list)

    def run_failover(
        self,
        scenario: Scenario,
        *,
        gates: dict[str, threading.Event] | None = None,
        speed: float = SPEED,
    ) -> threading.Thread:
        """Run a failover in a thread; it waits at each step named in ``gates`` until set."""
        waits = dict(gates or {})

        def on_step(_job: JobHandle, name: str) -> None:
            gate = waits.pop(name, None)
            if gate is not None:
                gate.wait(60)

        workload = Workload(self.tracker, speed=speed, on_step=on_step)
        thread = threading.Thread(target=workload.failover, args=(scenario,), daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    def wait_for_job(self, external_job_id: str, timeout: float = 15.0) -> Job:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.tracker.flush(5)
            try:
                return self.tracker.resolve(external_job_id).job
            except JobNotFound:
                pass
            time.sleep(0.05)
        raise AssertionError(f"job {external_job_id} never appeared")


# One for the browser package's modules, torn down before any other package's tests run
# (Playwright's sync API holds an event loop while it lives).
@pytest.fixture(scope="package")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from joblog.api.app import create_app

    database = tmp_path_factory.mktemp("browser") / "joblog.db"
    tracker = Tracker(f"sqlite:///{database}", unattributed="drop", flush_interval=0.05)
    tracker.install_logging()
    app = create_app(store=tracker.store)
    app.state.tracker = tracker
    server = BackgroundServer(app, "127.0.0.1", 0).start()
    state = Live(server.url, tracker)
    try:
        yield state
    finally:
        for thread in state.threads:
            thread.join(30)
        server.stop()
        tracker.close()


# One for the browser package's modules, torn down before any other package's tests run
# (Playwright's sync API holds an event loop while it lives).
@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    path = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # A script, style or request the Content-Security-Policy refused is a broken page too.
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def unique_vm(base: str) -> str:
    """A VM name unique in this session, so external IDs never collide within a second."""
    return f"{base}{next(_VM_NUMBERS)}"
