"""The dashboard in real Chromium: the list, a job watched live to 100%, a failure, 404s."""

from __future__ import annotations

import os
import pathlib
import threading

import pytest
from playwright.sync_api import Page, expect

from joblog.demo import FAILOVER_STEPS, Scenario, insert_legacy_rows

from .conftest import Live, unique_vm

pytestmark = pytest.mark.browser

LONG = 30_000  # ms: generous, the suite may share the machine

ALL_STEPS_COMPLETED = (
    "() => { const steps = [...document.querySelectorAll('[data-testid=step]')];"
    f" return steps.length === {len(FAILOVER_STEPS)}"
    " && steps.every((s) => s.dataset.status === 'completed'); }"
)


def finished_failover(live: Live, **kwargs: object) -> Scenario:
    scenario = Scenario(vm=unique_vm(str(kwargs.pop("vm", "web-"))), **kwargs)  # type: ignore[arg-type]
    live.run_failover(scenario, speed=60).join(30)
    live.tracker.flush(5)
    return scenario


class TestJobsList:
    def test_lists_jobs_with_links_to_their_pages(self, live: Live, page: Page) -> None:
        scenario = finished_failover(live, vm="web-")
        page.goto(live.url + "/")
        row = page.locator("[data-testid=job-row]", has_text=scenario.external_job_id)
        expect(row).to_be_visible()
        expect(row.locator("[data-testid=row-status]")).to_have_text("completed")
        row.get_by_role("link", name=scenario.external_job_id).click()
        expect(page.get_by_test_id("job-title")).to_have_text(scenario.external_job_id)

    def test_new_job_appears_without_reload(self, live: Live, page: Page) -> None:
        page.goto(live.url + "/")
        page.evaluate("window.__notReloaded = true")
        scenario = finished_failover(live, vm="mail-gw")
        row = page.locator("[data-testid=job-row]", has_text=scenario.external_job_id)
        expect(row).to_be_visible(timeout=LONG)
        assert page.evaluate("window.__notReloaded") is True

    def test_full_id_in_search_opens_the_job(self, live: Live, page: Page) -> None:
        scenario = finished_failover(live, vm="erp-")
        page.goto(live.url + "/")
        page.get_by_test_id("search").fill(scenario.external_job_id)
        page.get_by_test_id("search").press("Enter")
        expect(page.get_by_test_id("job-title")).to_have_text(scenario.external_job_id)


class TestJobPage:
    def test_running_job_reaches_100_percent_live(self, live: Live, page: Page) -> None:
        gate = threading.Event()
        scenario = Scenario(vm=unique_vm("pgtest"), kind="live")
        live.run_failover(scenario, gates={"validation": gate})
        live.wait_for_job(scenario.external_job_id)
        page.goto(live.url + "/jobs/" + scenario.external_job_id)
        expect(page.get_by_test_id("job-status")).to_have_text("running")
        page.evaluate("window.__notReloaded = true")
        gate.set()
        expect(page.get_by_test_id("progress-percent")).to_have_text("100%", timeout=LONG)
        page.wait_for_function(ALL_STEPS_COMPLETED, timeout=LONG)
        expect(page.get_by_test_id("job-status")).to_have_text("completed")
        expect(page.get_by_test_id("eta")).to_have_text("done")
        expect(page.get_by_test_id("children").locator("[data-testid=child]")).to_have_count(2)
        expect(page.get_by_test_id("log-tail")).to_contain_text("GUI status updated")
        assert page.evaluate("window.__notReloaded") is True

    def test_failure_shows_a_readable_error_and_the_raw_text_behind_a_click(
        self, live: Live, page: Page
    ) -> None:
        gate = threading.Event()
        scenario = Scenario(vm=unique_vm("db-"), kind="test", fail_at="snapshot")
        live.run_failover(scenario, gates={"validation": gate})
        live.wait_for_job(scenario.external_job_id)
        page.goto(live.url + "/jobs/" + scenario.external_job_id)
        gate.set()
        readable = page.get_by_test_id("error-readable")
        expect(readable).to_have_text(
            "The job failed during step snapshot. The step took too long and was stopped.",
            timeout=LONG,
        )
        raw = page.get_by_test_id("error-raw")
        expect(raw).to_be_hidden()
        page.get_by_test_id("error-raw-toggle").click()
        expect(raw).to_be_visible()
        expect(raw).to_contain_text("TimeoutError")

    def test_failed_job_rendered_by_the_server_reads_the_same(self, live: Live, page: Page) -> None:
        scenario = finished_failover(live, vm="app-", fail_at="vm-creation")
        page.goto(live.url + "/jobs/" + scenario.external_job_id)
        expect(page.get_by_test_id("error-readable")).to_have_text(
            "The job failed during step vm-creation. A service could not be reached."
        )

    def test_level_filter_hides_lower_levels(self, live: Live, page: Page) -> None:
        scenario = finished_failover(live, vm="web-")
        page.goto(live.url + "/jobs/" + scenario.external_job_id)
        info_rows = page.locator("[data-testid=log-row][data-level=INFO]")
        expect(info_rows.first).to_be_visible()
        page.get_by_test_id("level-WARN").click()
        expect(page.get_by_test_id("level-WARN")).to_have_attribute("aria-pressed", "true")
        expect(info_rows.first).to_be_hidden()

    def test_internal_id_opens_the_same_job(self, live: Live, page: Page) -> None:
        scenario = finished_failover(live, vm="web-")
        job = live.wait_for_job(scenario.external_job_id)
        page.goto(live.url + "/jobs/" + job.id)
        expect(page.get_by_test_id("job-title")).to_have_text(scenario.external_job_id)
        expect(page.get_by_test_id("resolved-by")).to_have_attribute("data-value", "job_id")

    def test_legacy_failover_id_opens_with_its_phases(self, live: Live, page: Page) -> None:
        legacy_id = insert_legacy_rows(live.tracker)[-1]
        page.goto(live.url + "/jobs/" + legacy_id)
        expect(page.get_by_test_id("legacy-note")).to_contain_text("failover_jobs")
        expect(page.get_by_test_id("step")).to_have_count(5)
        expect(page.get_by_test_id("resolved-by")).to_have_attribute("data-value", "failover_jobs")

    def test_unknown_id_gets_the_not_found_page(self, live: Live, page: Page) -> None:
        response = page.goto(live.url + "/jobs/unified-live-failover-nosuchvm-1")
        assert response is not None and response.status == 404
        expect(page.get_by_test_id("not-found")).to_contain_text("Job not found")
        expect(page.get_by_test_id("not-found-search")).to_have_value(
            "unified-live-failover-nosuchvm-1"
        )


class TestScreenshot:
    def test_saves_a_job_page_mid_failover(
        self, live: Live, page: Page, tmp_path: pathlib.Path
    ) -> None:
        """A live failover paused at its ninth step, as the README shows. The picture goes
        to a temporary file; ``make screenshot`` (JOBLOG_SCREENSHOT=docs/dashboard.png)
        refreshes the README's, so that ``make test`` never changes a tracked file."""
        target = pathlib.Path(os.environ.get("JOBLOG_SCREENSHOT") or tmp_path / "dashboard.png")
        gate = threading.Event()
        scenario = Scenario(vm="pgtest2", kind="live", disks=2, seed=1758553933)
        live.run_failover(scenario, gates={"vm-startup-and-validation": gate}, speed=4)
        try:
            live.wait_for_job(scenario.external_job_id)
            page.goto(live.url + "/jobs/" + scenario.external_job_id)
            expect(page.locator("[data-testid=step][data-status=completed]")).to_have_count(
                8, timeout=LONG
            )
            page.wait_for_timeout(1200)  # let the tail and the timers settle
            target.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(target))
        finally:
            gate.set()
        assert target.stat().st_size > 10_000
