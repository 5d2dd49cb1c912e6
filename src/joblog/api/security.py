"""Security headers on every answer the app gives, decided by what the answer is.

HTML (the dashboard's pages, its problem pages) gets a Content-Security-Policy that allows
only the dashboard's own scripts, styles, images and API calls: the templates hold no
inline script or style (data for the scripts travels in ``data-`` attributes and
``<script type="application/json">`` blocks, which are not executed). Everything else
(JSON, NDJSON, the event stream, metrics, static files) gets a policy that allows nothing,
so an answer opened directly in a browser can never run as a page. A route that needs
other allowances (``/docs``, Swagger UI) sets its own Content-Security-Policy, which is kept.

Every answer also gets ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` (and
``frame-ancestors 'none'``: no page of joblog is framed) and
``Referrer-Policy: same-origin``: job IDs in the dashboard's URLs never leave in a Referer,
while same-origin requests keep the Origin that a form post is checked against.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["API_CSP", "DASHBOARD_CSP", "SecurityHeaders"]

DASHBOARD_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"
ALWAYS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
)


class SecurityHeaders:
    """Pure ASGI middleware: adds the headers above to each response that lacks them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in ALWAYS:
                    headers.setdefault(name, value)
                html = headers.get("content-type", "").startswith("text/html")
                headers.setdefault("Content-Security-Policy", DASHBOARD_CSP if html else API_CSP)
            await send(message)

        await self.app(scope, receive, send_with_headers)
