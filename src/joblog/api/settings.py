"""The server's tunables, in one place, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ApiSettings"]


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """How often the stream polls, how it keeps a connection alive, how long health waits.

    ``poll_interval``: seconds between two ticks of the shared change watcher on MariaDB
    and SQLite (one query for all followed jobs), and between two reads of a stream that
    has no change hub (legacy rows). ``safety_interval``: the watcher's tick on
    PostgreSQL, where ``NOTIFY`` wakes the streams and the watcher only catches a lost one.
    ``keepalive_interval``: seconds of silence after which a ``: keepalive`` comment is sent.
    ``retry_ms``: the reconnect delay the ``retry:`` field asks EventSource clients to use.
    ``stream_batch``: log events read per poll; a full batch is followed at once by the next.
    ``health_timeout``: seconds ``/healthz`` waits for the database before answering 503.

    Access and ingest (:mod:`joblog.api.auth`, :mod:`joblog.api.routes_write`):
    ``write_tokens`` authorize writes; none means every write is refused, unless
    ``insecure_no_auth``. ``read_tokens``: when set, reads and the dashboard need a read
    or write token. ``write_api``: False leaves the write routes out. ``external_id_policy``:
    "reject" or "allow" a new job whose external ID a running job holds.
    ``max_body_bytes``: larger request bodies get 413. ``session_max_age``: seconds a
    dashboard login lasts. ``worker_threads``: threads for blocking handlers and database
    calls; a few keep the database busy, more only contend for the GIL.
    """

    poll_interval: float = 0.3
    safety_interval: float = 5.0
    keepalive_interval: float = 15.0
    retry_ms: int = 2000
    stream_batch: int = 500
    health_timeout: float = 2.0
    write_tokens: tuple[str, ...] = field(default=(), repr=False)
    read_tokens: tuple[str, ...] = field(default=(), repr=False)
    insecure_no_auth: bool = False
    write_api: bool = True
    external_id_policy: str = "reject"
    max_body_bytes: int = 5 * 1024 * 1024
    session_max_age: int = 12 * 3600
    worker_threads: int = 2

    def __post_init__(self) -> None:
        if not 0.01 <= self.poll_interval <= 60:
            raise ValueError("poll_interval must be between 0.01 and 60 seconds")
        if not 0.01 <= self.safety_interval <= 600:
            raise ValueError("safety_interval must be between 0.01 and 600 seconds")
        if self.keepalive_interval <= 0 or self.health_timeout <= 0:
            raise ValueError("keepalive_interval and health_timeout must be positive")
        if self.retry_ms < 0 or self.stream_batch < 1:
            raise ValueError("retry_ms must be >= 0 and stream_batch >= 1")
        if not 1 <= self.worker_threads <= 64:
            raise ValueError("worker_threads must be between 1 and 64")
        if self.external_id_policy not in ("reject", "allow"):
            raise ValueError("external_id_policy must be 'reject' or 'allow'")
        if self.max_body_bytes < 1024 or self.session_max_age < 60:
            raise ValueError("max_body_bytes must be >= 1024 and session_max_age >= 60")
