"""The server's tunables, in one place, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ApiSettings"]


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """How often the stream polls, how it keeps a connection alive, how long health waits.

    ``poll_interval``: seconds between two database reads of one followed job (the
    producer may be another process, so the stream polls rather than subscribes).
    ``keepalive_interval``: seconds of silence after which a ``: keepalive`` comment is sent.
    ``retry_ms``: the reconnect delay the ``retry:`` field asks EventSource clients to use.
    ``stream_batch``: log events read per poll; a full batch is followed at once by the next.
    ``health_timeout``: seconds ``/healthz`` waits for the database before answering 503.
    """

    poll_interval: float = 0.3
    keepalive_interval: float = 15.0
    retry_ms: int = 2000
    stream_batch: int = 500
    health_timeout: float = 2.0

    def __post_init__(self) -> None:
        if not 0.01 <= self.poll_interval <= 60:
            raise ValueError("poll_interval must be between 0.01 and 60 seconds")
        if self.keepalive_interval <= 0 or self.health_timeout <= 0:
            raise ValueError("keepalive_interval and health_timeout must be positive")
        if self.retry_ms < 0 or self.stream_batch < 1:
            raise ValueError("retry_ms must be >= 0 and stream_batch >= 1")
