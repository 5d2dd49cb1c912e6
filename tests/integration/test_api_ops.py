"""/healthz, the OpenAPI document, and answers while the database is away."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from joblog.api.app import create_app
from joblog.storage.store import Store
from tests.conftest import BACKENDS
from tests.support.api import ApiClient, api_client, backend_database

#: Nothing listens on port 1: every connection is refused at once.
UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"


@pytest.fixture(scope="module", params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from backend_database(request, tmp_path_factory)


@pytest.fixture
def api(url: str) -> Iterator[ApiClient]:
    """A fresh app (fresh metrics) on the module's database."""
    with api_client(create_app(url)) as client:
        yield client


@pytest.fixture
def api_without_database() -> Iterator[ApiClient]:
    store = Store(UNREACHABLE, auto_migrate=False)
    with api_client(create_app(store=store)) as client:
        yield client


class TestHealth:
    def test_ok_when_the_database_answers(self, api: ApiClient) -> None:
        response = api.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok"}

    def test_503_when_it_does_not(self, api_without_database: ApiClient) -> None:
        response = api_without_database.get("/healthz")
        assert response.status_code == 503
        body = response.json()
        assert (body["status"], body["database"]) == ("error", "unavailable")
        assert body["detail"]


class TestDatabaseAway:
    @pytest.mark.parametrize(
        "path", ["/api/v1/jobs/x", "/api/v1/jobs", "/api/v1/jobs/x/logs", "/api/v1/jobs/x/stream"]
    )
    def test_is_503_json(self, api_without_database: ApiClient, path: str) -> None:
        response = api_without_database.get(path)
        assert response.status_code == 503
        assert response.json() == {"error": "database_unavailable"}


class TestDocumentsAndErrors:
    def test_openapi_lists_every_route(self, api: ApiClient) -> None:
        paths = api.get("/openapi.json").json()["paths"]
        for path in (
            "/api/v1/jobs",
            "/api/v1/jobs/{any_id}",
            "/api/v1/jobs/{any_id}/logs",
            "/api/v1/jobs/{any_id}/stream",
            "/api/v1/failover/{job_id}/status",
            "/healthz",
            "/metrics",
        ):
            assert path in paths, path

    def test_interactive_docs(self, api: ApiClient) -> None:
        response = api.get("/docs")
        assert response.status_code == 200
        assert "swagger" in response.text.lower()

    def test_unknown_api_route_is_json_404(self, api: ApiClient) -> None:
        response = api.get("/api/v2/nothing")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"

    def test_wrong_method_is_json_405(self, api: ApiClient) -> None:
        response = api.request("DELETE", "/api/v1/jobs")
        assert response.status_code == 405
        assert response.json()["error"] == "method_not_allowed"
