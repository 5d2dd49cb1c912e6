"""The dashboard's sessions: login CSRF, sign-out that ends the session in every server
process, and write sessions that may cancel a job with their CSRF token, and do nothing else."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from joblog._ids import utcnow
from joblog.api.app import create_app
from joblog.api.routes_login import LOGIN_COOKIE
from joblog.api.sessions import CSRF_HEADER, SESSION_COOKIE
from joblog.api.settings import ApiSettings
from joblog.demo import insert_failover_job
from joblog.storage import schema
from joblog.storage.store import Store
from tests.conftest import BACKENDS
from tests.support.api import ApiClient, api_client, backend_database
from tests.support.login import FORM, login, login_form, page_csrf, post_login

WRITE = "write-token-0123456789abcdef"
READ = "read-token-0123456789abcdef"
OTHER_READ = "other-read-token-0123456789"
JOB = "gui-1"
CANCEL = f"/api/v1/jobs/{JOB}/cancel"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def server(url: str, **settings: Any) -> Any:
    """One server process's app on the database at ``url`` (several may share it)."""
    values = {"write_tokens": (WRITE,), "read_tokens": (READ,), **settings}
    return api_client(create_app(url, settings=ApiSettings(**values)))


def seed(url: str) -> None:
    """A running job ``gui-1``, a finished job ``done-1`` and a legacy row ``legacy-1``."""
    with server(url) as api:
        for external, finish in ((JOB, False), ("done-1", True)):
            body = {"job_type": "failover", "operation": "live", "external_job_id": external}
            assert api.request("POST", "/api/v1/jobs", json=body, headers=bearer(WRITE)).is_success
            if finish:
                done = {"status": "completed"}
                path = f"/api/v1/jobs/{external}"
                assert api.request("PATCH", path, json=done, headers=bearer(WRITE)).is_success
    store = Store(url)
    try:
        insert_failover_job(store, job_id="legacy-1", status="snapshotting")
    finally:
        store.close()


def cancel_requested(url: str, external: str = JOB) -> bool:
    store = Store(url)
    try:
        jobs = store.reads.list_jobs(limit=10)
    finally:
        store.close()
    return next(job for job in jobs if job.external_job_id == external).cancel_requested


def logout(api: ApiClient, cookie: str, csrf: str | None) -> Any:
    content = f"csrf_token={csrf}" if csrf is not None else ""
    return api.request("POST", "/logout", content=content, headers={**FORM, "cookie": cookie})


def cancel(api: ApiClient, cookie: str, csrf: str | None, path: str = CANCEL) -> Any:
    headers = {"cookie": cookie, **({CSRF_HEADER: csrf} if csrf is not None else {})}
    return api.request("POST", path, headers=headers)


def signed_in(api: ApiClient, cookie: str) -> bool:
    """Whether the dashboard still takes the cookie (it redirects to /login otherwise)."""
    status = api.get("/", headers={"cookie": cookie}).status_code
    assert status in (200, 303)
    return status == 200


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One seeded SQLite database for the refusals and the pages: no test here changes
    ``gui-1`` (they are refused), and each signs in with sessions of its own."""
    url = f"sqlite:///{tmp_path_factory.mktemp('sessions') / 'joblog.db'}"
    seed(url)
    return url


@pytest.fixture(scope="module")
def api(sqlite_url: str) -> Iterator[ApiClient]:
    with server(sqlite_url) as client:
        yield client


@pytest.fixture(scope="module", params=BACKENDS)
def shared_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One database per backend for the tests that run on all three; each of them uses
    sessions and jobs of its own, so they may share it."""
    for url in backend_database(request, tmp_path_factory):
        seed(url)
        yield url


@pytest.fixture(scope="module")
def servers(shared_url: str) -> Iterator[tuple[ApiClient, ApiClient]]:
    """Two server processes' apps on the backend's shared database."""
    with server(shared_url) as first, server(shared_url) as second:
        yield first, second
        first.clear_cookies()


def new_job(api: ApiClient) -> str:
    """A running job of this test's own; its external ID."""
    external = f"job-{uuid.uuid4().hex[:12]}"
    body = {"job_type": "failover", "operation": "live", "external_job_id": external}
    assert api.request("POST", "/api/v1/jobs", json=body, headers=bearer(WRITE)).is_success
    return external


class TestLoginCsrf:
    def test_a_post_without_the_forms_cookie_is_refused(self, api: ApiClient) -> None:
        """What another site's auto-submitted form sends: a SameSite=Strict cookie stays
        home, so whatever value it guesses, there is no cookie to match."""
        nonce = login_form(api)
        response = post_login(api, {"token": READ, "csrf_token": nonce}, None)
        assert response.status_code == 403
        assert SESSION_COOKIE not in response.cookies
        assert "came from another site" in response.text

    def test_a_post_without_the_field_is_refused(self, api: ApiClient) -> None:
        nonce = login_form(api)
        response = post_login(api, {"token": READ}, nonce)
        assert response.status_code == 403
        assert SESSION_COOKIE not in response.cookies

    def test_a_value_from_another_browser_is_refused(self, api: ApiClient) -> None:
        mine, theirs = login_form(api), login_form(api)
        assert mine != theirs
        response = post_login(api, {"token": READ, "csrf_token": theirs}, mine)
        assert response.status_code == 403
        assert SESSION_COOKIE not in response.cookies

    @pytest.mark.parametrize(
        "encoded",
        [
            "",
            "a%00b",
            "%ED%B2%80" * 43,
            "%FF%FE" * 43,
            "%C3%A9" * 43,
            "x" * 1500,
            "%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
        ],
        ids=["empty", "nul", "surrogates", "not-utf8", "non-ascii", "long", "markup"],
    )
    def test_hostile_values_are_a_clean_refusal(self, api: ApiClient, encoded: str) -> None:
        nonce = login_form(api)
        body = f"token={READ}&csrf_token={encoded}&next={encoded}"
        headers = {**FORM, "cookie": f"{LOGIN_COOKIE}={nonce}"}
        response = api.request("POST", "/login", content=body, headers=headers)
        api.clear_cookies()
        assert response.status_code == 403
        assert "<script>alert" not in response.text
        assert SESSION_COOKIE not in response.cookies

    def test_hostile_cookie_is_a_clean_refusal(self, api: ApiClient) -> None:
        nonce = login_form(api)
        fields = {"token": READ, "csrf_token": nonce}
        for cookie in ("\x7f" * 43, nonce + "x", "é"):
            response = api.request(
                "POST",
                "/login",
                content="&".join(f"{k}={v}" for k, v in fields.items()),
                headers={**FORM, "cookie": f"{LOGIN_COOKIE}={cookie}".encode()},
            )
            assert response.status_code == 403

    @pytest.mark.parametrize(
        "planted", ['"><script>alert(1)</script>'.ljust(43, "x"), "é" * 43, "a b" * 15]
    )
    def test_a_planted_cookie_is_never_echoed(self, api: ApiClient, planted: str) -> None:
        cookie = f"{LOGIN_COOKIE}={planted}".encode()
        page = api.get("/login", headers={"cookie": cookie})
        api.clear_cookies()
        assert page.status_code == 200
        assert "<script>alert" not in page.text and planted not in page.text

    def test_too_many_fields_is_a_400_not_a_500(self, api: ApiClient) -> None:
        nonce = login_form(api)
        fields = {f"f{n}": "x" for n in range(20)} | {"token": READ, "csrf_token": nonce}
        assert post_login(api, fields, nonce).status_code == 400

    def test_every_tab_of_one_browser_gets_the_same_value(self, api: ApiClient) -> None:
        nonce = login_form(api)
        again = api.get("/login", headers={"cookie": f"{LOGIN_COOKIE}={nonce}"})
        assert f'name="csrf_token" value="{nonce}"' in again.text

    def test_signing_in_again_ends_the_previous_session(self, api: ApiClient) -> None:
        first = login(api, READ)
        nonce = login_form(api)
        fields = {"token": WRITE, "csrf_token": nonce}
        response = post_login(api, fields, nonce, cookie=first)
        assert response.status_code == 303
        assert not signed_in(api, first)
        assert signed_in(api, f"{SESSION_COOKIE}={response.cookies[SESSION_COOKIE]}")


class TestLogout:
    def test_get_is_a_405_that_keeps_the_session(self, api: ApiClient) -> None:
        cookie = login(api, READ)
        response = api.get("/logout", headers={"cookie": cookie})
        assert response.status_code == 405
        assert "POST" in response.headers["allow"]
        assert "set-cookie" not in response.headers
        assert signed_in(api, cookie)

    def test_without_csrf_is_refused_and_keeps_the_session(self, api: ApiClient) -> None:
        cookie = login(api, READ)
        response = logout(api, cookie, None)
        assert response.status_code == 403
        assert SESSION_COOKIE not in response.cookies
        assert signed_in(api, cookie)

    def test_csrf_of_another_session_is_refused(self, api: ApiClient) -> None:
        mine, theirs = login(api, READ), login(api, READ)
        assert logout(api, mine, page_csrf(api, theirs)).status_code == 403
        assert signed_in(api, mine) and signed_in(api, theirs)

    def test_with_its_csrf_ends_the_session_for_every_copy_of_the_cookie(
        self, api: ApiClient
    ) -> None:
        cookie = login(api, READ)
        response = logout(api, cookie, page_csrf(api, cookie))
        assert response.status_code == 303
        assert response.headers["location"] == "/login"
        assert not signed_in(api, cookie)
        assert api.get(f"/api/v1/jobs/{JOB}", headers={"cookie": cookie}).status_code == 401

    def test_without_a_session_it_only_redirects(self, api: ApiClient) -> None:
        response = api.request("POST", "/logout")
        assert response.status_code == 303
        assert "set-cookie" not in response.headers


class TestAcrossServers:
    """Several server processes (``serve --workers``, or servers behind a balancer) on
    one database: each has its own memory, so only the database can agree."""

    def test_sign_out_on_one_server_ends_the_session_on_the_other(
        self, servers: tuple[ApiClient, ApiClient]
    ) -> None:
        first, second = servers
        cookie = login(first, READ)
        assert signed_in(second, cookie)
        assert logout(second, cookie, page_csrf(second, cookie)).status_code == 303
        assert not signed_in(first, cookie)
        assert first.get(f"/api/v1/jobs/{JOB}", headers={"cookie": cookie}).status_code == 401

    def test_a_token_taken_out_of_the_configuration_ends_its_sessions(
        self, shared_url: str, servers: tuple[ApiClient, ApiClient]
    ) -> None:
        cookie = login(servers[0], READ)
        with server(shared_url, read_tokens=(OTHER_READ,)) as after:
            assert not signed_in(after, cookie)

    def test_an_expired_session_is_refused_and_swept_at_the_next_sign_in(
        self, shared_url: str, servers: tuple[ApiClient, ApiClient]
    ) -> None:
        api = servers[0]
        sessions = schema.dashboard_sessions
        cookie = login(api, READ)
        store = Store(shared_url)
        try:
            with store.engine.begin() as conn:
                mine = sessions.c.session_hash.in_(
                    set(conn.execute(sa.select(sessions.c.session_hash)).scalars())
                )
                past = utcnow() - timedelta(seconds=1)
                conn.execute(sessions.update().where(mine).values(expires_at=past))
            assert not signed_in(api, cookie)
            login(api, READ)
            with store.engine.connect() as conn:
                left = conn.execute(sa.select(sa.func.count()).where(mine)).scalar_one()
            assert left == 0
        finally:
            store.close()

    def test_a_copied_session_table_opens_no_session(
        self, shared_url: str, servers: tuple[ApiClient, ApiClient]
    ) -> None:
        api = servers[0]
        cookie = login(api, READ)
        store = Store(shared_url)
        try:
            with store.engine.connect() as conn:
                stored = conn.execute(sa.select(schema.dashboard_sessions)).mappings().all()
        finally:
            store.close()
        secret = cookie.split("=", 1)[1]
        assert stored and all(secret not in str(dict(row)) for row in stored)
        assert all(READ not in str(dict(row)) for row in stored)
        for row in stored:
            assert not signed_in(api, f"{SESSION_COOKIE}={row['session_hash'][:43]}")


class TestWriteSessionCancel:
    def test_with_its_csrf_token_it_cancels(
        self, shared_url: str, servers: tuple[ApiClient, ApiClient]
    ) -> None:
        api = servers[0]
        job = new_job(api)
        cookie = login(api, WRITE)
        response = cancel(api, cookie, page_csrf(api, cookie), f"/api/v1/jobs/{job}/cancel")
        assert response.status_code == 202, response.text
        assert response.json()["cancel_requested"] is True
        assert cancel_requested(shared_url, job)

    def test_two_tabs_at_the_same_instant_both_land_once(
        self, servers: tuple[ApiClient, ApiClient]
    ) -> None:
        """Two tabs, maybe served by two processes: both asks succeed, the job is asked
        to stop, and it is still running (cancelling is the producer's move)."""
        first, second = servers
        job = new_job(first)
        cookie = login(first, WRITE)
        csrf = page_csrf(first, cookie)
        barrier = threading.Barrier(2)
        statuses: list[int] = []

        def tab(api: ApiClient) -> None:
            barrier.wait(10)
            response = cancel(api, cookie, csrf, f"/api/v1/jobs/{job}/cancel")
            statuses.append(response.status_code)

        threads = [threading.Thread(target=tab, args=(api,)) for api in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert statuses == [202, 202]
        found = first.get(f"/api/v1/jobs/{job}", headers={"cookie": cookie}).json()["job"]
        assert found["cancel_requested"] is True and found["status"] == "running"

    def test_without_csrf_it_is_403_and_nothing_changes(
        self, api: ApiClient, sqlite_url: str
    ) -> None:
        cookie = login(api, WRITE)
        response = cancel(api, cookie, None)
        assert response.status_code == 403
        assert CSRF_HEADER in response.json()["detail"].lower()
        assert not cancel_requested(sqlite_url)

    @pytest.mark.parametrize(
        "csrf",
        ["", "0" * 64, "é" * 64, "\x00", "x" * 5000],
        ids=["empty", "zeros", "non-ascii", "nul", "long"],
    )
    def test_a_wrong_csrf_token_is_403(self, api: ApiClient, sqlite_url: str, csrf: str) -> None:
        cookie = login(api, WRITE)
        headers = {"cookie": cookie, CSRF_HEADER: csrf.encode("utf-8")}
        assert api.request("POST", CANCEL, headers=headers).status_code == 403
        assert not cancel_requested(sqlite_url)

    def test_the_csrf_token_of_another_session_is_403(
        self, api: ApiClient, sqlite_url: str
    ) -> None:
        mine, theirs = login(api, WRITE), login(api, WRITE)
        assert cancel(api, mine, page_csrf(api, theirs)).status_code == 403
        assert not cancel_requested(sqlite_url)

    def test_a_read_session_cannot_cancel(self, api: ApiClient, sqlite_url: str) -> None:
        cookie = login(api, READ)
        response = cancel(api, cookie, page_csrf(api, cookie))
        assert response.status_code == 403
        assert "sign in with a write token" in response.json()["detail"]
        assert not cancel_requested(sqlite_url)

    def test_an_ended_session_cannot_cancel(self, api: ApiClient, sqlite_url: str) -> None:
        cookie = login(api, WRITE)
        csrf = page_csrf(api, cookie)
        assert logout(api, cookie, csrf).status_code == 303
        assert cancel(api, cookie, csrf).status_code == 401
        assert not cancel_requested(sqlite_url)

    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("POST", "/api/v1/jobs", {"job_type": "failover", "operation": "live"}),
            ("POST", f"/api/v1/jobs/{JOB}/steps", {"name": "boot"}),
            ("PATCH", f"/api/v1/jobs/{JOB}", {"status": "failed"}),
            ("POST", f"/api/v1/jobs/{JOB}/heartbeat", None),
            ("POST", "/api/v1/events", {"batch_key": "k", "events": []}),
        ],
    )
    def test_it_may_do_nothing_else(
        self, api: ApiClient, method: str, path: str, body: Any
    ) -> None:
        cookie = login(api, WRITE)
        headers = {"cookie": cookie, CSRF_HEADER: page_csrf(api, cookie)}
        response = api.request(method, path, json=body, headers=headers)
        assert response.status_code == 401
        assert api.get(f"/api/v1/jobs/{JOB}", headers=bearer(READ)).json()["job"]["status"] == (
            "running"
        )

    def test_a_finished_job_is_a_409(self, api: ApiClient, sqlite_url: str) -> None:
        cookie = login(api, WRITE)
        response = cancel(api, cookie, page_csrf(api, cookie), "/api/v1/jobs/done-1/cancel")
        assert response.status_code == 409
        assert not cancel_requested(sqlite_url, "done-1")

    def test_a_legacy_row_is_a_404(self, api: ApiClient) -> None:
        cookie = login(api, WRITE)
        response = cancel(api, cookie, page_csrf(api, cookie), "/api/v1/jobs/legacy-1/cancel")
        assert response.status_code == 404

    def test_a_bearer_token_still_wins_over_the_cookie(self, api: ApiClient) -> None:
        cookie = login(api, WRITE)
        headers = {"cookie": cookie, CSRF_HEADER: page_csrf(api, cookie), **bearer(READ)}
        assert api.request("POST", CANCEL, headers=headers).status_code == 403


class TestPages:
    def test_a_write_session_gets_the_cancel_button_with_its_csrf_token(
        self, api: ApiClient
    ) -> None:
        cookie = login(api, WRITE)
        page = api.get(f"/jobs/{JOB}", headers={"cookie": cookie}).text
        assert 'data-testid="cancel-button"' in page
        assert f'data-csrf="{page_csrf(api, cookie)}"' in page
        assert 'data-cancel-url="/api/v1/jobs/' in page

    def test_a_read_session_is_offered_a_write_sign_in_instead(self, api: ApiClient) -> None:
        cookie = login(api, READ)
        page = api.get(f"/jobs/{JOB}", headers={"cookie": cookie}).text
        assert 'data-testid="cancel-button"' not in page
        assert 'data-cancel-url=""' in page
        assert 'href="/login?next=%2Fjobs%2Fgui-1" data-testid="cancel-sign-in"' in page

    @pytest.mark.parametrize("job", ["done-1", "legacy-1"])
    def test_finished_and_legacy_jobs_have_no_cancel_box(self, api: ApiClient, job: str) -> None:
        cookie = login(api, WRITE)
        page = api.get(f"/jobs/{job}", headers={"cookie": cookie}).text
        assert 'data-testid="cancel-box"' not in page

    def test_open_reads_still_offer_a_sign_in_to_cancel(self, sqlite_url: str) -> None:
        with server(sqlite_url, read_tokens=()) as api:
            page = api.get(f"/jobs/{JOB}").text
            assert 'data-testid="cancel-sign-in"' in page
            assert 'data-testid="sign-in"' in page
            cookie = login(api, WRITE)
            page = api.get(f"/jobs/{JOB}", headers={"cookie": cookie}).text
            assert 'data-testid="cancel-button"' in page
            assert "Signed in: write" in page

    def test_open_writes_need_no_session(self, sqlite_url: str) -> None:
        with server(sqlite_url, write_tokens=(), read_tokens=(), insecure_no_auth=True) as api:
            page = api.get(f"/jobs/{JOB}").text
            assert 'data-testid="cancel-button"' in page
            assert 'data-testid="sign-in"' not in page
            assert api.get("/login").status_code == 303  # nothing to sign in to

    def test_a_read_only_server_offers_no_cancel(self, sqlite_url: str) -> None:
        with server(sqlite_url, write_api=False) as api:
            cookie = login(api, WRITE)
            page = api.get(f"/jobs/{JOB}", headers={"cookie": cookie}).text
            assert 'data-testid="cancel-box"' not in page
