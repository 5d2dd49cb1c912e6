"""/docs in Chromium with every request off this machine refused: Swagger UI loads from
joblog itself, renders the API, runs a call, and its policy refuses nothing it needs."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import Live

pytestmark = pytest.mark.browser

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def test_docs_work_offline(live: Live, page: object) -> None:
    from playwright.sync_api import Page, Route, expect

    assert isinstance(page, Page)
    refused: list[str] = []
    local: list[str] = []

    def offline(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOCAL_HOSTS:
            local.append(url)
            route.continue_()
        else:
            refused.append(url)
            route.abort("internetdisconnected")

    page.context.route("**/*", offline)
    page.goto(f"{live.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("joblog")
    operation = page.locator("#operations-jobs-list_jobs_api_v1_jobs_get")
    expect(operation).to_be_visible()
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    live_status = operation.locator(".live-responses-table tbody .response-col_status")
    expect(live_status).to_have_text("200")
    assert refused == []
    assert any(url.endswith("/docs/assets/swagger-ui-bundle.js") for url in local)
    assert any(url.endswith("/openapi.json") for url in local)
