"""The server's tunables, in one place, with their defaults."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any

from joblog._config import parse_duration
from joblog.exceptions import ConfigError

__all__ = ["ENVIRONMENT", "ApiSettings"]


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

    Housekeeping while serving: ``reap_interval`` seconds between sweeps that fail
    abandoned jobs (None: none); ``retention``: prune log events older than this every
    ``prune_interval`` seconds (None: keep all).

    More databases (PostgreSQL; see docs/DEPLOYING.md), used when ``create_app`` opens the
    Store itself: ``read_url``, a streaming replica that answers the reads it may
    (:mod:`joblog.storage.replica`), at most ``read_max_lag`` seconds behind;
    ``direct_url``, the primary without a transaction pooler, for LISTEN and advisory
    locks when the database URL goes through PgBouncer.

    :meth:`from_env` reads each field from its ``JOBLOG_*`` variable (:data:`ENVIRONMENT`),
    the same variables ``joblog serve`` reads, so ``create_app()`` under any ASGI server
    is configured as ``joblog serve`` is.
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
    reap_interval: float | None = None
    retention: timedelta | None = None
    prune_interval: float = 3600.0
    read_url: str | None = field(default=None, repr=False)
    direct_url: str | None = field(default=None, repr=False)
    read_max_lag: float = 2.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ApiSettings:
        """Settings from ``JOBLOG_*`` variables (unset ones keep their defaults), then
        ``overrides``; a bad value is a :class:`ConfigError` naming the variable."""
        from joblog.api.auth import load_tokens

        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            "write_tokens": load_tokens("WRITE", env),
            "read_tokens": load_tokens("READ", env),
        }
        for name, (variable, parse) in ENVIRONMENT.items():
            raw = env.get(variable, "").strip()
            if raw and name not in overrides:
                try:
                    values[name] = parse(raw)
                except ValueError as exc:
                    raise ConfigError(f"{variable}={raw[:80]!r}: {exc}") from exc
        values.update(overrides)
        if not values.get("write_api", True):
            values["insecure_no_auth"] = False
        try:
            return cls(**values)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

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
        if self.reap_interval is not None and not 0 < self.reap_interval <= 86400:
            raise ValueError("reap_interval must be between 0 and 86400 seconds")
        if not 0 < self.prune_interval <= 366 * 86400:
            raise ValueError("prune_interval must be positive (at most a year)")
        if self.retention is not None and self.retention <= timedelta(0):
            raise ValueError("retention must be positive")
        if not 0.05 <= self.read_max_lag <= 3600:
            raise ValueError("read_max_lag must be between 0.05 and 3600 seconds")


def _number(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"not a{'n integer' if kind is int else ' number'}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("not a finite number")
        return value

    return parse


def _flag(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("use true or false (1/0, yes/no, on/off)")


def _reap(raw: str) -> float | None:
    value = float(_number(float)(raw))
    return None if value == 0 else value


def _duration_seconds(raw: str) -> float:
    return _duration(raw).total_seconds()


def _duration(raw: str) -> timedelta:
    return parse_duration(raw)


#: Field -> (environment variable, parser). ``joblog serve`` reads the same variables.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "poll_interval": ("JOBLOG_POLL_INTERVAL", _number(float)),
    "keepalive_interval": ("JOBLOG_KEEPALIVE_INTERVAL", _number(float)),
    "health_timeout": ("JOBLOG_HEALTH_TIMEOUT", _number(float)),
    "stream_batch": ("JOBLOG_STREAM_BATCH", _number(int)),
    "insecure_no_auth": ("JOBLOG_INSECURE_NO_AUTH", _flag),
    "write_api": ("JOBLOG_READ_ONLY", lambda raw: not _flag(raw)),
    "external_id_policy": ("JOBLOG_EXTERNAL_ID_POLICY", str),
    "max_body_bytes": ("JOBLOG_MAX_BODY_BYTES", _number(int)),
    "session_max_age": ("JOBLOG_SESSION_MAX_AGE", lambda raw: int(_duration_seconds(raw))),
    "worker_threads": ("JOBLOG_WORKER_THREADS", _number(int)),
    "reap_interval": ("JOBLOG_REAP_INTERVAL", _reap),
    "retention": ("JOBLOG_RETENTION", _duration),
    "prune_interval": ("JOBLOG_PRUNE_INTERVAL", _duration_seconds),
    "read_url": ("JOBLOG_READ_DATABASE_URL", str),
    "direct_url": ("JOBLOG_DIRECT_DATABASE_URL", str),
    "read_max_lag": ("JOBLOG_READ_MAX_LAG", _duration_seconds),
}
assert set(ENVIRONMENT) <= {f.name for f in fields(ApiSettings)}
