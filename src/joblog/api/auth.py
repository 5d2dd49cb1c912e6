"""Access control: bearer tokens for writes, optional read tokens, the dashboard's session.

One pure ASGI middleware (:class:`AccessControl`) decides every request before any route
runs, so an unauthenticated client never gets as far as body parsing, and a route added
later is guarded by its method and path alone:

* open: ``/healthz``, ``/openapi.json``, ``/docs``, ``/redoc``, ``/login``, ``/logout``,
  ``/static/*`` (they reveal nothing about jobs; login and logout check their own CSRF);
* writes: any method but GET/HEAD/OPTIONS under ``/api/`` (or ``/v1/``, OTLP) that a
  route takes: ``Authorization: Bearer`` with a write token; or, for the dashboard's own
  actions only (:data:`~joblog.api.sessions.SESSION_WRITES`: cancelling a job), a write
  session's cookie *and* its CSRF token in ``X-CSRF-Token`` (a cookie alone never
  writes). A write no route takes gets the router's JSON 404/405;
* reads (``/api/`` GET, ``/metrics``, the dashboard): open unless read tokens are
  configured; then a read or write token as a bearer token, or the dashboard's session
  cookie. The API answers 401/403 JSON; a dashboard page redirects to ``/login``.

Tokens are compared as SHA-256 digests with :func:`hmac.compare_digest` against every
configured token, with no early exit, and never logged. Sessions live in the database
(:mod:`joblog.api.sessions`): the cookie holds a random secret, not the token, and a
session ends at sign-out in every server process, or when its token leaves the
configuration. Request bodies are read here, up to ``max_body_bytes``, so that an
oversized body is a 413.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import FastAPI, Request, Security
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from joblog.api.sessions import (
    CSRF_HEADER,
    SESSION_COOKIE,
    SESSION_KEY,
    SESSION_WRITES,
    Session,
    SessionBook,
    cookie_value,
    csrf_matches,
)
from joblog.exceptions import ConfigError, StorageError

__all__ = [
    "SESSION_COOKIE",
    "AccessControl",
    "Role",
    "TokenGuard",
    "bearer_scheme",
    "check_token",
    "install_access_control",
    "load_tokens",
    "require_write",
    "safe_next",
]

Role = Literal["read", "write"]
MIN_TOKEN_LENGTH = 16
MAX_TOKEN_LENGTH = 512
#: The scope key where the middleware leaves the request's role for the routes.
ROLE_KEY = "joblog.role"

_OPEN_PATHS = frozenset({"/healthz", "/openapi.json", "/login", "/logout", "/favicon.ico"})
_OPEN_PREFIXES = ("/static/", "/docs", "/redoc")
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: The JSON API, and the OTLP receiver (``/v1/logs``, the path OTLP exporters use).
_API_PREFIXES = ("/api/", "/v1/")

#: Declares the scheme in OpenAPI; the middleware has already checked the header.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A write token (JOBLOG_WRITE_TOKENS) for writes; a read or write token "
    "for reads when JOBLOG_READ_TOKENS is set.",
)


# -- configuration ---------------------------------------------------------------------------


def check_token(token: str, where: str) -> str:
    """The token, or ConfigError when it is too short, too long or not header-safe."""
    if not MIN_TOKEN_LENGTH <= len(token) <= MAX_TOKEN_LENGTH:
        raise ConfigError(
            f"a token in {where} has {len(token)} characters; "
            f"use {MIN_TOKEN_LENGTH} to {MAX_TOKEN_LENGTH} (e.g. `openssl rand -hex 32`)"
        )
    if not all("\x21" <= char <= "\x7e" for char in token) or "," in token:
        raise ConfigError(f"a token in {where} holds a space, comma or non-ASCII character")
    return token


def load_tokens(
    kind: Literal["WRITE", "READ"], environ: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """Tokens from ``JOBLOG_<kind>_TOKENS`` (comma-separated) and ``JOBLOG_<kind>_TOKENS_FILE``
    (one per line, ``#`` comments and blank lines ignored)."""
    env = os.environ if environ is None else environ
    tokens: list[str] = []
    listed = env.get(f"JOBLOG_{kind}_TOKENS", "")
    for part in listed.split(","):
        if part.strip():
            tokens.append(check_token(part.strip(), f"JOBLOG_{kind}_TOKENS"))
    path = env.get(f"JOBLOG_{kind}_TOKENS_FILE", "").strip()
    if path:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read JOBLOG_{kind}_TOKENS_FILE {path}: {exc}") from exc
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line:
                tokens.append(check_token(line, f"JOBLOG_{kind}_TOKENS_FILE"))
    return tuple(dict.fromkeys(tokens))


def _digest(token: str | bytes) -> bytes:
    raw = token.encode("utf-8", "surrogateescape") if isinstance(token, str) else token
    return hashlib.sha256(raw).digest()


def _fingerprint(token: str) -> str:
    return hashlib.sha256(b"joblog-session-id:" + token.encode()).hexdigest()


class TokenGuard:
    """Which role a presented token or a session's token fingerprint has (constant-time
    comparisons). It keeps digests and fingerprints of the tokens, not the tokens."""

    def __init__(
        self,
        write_tokens: Iterable[str] = (),
        read_tokens: Iterable[str] = (),
        *,
        insecure_no_auth: bool = False,
        session_max_age: int = 12 * 3600,
    ) -> None:
        self._write = [
            (_digest(check_token(t, "write tokens")), _fingerprint(t).encode())
            for t in write_tokens
        ]
        self._read = [
            (_digest(check_token(t, "read tokens")), _fingerprint(t).encode()) for t in read_tokens
        ]
        self.insecure_no_auth = insecure_no_auth
        self.session_max_age = session_max_age

    def __repr__(self) -> str:  # never the tokens themselves
        return f"<TokenGuard write={len(self._write)} read={len(self._read)}>"

    @property
    def writes_open(self) -> bool:
        return self.insecure_no_auth and not self._write

    @property
    def reads_guarded(self) -> bool:
        return bool(self._read)

    def role_of(self, token: str) -> Role | None:
        """``write``, ``read`` or None; every configured token is compared, always."""
        return self._role(_digest(token), 0)

    def _role(self, presented: bytes, field: int) -> Role | None:
        """Compare ``presented`` with ``field`` (0: digest, 1: fingerprint) of every token."""
        is_write = False
        for known in self._write:
            is_write |= hmac.compare_digest(presented, known[field])
        is_read = False
        for known in self._read:
            is_read |= hmac.compare_digest(presented, known[field])
        if is_write:
            return "write"
        return "read" if is_read else None

    @property
    def has_tokens(self) -> bool:
        """Some token is configured: signing in to the dashboard means something."""
        return bool(self._write or self._read)

    @property
    def session_writes(self) -> bool:
        """A write session is possible: some write token is configured."""
        return bool(self._write)

    # -- the dashboard's sessions ------------------------------------------------------------

    @staticmethod
    def fingerprint(token: str) -> str:
        """What a session row records of the token that signed in (not the token)."""
        return _fingerprint(token)

    def role_of_fingerprint(self, fingerprint: str) -> Role | None:
        """The role of the configured token with this fingerprint, or None (constant time)."""
        return self._role(fingerprint.encode("utf-8", "replace"), 1)


# -- the middleware --------------------------------------------------------------------------


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope.get("headers", ())}


def bearer_token(scope: Scope) -> str | None:
    """The token of ``Authorization: Bearer <token>``; "" when the header is malformed."""
    value = _headers(scope).get(b"authorization")
    if value is None:
        return None
    scheme, _, token = value.decode("latin-1").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return ""
    return token


def safe_next(target: str | None) -> str:
    """A same-site path to go back to after login, never another site."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(char) < 0x20 for char in target)
        or len(target) > 2000
    ):
        return "/"
    return target


def _kind(method: str, path: str) -> Literal["open", "write", "api", "page"]:
    if path in _OPEN_PATHS or path.startswith(_OPEN_PREFIXES):
        return "open"
    if path.startswith(_API_PREFIXES):
        return "api" if method in _READ_METHODS else "write"
    if path == "/metrics":
        return "api"
    return "page"


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _unauthorized(send: Send, detail: str) -> None:
    await _send_json(
        send,
        401,
        {"error": "unauthorized", "detail": detail},
        [(b"www-authenticate", b'Bearer realm="joblog"')],
    )


async def _forbidden(send: Send, detail: str) -> None:
    await _send_json(send, 403, {"error": "forbidden", "detail": detail})


async def _unavailable(send: Send) -> None:
    await _send_json(send, 503, {"error": "database_unavailable"})


class AccessControl:
    """Pure ASGI middleware: authenticate by method and path, cap request bodies."""

    def __init__(
        self,
        app: ASGIApp,
        guard: TokenGuard,
        max_body_bytes: int,
        router: Router | None = None,
        sessions: SessionBook | None = None,
    ) -> None:
        self.app = app
        self.guard = guard
        self.max_body_bytes = max_body_bytes
        self.router = router
        self.sessions = sessions

    def _route(self, scope: Scope) -> BaseRoute | None:
        """The route that takes this method and path (None: the app answers 404/405)."""
        assert self.router is not None
        for route in self.router.routes:
            if route.matches(scope)[0] is Match.FULL:
                return route
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        kind = _kind(scope["method"], scope["path"])
        try:
            if kind == "write" and (self.router is None or self._route(scope) is not None):
                allowed = await self._allow_write(scope, send)
            elif kind in ("api", "page") and self.guard.reads_guarded:
                allowed = await self._allow_read(scope, send, kind)
            else:
                allowed = True
        except StorageError:  # the sessions' table cannot be read
            await _unavailable(send)
            return
        if not allowed:
            return
        if scope["method"] not in _READ_METHODS:
            body = await self._read_body(receive, scope, send)
            if body is None:
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    async def _session(self, scope: Scope) -> Session | None:
        """The request's dashboard session (one database read, kept in the scope)."""
        if SESSION_KEY in scope:
            found: Session | None = scope[SESSION_KEY]
            return found
        if self.sessions is None or cookie_value(scope) is None:
            return None
        if self.sessions.local:
            return self.sessions.of_request(scope)
        return await run_in_threadpool(self.sessions.of_request, scope)

    def _session_may_write(self, scope: Scope) -> bool:
        """Whether the route this write reaches is one of :data:`SESSION_WRITES`."""
        if self.router is None:
            return False
        for route in iter_route_contexts(self.router.routes):
            if route.matches(scope)[0] is Match.FULL:
                return (scope["method"], route.path) in SESSION_WRITES
        return False

    async def _allow_write(self, scope: Scope, send: Send) -> bool:
        if self.guard.writes_open:
            scope[ROLE_KEY] = "write"
            return True
        token = bearer_token(scope)
        if token is None and cookie_value(scope) is not None and self._session_may_write(scope):
            return await self._allow_session_write(scope, send)
        if token is None:
            await _unauthorized(send, "send Authorization: Bearer <write token>")
            return False
        if token == "":
            await _unauthorized(send, "malformed Authorization header: use Bearer <token>")
            return False
        role = self.guard.role_of(token)
        if role != "write":
            await _forbidden(send, "this token may not write" if role else "unknown token")
            return False
        scope[ROLE_KEY] = "write"
        return True

    async def _allow_session_write(self, scope: Scope, send: Send) -> bool:
        """A dashboard action: a write session's cookie and that session's CSRF token."""
        presented = _headers(scope).get(CSRF_HEADER.encode())
        token = presented.decode("latin-1") if presented is not None else None
        if not csrf_matches(cookie_value(scope), token):
            await _forbidden(send, f"send this session's CSRF token in {CSRF_HEADER}")
            return False
        session = await self._session(scope)
        if session is None:
            await _unauthorized(send, "the session has ended: sign in again")
            return False
        if session.role != "write":
            await _forbidden(send, "this session may not write: sign in with a write token")
            return False
        scope[ROLE_KEY] = "write"
        return True

    async def _allow_read(self, scope: Scope, send: Send, kind: str) -> bool:
        token = bearer_token(scope)
        if token:
            role = self.guard.role_of(token)
            if role is not None:
                scope[ROLE_KEY] = role
                return True
        elif await self._session(scope) is not None:
            scope[ROLE_KEY] = "read"
            return True
        if kind == "page":
            await _redirect_to_login(scope, send)
        elif token is None:
            await _unauthorized(send, "send Authorization: Bearer <read token>")
        elif token == "":
            await _unauthorized(send, "malformed Authorization header: use Bearer <token>")
        else:
            await _forbidden(send, "unknown token")
        return False

    async def _read_body(self, receive: Receive, scope: Scope, send: Send) -> bytes | None:
        declared = _headers(scope).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(send)
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(send)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, send: Send) -> None:
        body = {"error": "payload_too_large", "max_bytes": self.max_body_bytes}
        await _send_json(send, 413, body, [(b"connection", b"close")])


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for the disconnect, as the server's would

    return replay


async def _redirect_to_login(scope: Scope, send: Send) -> None:
    raw_path = scope.get("raw_path")
    target = raw_path.decode("latin-1") if raw_path else quote(scope["path"])
    query = scope.get("query_string", b"").decode("latin-1")
    if query:
        target += "?" + query
    location = "/login?next=" + quote(safe_next(target), safe="")
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"location", location.encode("latin-1")),
                (b"cache-control", b"no-store"),
                (b"content-length", b"0"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})


class WriteNotGranted(Exception):
    """A write route reached without the middleware's grant (it was not installed)."""


def require_write(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> None:
    """Defence in depth on every write route: the middleware must have granted ``write``."""
    if request.scope.get(ROLE_KEY) != "write":
        raise WriteNotGranted


async def _on_not_granted(_request: Request, _exc: Exception) -> JSONResponse:
    return JSONResponse({"error": "forbidden", "detail": "a write token is required"}, 403)


def install_access_control(
    app: FastAPI, guard: TokenGuard, max_body_bytes: int, sessions: SessionBook | None = None
) -> None:
    """Add the middleware (outside the routes) and the handler behind :func:`require_write`."""
    app.add_exception_handler(WriteNotGranted, _on_not_granted)
    app.add_middleware(
        AccessControl,
        guard=guard,
        max_body_bytes=max_body_bytes,
        router=app.router,
        sessions=sessions,
    )
