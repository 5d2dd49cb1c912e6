"""Reads from a PostgreSQL streaming replica, and the reads that go to the primary instead.

A hot standby replays the primary's commits in commit order, a little later (its lag): an
answer it gives was true on the primary a moment before. Four kinds of answer would
mislead a client that trusts them, and :class:`ReplicaRoute` sends those reads to the
primary:

* **Not found.** A job created a moment ago is not on the replica yet. A read whose
  emptiness would be a 404 (the resolution of an ID, a job or a legacy row by ID) and
  that finds nothing on the replica is asked of the primary, and the rest of that
  request's reads go to the primary too, so that one answer never mixes the new job with
  the replica's older view of its steps and events.
* **The client's own writes.** A request that writes reads the primary (the write API
  resolves IDs and answers from the primary's rows). Its answer carries the primary's
  WAL position; a read that sends it back (:data:`~joblog.api.read_routing.POSITION_HEADER`)
  is served by the replica only once it has replayed that far, otherwise by the primary.
* **A replica far behind** (replay paused by a conflicting query, a broken link, a
  restore). The route samples the primary's WAL position every ``check_interval`` and
  the replica's replay position beside it; while the replica has not replayed what the
  primary had written ``max_lag`` seconds ago, every read goes to the primary. So an
  answer from the replica is at most about ``max_lag`` old, and a job started again
  under the same external ID shows as its previous run for no longer than that.
* **A replica that does not answer**: reads go to the primary, and the replica is tried
  again ``retry_after`` seconds later.

Streams, and the change detection that wakes them, read the primary (they read because
a commit on the primary told them to, which the replica may not have replayed yet); so
do the write paths. :func:`on_primary` marks such a block; a request's
:func:`read_session` carries the decision across the worker threads of one request.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from joblog.exceptions import JobLogError, StorageUnavailable
from joblog.storage.dialects import Backend
from joblog.storage.engine import storage_errors

__all__ = [
    "ReadSession",
    "ReplicaRoute",
    "ReplicaStats",
    "format_position",
    "on_primary",
    "parse_position",
    "pin_to_primary",
    "read_session",
]

log = logging.getLogger("joblog.storage")

_POSITION = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})", re.ASCII)


def parse_position(text: str) -> int:
    """A WAL position as PostgreSQL writes it (``16/B374D848``) as a number; ValueError
    for anything else."""
    match = _POSITION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a WAL position: {text[:40]!r}")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_position(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


# -- a request's reads -------------------------------------------------------------------


@dataclass(slots=True)
class ReadSession:
    """The reads of one request: ``primary`` once any of them must see the primary's
    present; ``after``: a WAL position the replica must have replayed to answer."""

    primary: bool = False
    after: int | None = None


_SESSION: ContextVar[ReadSession | None] = ContextVar("joblog_read_session", default=None)


@contextlib.contextmanager
def read_session(*, primary: bool = False, after: int | None = None) -> Iterator[ReadSession]:
    """A session for the reads of the block (the context is copied into worker threads,
    so one request's reads share it, and what one decides the next ones see)."""
    session = ReadSession(primary, after)
    token = _SESSION.set(session)
    try:
        yield session
    finally:
        _SESSION.reset(token)


@contextlib.contextmanager
def on_primary() -> Iterator[None]:
    """Every read in the block goes to the primary; inside a request's session, the rest
    of that request's reads do too."""
    session = _SESSION.get()
    if session is not None:
        session.primary = True
        yield
        return
    with read_session(primary=True):
        yield


def pin_to_primary() -> None:
    """The rest of the current session's reads go to the primary (no session: no-op)."""
    session = _SESSION.get()
    if session is not None:
        session.primary = True


# -- the route ----------------------------------------------------------------------------


@dataclass(slots=True)
class ReplicaStats:
    """What the route decided (tests, ``/metrics``, benchmarks)."""

    replica_reads: int = 0
    primary_reads: int = 0
    not_found_on_replica: int = 0
    replica_errors: int = 0
    lag_checks: int = 0
    lagging: bool = False


class ReplicaRoute:
    """Whether the replica may answer the next read, and what it knows of its lag.

    ``engine`` reaches the replica, ``primary`` the primary (for its WAL position). The
    lag check runs inline, in the read that finds the last one older than
    ``check_interval``: two small queries, once per interval per process.
    """

    def __init__(
        self,
        engine: sa.Engine,
        primary: sa.Engine,
        backend: Backend,
        *,
        max_lag: float = 2.0,
        check_interval: float = 0.5,
        retry_after: float = 5.0,
    ) -> None:
        if max_lag <= 0 or check_interval <= 0 or retry_after <= 0:
            raise ValueError("max_lag, check_interval and retry_after must be positive")
        self.engine = engine
        self.primary = primary
        self.backend = backend
        self.max_lag = max_lag
        self.check_interval = check_interval
        self.retry_after = retry_after
        self.stats = ReplicaStats()
        self._lock = threading.Lock()
        self._checked_at = -float("inf")
        self._replayed = -1
        self._samples: collections.deque[tuple[float, int]] = collections.deque(maxlen=4096)
        self._down_until = -float("inf")
        self._primary_retry_at = -float("inf")

    def usable(self) -> bool:
        """True when the next read may go to the replica (False also pins the session to
        the primary when the replica has not replayed the position it asked for)."""
        session = _SESSION.get()
        if session is not None and session.primary:
            return False
        now = time.monotonic()
        if now < self._down_until:
            return False
        if now - self._checked_at >= self.check_interval:
            self._check(now)
        after = None if session is None else session.after
        if after is not None and after > self._replayed:
            self._refresh_replayed()
            if after > self._replayed:
                assert session is not None
                session.primary = True
                return False
        return not self.stats.lagging and now >= self._down_until

    def missed(self) -> None:
        """The replica found nothing where the primary may have something: the read, and
        the rest of its session, go to the primary."""
        self.stats.not_found_on_replica += 1
        session = _SESSION.get()
        if session is not None:
            session.primary = True

    def failed(self, error: JobLogError) -> None:
        """A read on the replica failed; an unreachable replica is left alone a while."""
        self.stats.replica_errors += 1
        if isinstance(error, StorageUnavailable):
            if time.monotonic() >= self._down_until:
                log.warning(
                    "read replica unavailable, reading the primary for %gs: %s",
                    self.retry_after,
                    error,
                )
            self._down_until = time.monotonic() + self.retry_after
        else:
            log.info("a read failed on the replica, asking the primary: %s", error)

    # -- the lag ----------------------------------------------------------------------------

    def _check(self, now: float) -> None:
        if not self._lock.acquire(blocking=False):
            return  # another thread is checking; use what is known
        try:
            if now - self._checked_at < self.check_interval:
                return
            self._checked_at = now
            self.stats.lag_checks += 1
            written = None
            if now >= self._primary_retry_at:
                try:
                    written = self._position(self.primary, self.backend.write_position)
                except JobLogError:
                    # The primary is away: the replica is what there is; do not make a
                    # read wait for the primary's connect timeout at every check.
                    self._primary_retry_at = now + self.retry_after
            if written is not None:
                self._samples.append((now, written))
            if not self._refresh_replayed():
                return
            samples = self._samples
            while samples and samples[0][1] <= self._replayed:
                samples.popleft()
            lagging = bool(samples) and now - samples[0][0] > self.max_lag
            if lagging != self.stats.lagging:
                log.warning(
                    "read replica %s",
                    f"more than {self.max_lag:g}s behind: reading the primary"
                    if lagging
                    else "caught up: reading it again",
                )
            self.stats.lagging = lagging
        finally:
            self._lock.release()

    def _refresh_replayed(self) -> bool:
        """Read the replica's replay position; False (and the replica left alone a
        while) when it cannot be read."""
        try:
            replayed = self._position(self.engine, self.backend.replay_position)
        except JobLogError as error:
            self.failed(error)
            return False
        if replayed is not None:
            self._replayed = replayed
        return True

    @staticmethod
    def _position(engine: sa.Engine, query: Any) -> int | None:
        with storage_errors("reading a WAL position"), engine.connect() as conn:
            value = query(conn)
        return None if value is None else int(value)
