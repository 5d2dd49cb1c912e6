"""Signing in to the dashboard the way a browser does: the form's CSRF value, then the post."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import httpx

from joblog.api.routes_login import LOGIN_COOKIE
from joblog.api.sessions import SESSION_COOKIE
from tests.support.api import ApiClient

FORM = {"content-type": "application/x-www-form-urlencoded"}
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def login_form(api: ApiClient, url: str = "/login") -> str:
    """GET the sign-in form: its CSRF value, which its ``joblog_login`` cookie holds too."""
    page = api.get(url)
    assert page.status_code == 200, page.text
    found = _CSRF_FIELD.search(page.text)
    assert found is not None
    assert page.cookies.get(LOGIN_COOKIE) == found.group(1)
    api.clear_cookies()
    return found.group(1)


def post_login(
    api: ApiClient,
    fields: dict[str, str],
    nonce: str | None,
    url: str = "/login",
    cookie: str = "",
) -> httpx.Response:
    """POST the sign-in form with ``fields`` and the login cookie ``nonce`` (None: none)."""
    cookies = [f"{LOGIN_COOKIE}={nonce}"] if nonce is not None else []
    if cookie:
        cookies.append(cookie)
    headers = {**FORM, **({"cookie": "; ".join(cookies)} if cookies else {})}
    response = api.request("POST", url, content=urlencode(fields), headers=headers)
    api.clear_cookies()
    return response


def login(api: ApiClient, token: str, next_path: str = "/") -> str:
    """Sign in with ``token``: the ``Cookie`` header value of the new session."""
    nonce = login_form(api)
    response = post_login(api, {"token": token, "next": next_path, "csrf_token": nonce}, nonce)
    assert response.status_code == 303, response.text
    secret = response.cookies.get(SESSION_COOKIE)
    assert secret
    return f"{SESSION_COOKIE}={secret}"


def page_csrf(api: ApiClient, cookie: str, path: str = "/") -> str:
    """The session's CSRF token, as a dashboard page (the sign-out form) carries it."""
    page = api.get(path, headers={"cookie": cookie})
    assert page.status_code == 200, page.text
    form = page.text.split('data-testid="sign-out-form"', 1)
    assert len(form) == 2, "the page shows no sign-out form"
    found = _CSRF_FIELD.search(form[1])
    assert found is not None
    return found.group(1)
