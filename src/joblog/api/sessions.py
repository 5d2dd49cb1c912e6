"""The dashboard's sessions: a random secret in a cookie, the session itself in the database.

A browser cannot send a bearer token with a page request or an EventSource, so the
dashboard trades a token for a session once (``/login``). The cookie holds 32 random
bytes; the ``dashboard_sessions`` row holds their SHA-256 and the fingerprint of the token
that signed in, so that:

* signing out deletes the row, and a copy of the cookie stops working in every server
  process at once (``serve --workers N``, several servers on one database);
* the session's role is the token's role in the configuration *now*: removing a token
  ends its sessions, moving it from the write to the read list takes their writes away;
* a copy of the table opens no session (it has hashes, not secrets).

A write session (signed in with a write token) may do what the dashboard offers, and
nothing else: :data:`SESSION_WRITES`. Such a request must carry the session's CSRF token
in ``X-CSRF-Token``; a cookie alone never writes. The CSRF token is an HMAC of a fixed
label keyed by the session's secret: bound to that session, derivable only by whoever
holds the cookie (the server), and put into the pages the session is shown.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from starlette.types import Scope

from joblog._ids import utcnow

if TYPE_CHECKING:
    from joblog.api.auth import TokenGuard
    from joblog.storage.store import Store

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "SESSION_KEY",
    "SESSION_WRITES",
    "Session",
    "SessionBook",
    "cookie_value",
    "csrf_matches",
    "csrf_token",
]

SESSION_COOKIE = "joblog_session"
#: Where a form sends the CSRF token, and the header a script sends it in.
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
#: The scope key where the request's session is kept once looked up (None: no session).
SESSION_KEY = "joblog.session"
#: (method, route path) of the writes a write session may make: the dashboard's actions.
SESSION_WRITES = frozenset({("POST", "/api/v1/jobs/{any_id:path}/cancel")})

_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in dashboard session: its role now, and its CSRF token."""

    role: Literal["read", "write"]
    csrf_token: str


def cookie_value(scope: Scope, name: str = SESSION_COOKIE) -> str | None:
    """The value of cookie ``name`` in the request, or None."""
    for header, value in scope.get("headers") or ():
        if header.lower() != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            key, _, found = part.strip().partition("=")
            if key == name and found:
                return str(found)
    return None


def _well_formed(secret: str | None) -> bool:
    return secret is not None and _SECRET.fullmatch(secret) is not None


def _hash(secret: str) -> str:
    return hashlib.sha256(b"joblog-session:" + secret.encode("ascii")).hexdigest()


def csrf_token(secret: str) -> str:
    """The CSRF token of the session whose cookie holds ``secret``."""
    return hmac.new(secret.encode("ascii"), b"joblog-csrf", hashlib.sha256).hexdigest()


def csrf_matches(secret: str | None, presented: str | None) -> bool:
    """True when ``presented`` is the CSRF token of that session (constant time)."""
    if not _well_formed(secret) or not presented or len(presented) > 128:
        return False
    assert secret is not None
    return hmac.compare_digest(csrf_token(secret).encode(), presented.encode("utf-8", "replace"))


class SessionBook:
    """Open, find and end the dashboard's sessions (``app.state.sessions``)."""

    def __init__(self, guard: TokenGuard, store: Store, max_age: int) -> None:
        self.guard = guard
        self.store = store
        self.max_age = max_age

    @property
    def local(self) -> bool:
        """A lookup is a local call (SQLite file): no need to leave the event loop."""
        return self.store.reads_are_local

    def open(self, token: str) -> str:
        """A new session for a configured ``token``; the cookie's value."""
        secret = secrets.token_urlsafe(32)
        now = utcnow()
        self.store.sessions.open(
            _hash(secret),
            self.guard.fingerprint(token),
            now,
            now + timedelta(seconds=self.max_age),
        )
        return secret

    def find(self, secret: str | None) -> Session | None:
        """The unexpired session of a cookie whose token is still configured, or None."""
        if not _well_formed(secret):
            return None
        assert secret is not None
        # The primary's answer: a replica could still hold a session just ended (or miss
        # one just opened) for as long as it lags.
        fingerprint = self.store.primary_reads.session_token(_hash(secret), utcnow())
        if fingerprint is None:
            return None
        role = self.guard.role_of_fingerprint(fingerprint)
        return None if role is None else Session(role, csrf_token(secret))

    def end(self, secret: str | None) -> bool:
        """Delete the session (sign-out); False when there was none."""
        return _well_formed(secret) and self.store.sessions.end(_hash(str(secret)))

    def of_request(self, scope: Scope) -> Session | None:
        """The request's session, looked up once per request (the middleware may have)."""
        if SESSION_KEY not in scope:
            scope[SESSION_KEY] = self.find(cookie_value(scope))
        session: Session | None = scope[SESSION_KEY]
        return session
