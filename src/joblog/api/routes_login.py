"""``/login`` and ``/logout``: the dashboard's session when read tokens are configured.

A browser cannot send a bearer token with a page request or an EventSource, so the
dashboard trades a token for a cookie once: HttpOnly (no script reads it), SameSite=Strict
(no other site sends it), Secure over https, holding a signed session rather than the token
(:meth:`TokenGuard.make_session`). The cookie only ever authorizes reads.
"""

from __future__ import annotations

import html
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from joblog.api.auth import SESSION_COOKIE, TokenGuard, safe_next, session_cookie

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

MAX_FORM_BYTES = 4096

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
    <p>This server asks for a read token (or a write token) to show its jobs.</p>
    {error}
    <form method="post" action="/login">
      <input type="hidden" name="next" value="{next}">
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


def _login_page(next_path: str, error: str | None = None, status_code: int = 200) -> Response:
    notice = f'<p role="alert"><strong>{html.escape(error)}</strong></p>' if error else ""
    body = _PAGE.replace("{error}", notice).replace("{next}", html.escape(next_path, quote=True))
    return HTMLResponse(
        body,
        status_code=status_code,
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )


@router.get("/login", response_model=None)
def login_form(request: Request, next: str | None = None) -> Response:
    """The sign-in form (or straight on, when no token is needed or the session is valid)."""
    target = safe_next(next)
    guard = _guard(request)
    cookie = session_cookie(request.scope)
    if not guard.reads_guarded or (cookie is not None and guard.session_valid(cookie)):
        return RedirectResponse(target, status_code=303)
    return _login_page(target)


@router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    """Trade a valid token for the session cookie, then go back to ``next``."""
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        return _login_page("/", "That form is too large.", 413)
    form = parse_qs(raw.decode("utf-8", "replace"), max_num_fields=4)
    target = safe_next((form.get("next") or ["/"])[0])
    token = (form.get("token") or [""])[0].strip()
    guard = _guard(request)
    if not guard.reads_guarded:
        return RedirectResponse(target, status_code=303)
    if not token or guard.role_of(token) is None:
        return _login_page(target, "That token is not valid here.", 401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        guard.make_session(token),
        max_age=guard.session_max_age,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


@router.api_route("/logout", methods=["GET", "POST"], response_model=None)
def logout(request: Request) -> Response:
    """Forget the session cookie and return to the sign-in form."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response
