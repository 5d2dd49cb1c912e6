"""A short-lived, per-process cache of status bodies, checked against the job's ETag.

A status body is served from here only while the job's entity tag, read afresh in the
resolving round trip of every request (:mod:`joblog.api.state`), is the one it was built
for: the cache saves the reads of steps, events and children and the building of the
body, never freshness. Entries of running jobs live ``ttl`` seconds (their elapsed
time and ETA move with the clock), those of finished jobs ``ttl_finished``. The change
hub drops a job's entries as soon as it hears of a change (PostgreSQL's ``NOTIFY``, the
shared watcher elsewhere), and the oldest entries go first past ``max_entries``.

Each server process has its own; nothing here is shared state: with ``--workers N``
each worker validates against the database on its own.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["CachedBody", "SummaryCache"]


@dataclass(frozen=True, slots=True)
class CachedBody:
    job_id: str
    tag: str
    body: bytes
    expires: float


class SummaryCache:
    """Bodies by (route, asked ID); see the module doc."""

    def __init__(
        self, *, max_entries: int = 2048, ttl: float = 1.0, ttl_finished: float = 300.0
    ) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self.ttl_finished = ttl_finished
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[str, str], CachedBody] = OrderedDict()
        self._by_job: dict[str, set[tuple[str, str]]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[str, str], tag: str) -> bytes | None:
        """The body cached for ``key`` if it was built for ``tag`` and is still fresh."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.tag != tag or entry.expires < time.monotonic():
                self.misses += 1
                return None
            self.hits += 1
            return entry.body

    def put(self, key: tuple[str, str], job_id: str, tag: str, body: bytes, finished: bool) -> None:
        if self.max_entries <= 0:
            return
        expires = time.monotonic() + (self.ttl_finished if finished else self.ttl)
        with self._lock:
            self._drop(key)
            self._entries[key] = CachedBody(job_id, tag, body, expires)
            self._by_job.setdefault(job_id, set()).add(key)
            while len(self._entries) > self.max_entries:
                self._drop(next(iter(self._entries)))

    def forget(self, job_ids: Iterable[str]) -> None:
        """Drop every entry of these jobs (the change hub calls this)."""
        with self._lock:
            for job_id in job_ids:
                for key in self._by_job.pop(job_id, ()):
                    self._entries.pop(key, None)

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            keys = self._by_job.get(entry.job_id)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_job[entry.job_id]
