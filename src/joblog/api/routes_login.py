"""``/login`` and ``/logout``: the dashboard's session (:mod:`joblog.api.sessions`).

A browser cannot send a bearer token with a page request or an EventSource, so the
dashboard trades a token for a session once: a cookie that is HttpOnly (no script reads
it), SameSite=Strict (no other site sends it), Secure over https, and holds a random
session secret, never the token. A read token's session reads (when read tokens guard
the dashboard); a write token's session may also cancel jobs from the dashboard.

Both forms carry a CSRF token. The sign-in form's is a double-submit token: a random
value in a short-lived SameSite=Strict cookie scoped to ``/login`` and in a hidden field,
which must match, so another site cannot sign a browser in to a session of its choosing
(login CSRF). Sign-out is ``POST /logout`` with the session's own CSRF token; it deletes
the session in the database, so a copy of the cookie stops working everywhere.
``GET /logout`` is a 405: following a link never signs anyone out.
"""

from __future__ import annotations

import hmac
import html
import re
import secrets
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from joblog.api.auth import TokenGuard, safe_next
from joblog.api.sessions import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    SessionBook,
    cookie_value,
    csrf_matches,
)

__all__ = ["LOGIN_COOKIE", "router"]

router = APIRouter(include_in_schema=False)

MAX_FORM_BYTES = 4096
MAX_FORM_FIELDS = 8
#: The sign-in form's double-submit cookie, sent back to ``/login`` only.
LOGIN_COOKIE = "joblog_login"
LOGIN_COOKIE_MAX_AGE = 3600
_NONCE = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="color-scheme" content="light dark">
  <title>Sign in · joblog</title>
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/static/app.css">
</head>
<body>
  <main id="main" class="login-main">
    <h1>joblog</h1>
    <p>{intro}</p>
    {error}
    <form method="post" action="/login">
      <input type="hidden" name="next" value="{next}">
      <input type="hidden" name="csrf_token" value="{csrf}">
      <label for="token">Token</label>
      <input id="token" name="token" type="password" autocomplete="current-password"
             required autofocus spellcheck="false" class="login-token">
      <p><button type="submit">Sign in</button></p>
    </form>
  </main>
</body>
</html>
"""


def _guard(request: Request) -> TokenGuard:
    guard: TokenGuard = request.app.state.guard
    return guard


def _sessions(request: Request) -> SessionBook:
    sessions: SessionBook = request.app.state.sessions
    return sessions


def _intro(guard: TokenGuard) -> str:
    if guard.reads_guarded:
        return "This server asks for a read token (or a write token) to show its jobs."
    return "Sign in with a write token to cancel jobs from the dashboard."


def _login_nonce(request: Request) -> str:
    """The sign-in form's CSRF value: the browser's current one, else a new one."""
    current = cookie_value(request.scope, LOGIN_COOKIE)
    if current is not None and _NONCE.fullmatch(current):
        return current
    return secrets.token_urlsafe(32)


def _login_page(
    request: Request,
    next_path: str,
    error: str | None = None,
    status_code: int = 200,
    note: str | None = None,
) -> Response:
    guard = _guard(request)
    nonce = _login_nonce(request)
    notice = f'<p role="alert"><strong>{html.escape(error)}</strong></p>' if error else ""
    if note:
        notice += f'<p data-testid="login-note">{html.escape(note)}</p>'
    body = (
        _PAGE.replace("{intro}", html.escape(_intro(guard)))
        .replace("{csrf}", html.escape(nonce, quote=True))
        .replace("{error}", notice)
        .replace("{next}", html.escape(next_path, quote=True))  # last: it is the client's
    )
    response = HTMLResponse(
        body,
        status_code=status_code,
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=LOGIN_COOKIE_MAX_AGE,
        path="/login",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


def _form(raw: bytes) -> dict[str, str] | None:
    """The first value of each field of a urlencoded form; None when it is not one."""
    try:
        fields = parse_qs(raw.decode("utf-8", "replace"), max_num_fields=MAX_FORM_FIELDS)
    except ValueError:
        return None
    return {name: values[0] for name, values in fields.items()}


@router.get("/login", response_model=None)
def login_form(request: Request, next: str | None = None) -> Response:
    """The sign-in form (or straight on, when no token is configured at all)."""
    target = safe_next(next)
    guard = _guard(request)
    if not guard.has_tokens:
        return RedirectResponse(target, status_code=303)
    session = _sessions(request).of_request(request.scope)
    note = None
    if session is not None:
        note = f"You are signed in with a {session.role} token."
        if session.role == "read" and guard.session_writes:
            note += " Sign in with a write token to cancel jobs."
    return _login_page(request, target, note=note)


@router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    """Trade a valid token for a session cookie, then go back to ``next``."""
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        return _login_page(request, "/", "That form is too large.", 413)
    form = _form(raw)
    if form is None:
        return _login_page(request, "/", "That form has too many fields.", 400)
    target = safe_next(form.get("next") or "/")
    guard = _guard(request)
    if not guard.has_tokens:
        return RedirectResponse(target, status_code=303)
    expected = cookie_value(request.scope, LOGIN_COOKIE)
    presented = form.get(CSRF_FIELD, "")
    if expected is None or not hmac.compare_digest(
        expected.encode("utf-8", "replace"), presented.encode("utf-8", "replace")
    ):
        message = "This sign-in form has expired or came from another site: sign in here."
        return _login_page(request, target, message, 403)
    token = form.get("token", "").strip()
    if not token or guard.role_of(token) is None:
        return _login_page(request, target, "That token is not valid here.", 401)
    sessions = _sessions(request)
    previous = cookie_value(request.scope)
    if previous is not None:  # a new sign-in replaces the old session, never adds to it
        await run_in_threadpool(sessions.end, previous)
    secret = await run_in_threadpool(sessions.open, token)
    response = RedirectResponse(target, status_code=303)
    secure = request.url.scheme == "https"
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=sessions.max_age,
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    response.delete_cookie(
        LOGIN_COOKIE, path="/login", secure=secure, httponly=True, samesite="strict"
    )
    return response


@router.post("/logout", response_model=None)
async def logout(request: Request) -> Response:
    """End the session in the database (with its CSRF token) and forget the cookie."""
    guard = _guard(request)
    after = "/login" if guard.reads_guarded else "/"
    secret = cookie_value(request.scope)
    if secret is None:
        return RedirectResponse(after, status_code=303)
    form = _form((await request.body())[:MAX_FORM_BYTES]) or {}
    presented = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    sessions = _sessions(request)
    session = await run_in_threadpool(sessions.find, secret)
    if session is not None:
        if not csrf_matches(secret, presented):
            message = "Sign out with the button on a joblog page: you are still signed in."
            return _login_page(request, "/", message, 403)
        await run_in_threadpool(sessions.end, secret)
    response = RedirectResponse(after, status_code=303)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response
