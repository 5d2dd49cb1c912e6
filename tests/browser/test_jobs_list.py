"""The jobs list in real Chromium: pages past the newest 50, sort, owner, context and
creation-time filters (each test's jobs have an owner of their own, so tests never see
each other's jobs)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from .conftest import Live

pytestmark = pytest.mark.browser

ROWS = "[data-testid=job-row]"
LINKS = "[data-testid=job-row] [data-testid=job-link]"


def jobs_of(live: Live, count: int, owner: str, **fields: str) -> list[str]:
    """``count`` finished jobs of ``owner``, oldest first: their external IDs."""
    names = []
    for n in range(count):
        name = f"{owner}-{n:02d}"
        live.tracker.start_job(
            "backup", "nightly", external_job_id=name, owner=owner, **fields
        ).complete()
        names.append(name)
    live.tracker.flush(10)
    return names


def owner() -> str:
    return f"owner-{uuid.uuid4().hex[:8]}"


class TestPaging:
    def test_next_page_goes_past_the_newest_50_and_back(self, live: Live, page: Page) -> None:
        mine = owner()
        names = jobs_of(live, 53, mine)
        page.goto(f"{live.url}/?owner={mine}")
        expect(page.locator(ROWS)).to_have_count(50)
        expect(page.locator(LINKS).first).to_have_text(names[-1])
        page.get_by_test_id("next-page").click()
        expect(page.locator(LINKS)).to_have_text(names[2::-1])
        expect(page.get_by_test_id("next-page")).to_be_hidden()
        page.get_by_test_id("first-page").click()
        expect(page.locator(ROWS)).to_have_count(50)
        expect(page.locator(LINKS).first).to_have_text(names[-1])

    def test_oldest_first(self, live: Live, page: Page) -> None:
        mine = owner()
        names = jobs_of(live, 3, mine)
        page.goto(f"{live.url}/?owner={mine}")
        expect(page.locator(LINKS)).to_have_text(names[::-1])
        page.get_by_test_id("sort").select_option("oldest")  # applies at once
        expect(page.locator(LINKS)).to_have_text(names)
        assert "sort=oldest" in page.url


class TestFilters:
    def test_owner_and_context(self, live: Live, page: Page) -> None:
        mine, theirs = owner(), owner()
        one = jobs_of(live, 2, mine, context_id=f"{mine}-vm-a")
        two = jobs_of(live, 1, mine, context_id=f"{mine}-vm-b")
        jobs_of(live, 2, theirs)
        page.goto(f"{live.url}/")
        page.get_by_test_id("owner-filter").fill(mine)
        page.get_by_role("button", name="Apply").click()
        expect(page.locator(LINKS)).to_have_text([*two, *one[::-1]])
        page.get_by_test_id("context-filter").fill(f"{mine}-vm-a")
        page.get_by_role("button", name="Apply").click()
        expect(page.locator(LINKS)).to_have_text(one[::-1])
        page.get_by_test_id("clear-filters").click()
        expect(page.get_by_test_id("owner-filter")).to_have_value("")

    def test_creation_time_range(self, live: Live, page: Page) -> None:
        mine = owner()
        before = jobs_of(live, 1, mine)
        between = datetime.now(UTC).isoformat()
        after = jobs_of(live, 1, mine)
        page.goto(f"{live.url}/?owner={mine}&since={quote(between)}")
        expect(page.locator(LINKS)).to_have_text(after)
        page.goto(f"{live.url}/?owner={mine}&until={quote(between)}")
        expect(page.locator(LINKS)).to_have_text(before)
        expect(page.get_by_test_id("until-filter")).to_have_value(between[:16])

    def test_a_new_job_appears_only_where_the_filter_takes_it(self, live: Live, page: Page) -> None:
        mine = owner()
        jobs_of(live, 1, mine)
        page.goto(f"{live.url}/?owner={mine}")
        expect(page.locator(ROWS)).to_have_count(1)
        newer = jobs_of(live, 1, mine, context_id="late")
        jobs_of(live, 1, owner())
        expect(page.locator(LINKS).first).to_have_text(newer[0], timeout=30_000)
        expect(page.locator(ROWS)).to_have_count(2)

    def test_an_unusable_time_is_a_clear_page(self, live: Live, page: Page) -> None:
        response = page.goto(f"{live.url}/?since=last-tuesday")
        assert response is not None and response.status == 422
        expect(page.get_by_test_id("problem")).to_contain_text("since")
