"""Access control: write tokens guard every write, read tokens guard reads and the dashboard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from joblog.api.app import create_app
from joblog.api.auth import SESSION_COOKIE, TokenGuard, load_tokens
from joblog.api.settings import ApiSettings
from joblog.cli.serve import serve_command
from joblog.exceptions import ConfigError
from joblog.storage.store import Store
from tests.support.api import ApiClient, api_client
from tests.support.login import login, login_form, page_csrf, post_login

WRITE = "write-token-0123456789abcdef"
READ = "read-token-0123456789abcdef"
WRONG = "wrong-token-0123456789abcdef"
FORM = {"content-type": "application/x-www-form-urlencoded"}

#: Every write endpoint, with a valid body, against a job with the external ID "gui-1".
WRITES = [
    ("POST", "/api/v1/jobs", {"job_type": "failover", "operation": "unified"}),
    ("POST", "/api/v1/jobs/gui-1/steps", {"name": "boot"}),
    ("PATCH", "/api/v1/jobs/gui-1/steps/1", {"status": "completed"}),
    ("PATCH", "/api/v1/jobs/gui-1", {"percent": 50}),
    ("POST", "/api/v1/jobs/gui-1/heartbeat", None),
    ("POST", "/api/v1/jobs/gui-1/cancel", None),
    (
        "POST",
        "/api/v1/events",
        {
            "batch_key": "k",
            "events": [{"external_job_id": "gui-1", "level": "INFO", "message": "m"}],
        },
    ),
]
WRITE_IDS = [f"{method} {path}" for method, path, _ in WRITES]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def app_with(url: str, **settings: Any) -> Any:
    return api_client(create_app(url, settings=ApiSettings(**settings)))


def seed_job(url: str) -> None:
    """A running job "gui-1" with a running step 1, written with a write token."""
    with app_with(url, write_tokens=(WRITE,)) as api:
        body = {"job_type": "failover", "operation": "unified", "external_job_id": "gui-1"}
        assert api.request("POST", "/api/v1/jobs", json=body, headers=bearer(WRITE)).is_success
        step = api.request(
            "POST", "/api/v1/jobs/gui-1/steps", json={"name": "a"}, headers=bearer(WRITE)
        )
        assert step.is_success


def snapshot(url: str) -> list[Any]:
    """Everything a write could change: jobs (with heartbeat and cancel flag), steps, events."""
    store = Store(url)
    try:
        jobs = store.reads.list_jobs(limit=100)
        return [
            [
                (j.id, j.status, j.percent_complete, j.cancel_requested, j.heartbeat_at)
                for j in jobs
            ],
            [(s.id, s.status) for j in jobs for s in store.reads.steps_of(j.id)],
            [e.id for e in store.reads.list_events(external_job_id="gui-1", limit=100)],
        ]
    finally:
        store.close()


@pytest.fixture
def guarded(database_url: str) -> Iterator[ApiClient]:
    """Write and read tokens configured, and one job to aim at (on every backend)."""
    seed_job(database_url)
    with app_with(database_url, write_tokens=(WRITE,), read_tokens=(READ,)) as api:
        yield api


@pytest.fixture
def sqlite_url(make_database: Any) -> str:
    # Reads are decided before any SQL runs: one backend shows it.
    return str(make_database("sqlite"))


@pytest.fixture
def reader(sqlite_url: str) -> Iterator[ApiClient]:
    """Like ``guarded``, on SQLite only."""
    seed_job(sqlite_url)
    with app_with(sqlite_url, write_tokens=(WRITE,), read_tokens=(READ,)) as api:
        yield api


class TestWriteTokens:
    @pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
    def test_missing_token_is_a_401_and_writes_nothing(
        self, guarded: ApiClient, database_url: str, method: str, path: str, body: Any
    ) -> None:
        before = snapshot(database_url)
        response = guarded.request(method, path, json=body)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert snapshot(database_url) == before

    @pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
    def test_wrong_token_is_a_403_and_writes_nothing(
        self, guarded: ApiClient, database_url: str, method: str, path: str, body: Any
    ) -> None:
        before = snapshot(database_url)
        response = guarded.request(method, path, json=body, headers=bearer(WRONG))
        assert response.status_code == 403
        assert response.json()["error"] == "forbidden"
        assert snapshot(database_url) == before

    @pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
    def test_read_token_cannot_write(
        self, guarded: ApiClient, method: str, path: str, body: Any
    ) -> None:
        assert guarded.request(method, path, json=body, headers=bearer(READ)).status_code == 403

    @pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
    def test_write_token_is_accepted(
        self, guarded: ApiClient, method: str, path: str, body: Any
    ) -> None:
        response = guarded.request(method, path, json=body, headers=bearer(WRITE))
        assert response.status_code in (200, 201, 202), response.text

    def test_malformed_header_is_a_401(self, guarded: ApiClient) -> None:
        for value in ("Basic dXNlcjpwYXNz", "Bearer", f"Token {WRITE}", f"Bearer {WRITE} x"):
            response = guarded.request(
                "POST", "/api/v1/jobs/gui-1/heartbeat", headers={"Authorization": value}
            )
            assert response.status_code == 401, value

    def test_token_is_checked_before_the_body(self, guarded: ApiClient) -> None:
        response = guarded.request(
            "POST",
            "/api/v1/jobs",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 401

    def test_no_write_tokens_means_no_writes(self, make_database: Any) -> None:
        with app_with(make_database("sqlite")) as api:
            response = api.request("POST", "/api/v1/jobs", json=WRITES[0][2], headers=bearer(WRITE))
            assert response.status_code == 403

    def test_insecure_no_auth_opens_writes(self, make_database: Any) -> None:
        with app_with(make_database("sqlite"), insecure_no_auth=True) as api:
            assert api.request("POST", "/api/v1/jobs", json=WRITES[0][2]).status_code == 201

    def test_read_only_server_has_no_write_routes(self, make_database: Any) -> None:
        with app_with(make_database("sqlite"), write_tokens=(WRITE,), write_api=False) as api:
            response = api.request("POST", "/api/v1/jobs", json=WRITES[0][2], headers=bearer(WRITE))
            assert response.status_code == 405

    def test_openapi_declares_the_bearer_scheme(self, guarded: ApiClient) -> None:
        spec = guarded.get("/openapi.json").json()
        assert spec["components"]["securitySchemes"]["bearer"]["scheme"].lower() == "bearer"
        assert spec["paths"]["/api/v1/events"]["post"]["security"] == [{"bearer": []}]


class TestReadTokens:
    def test_api_read_without_token_is_a_401(self, reader: ApiClient) -> None:
        response = reader.get("/api/v1/jobs/gui-1")
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")

    def test_wrong_read_token_is_a_403(self, reader: ApiClient) -> None:
        assert reader.get("/api/v1/jobs", headers=bearer(WRONG)).status_code == 403

    @pytest.mark.parametrize("token", [READ, WRITE])
    def test_read_or_write_token_reads(self, reader: ApiClient, token: str) -> None:
        response = reader.get("/api/v1/jobs/gui-1", headers=bearer(token))
        assert response.status_code == 200
        assert response.json()["job"]["external_job_id"] == "gui-1"

    @pytest.mark.parametrize(
        "path", ["/api/v1/jobs", "/api/v1/jobs/gui-1/logs", "/api/v1/jobs/gui-1/stream", "/metrics"]
    )
    def test_every_read_is_guarded(self, reader: ApiClient, path: str) -> None:
        assert reader.get(path).status_code == 401

    def test_healthz_stays_open(self, reader: ApiClient) -> None:
        assert reader.get("/healthz").status_code == 200

    def test_reads_are_open_without_read_tokens(self, sqlite_url: str) -> None:
        seed_job(sqlite_url)
        with app_with(sqlite_url, write_tokens=(WRITE,)) as api:
            assert api.get("/api/v1/jobs/gui-1").status_code == 200


class TestDashboardLogin:
    def test_page_redirects_to_login(self, reader: ApiClient) -> None:
        response = reader.get("/jobs/gui-1?tab=logs")
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=%2Fjobs%2Fgui-1%3Ftab%3Dlogs"

    def test_login_form_is_served(self, reader: ApiClient) -> None:
        response = reader.get("/login?next=/jobs/gui-1")
        assert response.status_code == 200
        assert 'name="token"' in response.text
        assert 'value="/jobs/gui-1"' in response.text

    def test_wrong_token_sets_no_session_cookie(self, reader: ApiClient) -> None:
        nonce = login_form(reader)
        response = post_login(reader, {"token": WRONG, "csrf_token": nonce}, nonce)
        assert response.status_code == 401
        assert SESSION_COOKIE not in response.cookies

    def test_login_sets_a_strict_httponly_cookie_without_the_token(self, reader: ApiClient) -> None:
        nonce = login_form(reader)
        fields = {"token": READ, "next": "/jobs/gui-1", "csrf_token": nonce}
        response = post_login(reader, fields, nonce)
        assert response.status_code == 303
        assert response.headers["location"] == "/jobs/gui-1"
        cookie = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
        )
        attributes = [part.strip().lower() for part in cookie.split(";")]
        assert "httponly" in attributes and "samesite=strict" in attributes
        assert "secure" not in attributes  # plain http here
        assert READ not in cookie

    def test_pages_load_with_the_cookie(self, reader: ApiClient) -> None:
        cookie = login(reader, READ)
        page = reader.get("/jobs/gui-1", headers={"cookie": cookie})
        assert page.status_code == 200
        assert "gui-1" in page.text
        assert reader.get("/", headers={"cookie": cookie}).status_code == 200
        # The page's scripts read the API and the stream with the same cookie.
        assert reader.get("/api/v1/jobs/gui-1", headers={"cookie": cookie}).status_code == 200

    def test_cookie_alone_never_authorizes_a_write(
        self, reader: ApiClient, sqlite_url: str
    ) -> None:
        cookie = login(reader, WRITE)
        before = snapshot(sqlite_url)
        for method, path, body in WRITES:
            response = reader.request(method, path, json=body, headers={"cookie": cookie})
            assert response.status_code in (401, 403), (method, path)
        assert snapshot(sqlite_url) == before

    def test_tampered_cookie_is_refused(self, reader: ApiClient) -> None:
        cookie = login(reader, READ)
        name, secret = cookie.split("=", 1)
        flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
        for forged in (flipped, secret[:-1], secret + "A", secret + ".1.2", "x" * 200):
            assert reader.get("/", headers={"cookie": f"{name}={forged}"}).status_code == 303

    def test_login_never_redirects_off_site(self, reader: ApiClient) -> None:
        for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            nonce = login_form(reader)
            fields = {"token": READ, "next": target, "csrf_token": nonce}
            response = post_login(reader, fields, nonce)
            assert response.headers["location"] == "/", target

    def test_logout_ends_the_session_and_clears_the_cookie(self, reader: ApiClient) -> None:
        cookie = login(reader, READ)
        csrf = page_csrf(reader, cookie)
        response = reader.request(
            "POST",
            "/logout",
            content=f"csrf_token={csrf}",
            headers={**FORM, "cookie": cookie},
        )
        assert response.status_code == 303
        assert f'{SESSION_COOKIE}=""' in response.headers["set-cookie"]
        assert reader.get("/", headers={"cookie": cookie}).status_code == 303

    def test_cookie_is_secure_over_https(self, sqlite_url: str) -> None:
        with app_with(sqlite_url, read_tokens=(READ,)) as api:
            nonce = login_form(api, "https://joblog.test/login")
            fields = {"token": READ, "csrf_token": nonce}
            response = post_login(api, fields, nonce, url="https://joblog.test/login")
        for cookie in response.headers.get_list("set-cookie"):
            assert "secure" in [p.strip().lower() for p in cookie.split(";")], cookie


class TestTokenConfiguration:
    def test_tokens_from_list_and_file(self, tmp_path: Path) -> None:
        path = tmp_path / "tokens"
        path.write_text(f"# producers\n{WRITE}\n\n{READ}  # the GUI\n", encoding="utf-8")
        env = {"JOBLOG_WRITE_TOKENS": f" {WRONG} , ", "JOBLOG_WRITE_TOKENS_FILE": str(path)}
        assert load_tokens("WRITE", env) == (WRONG, WRITE, READ)

    @pytest.mark.parametrize(
        "token", ["short", "has space inside it 0123", "ünïcode-token-0123456"]
    )
    def test_weak_or_odd_tokens_are_refused(self, token: str) -> None:
        with pytest.raises(ConfigError):
            load_tokens("READ", {"JOBLOG_READ_TOKENS": token})

    def test_guard_repr_hides_the_tokens(self) -> None:
        guard = TokenGuard([WRITE], [READ])
        assert WRITE not in repr(guard) and READ not in repr(guard)
        assert WRITE not in repr(ApiSettings(write_tokens=(WRITE,)))

    def test_guard_roles(self) -> None:
        guard = TokenGuard([WRITE], [READ])
        assert (guard.role_of(WRITE), guard.role_of(READ), guard.role_of(WRONG)) == (
            "write",
            "read",
            None,
        )


class TestServeCommand:
    def test_refuses_to_start_without_write_tokens(self, make_database: Any) -> None:
        result = CliRunner().invoke(
            serve_command,
            ["--url", make_database("sqlite"), "--port", "0"],
            env={"JOBLOG_WRITE_TOKENS": "", "JOBLOG_WRITE_TOKENS_FILE": ""},
        )
        assert result.exit_code != 0
        assert "JOBLOG_WRITE_TOKENS" in result.output
        assert "--insecure-no-auth" in result.output

    def test_refuses_a_weak_token(self, make_database: Any) -> None:
        result = CliRunner().invoke(
            serve_command,
            ["--url", make_database("sqlite"), "--port", "0"],
            env={"JOBLOG_WRITE_TOKENS": "secret"},
        )
        assert result.exit_code != 0
        assert "characters" in result.output

    def test_binds_loopback_by_default(self) -> None:
        host = next(p for p in serve_command.params if p.name == "host")
        assert host.default == "127.0.0.1"
