"""The dashboard's sessions as rows: opened at sign-in, deleted at sign-out.

Kept in the database, not in a server's memory, so that every server process (``serve
--workers N``, several servers behind a balancer) sees a sign-out at once. The rows hold
a hash of the cookie's secret, never the secret; the read is
:meth:`joblog.storage.reader.Reader.session_token`.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from joblog.storage import schema
from joblog.storage.engine import storage_errors

__all__ = ["SessionRows"]

sessions = schema.dashboard_sessions


class SessionRows:
    """Writes to ``dashboard_sessions`` (``store.sessions``)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def open(
        self, session_hash: str, token_fingerprint: str, now: datetime, expires_at: datetime
    ) -> None:
        """Store a new session; expired sessions go in the same transaction (the table
        only ever holds the sessions that may still be used)."""
        with storage_errors("opening a session"), self.engine.begin() as conn:
            conn.execute(sessions.delete().where(sessions.c.expires_at <= now))
            conn.execute(
                sessions.insert().values(
                    session_hash=session_hash,
                    token_fingerprint=token_fingerprint,
                    created_at=now,
                    expires_at=expires_at,
                )
            )

    def end(self, session_hash: str) -> bool:
        """Delete the session; False when it was not there (already ended or expired)."""
        with storage_errors("ending a session"), self.engine.begin() as conn:
            deleted = conn.execute(sessions.delete().where(sessions.c.session_hash == session_hash))
        return bool(deleted.rowcount)
