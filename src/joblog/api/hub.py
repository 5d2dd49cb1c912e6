"""One change hub per server process: live streams wait here instead of polling.

A stream subscribes to the job (or events-only external ID) it follows and reads the
database only when the hub wakes it. The hub learns of changes two ways:

* PostgreSQL: one ``LISTEN`` connection (to the Store's ``direct_url``: a transaction
  pooler would hand the session to others), in a thread of its own, receives the
  ``NOTIFY`` every committed write sends (:mod:`joblog.storage.notify`). It reconnects
  after a broken link and then wakes every stream, which resumes from its last event ID.
* Every backend: one shared watcher reads a change mark for *all* followed jobs in a
  single query per tick and wakes the streams whose mark moved. On MariaDB and SQLite it
  ticks every ``poll_interval``; on PostgreSQL it is the slow safety net
  (``safety_interval``, 5 s) for a notification lost to a reconnect.

So an idle stream costs no queries of its own: N idle streams cost one query a tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool

from joblog.exceptions import JobLogError
from joblog.storage.engine import create_engine, storage_errors
from joblog.storage.notify import Key, Listener, change_marks, parse_payload
from joblog.storage.store import Store

__all__ = ["ChangeHub", "HubStats", "Subscription"]

log = logging.getLogger("joblog.api.hub")

#: How long the LISTEN thread gathers notifications before it wakes their streams: the
#: most a notification waits in the hub (psycopg's ``notifies`` returns when it is over).
_LISTEN_BATCH_S = 0.05
#: A key the watcher has not read yet: its first mark always counts as a change.
_UNSEEN: tuple[Any, ...] = ("unseen",)


class Subscription:
    """One stream's place in the hub: ``wait`` returns when its key may have changed."""

    def __init__(self, key: Key) -> None:
        self.key = key
        self._event = anyio.Event()
        #: When the last wake came (time.monotonic()): reads started later see its change.
        self.woken_at = 0.0

    def wake(self) -> None:
        self.woken_at = time.monotonic()
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """True when woken (or already woken since the last wait), False on timeout."""
        with anyio.move_on_after(timeout):
            await self._event.wait()
        woken = self._event.is_set()
        if woken:
            self._event = anyio.Event()
        return woken


@dataclass(slots=True)
class HubStats:
    """Counters for tests and ``joblog bench scale``."""

    notifications: int = 0
    watcher_ticks: int = 0
    wakes: int = 0
    reconnects: int = 0


class ChangeHub:
    """Subscriptions by key, fed by the LISTEN thread (PostgreSQL) and the shared watcher."""

    def __init__(self, store: Store, *, poll_interval: float, safety_interval: float) -> None:
        self.store = store
        self.listens = store.backend.name == "postgresql"
        self.watch_interval = safety_interval if self.listens else poll_interval
        self.stats = HubStats()
        self.running = False
        self._subscribers: dict[Key, set[Subscription]] = {}
        self._marks: dict[Key, tuple[Any, ...]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        #: Called (on the event loop) with the keys of every change heard, followed or
        #: not: the summary cache forgets those jobs.
        self.on_change: list[Callable[[list[Key]], None]] = []

    # -- subscribing ----------------------------------------------------------------------

    @contextlib.contextmanager
    def subscribe(self, key: Key) -> Any:
        subscription = Subscription(key)
        self._subscribers.setdefault(key, set()).add(subscription)
        self._marks.setdefault(key, _UNSEEN)
        try:
            yield subscription
        finally:
            followers = self._subscribers.get(key)
            if followers is not None:
                followers.discard(subscription)
                if not followers:
                    del self._subscribers[key]
                    self._marks.pop(key, None)

    @property
    def followed(self) -> int:
        return len(self._subscribers)

    def wake(self, keys: Iterable[Key]) -> None:
        """Wake every stream following one of ``keys`` (on the event loop)."""
        keys = list(keys)
        for callback in self.on_change:
            callback(keys)
        for key in keys:
            for subscription in self._subscribers.get(key, ()):
                subscription.wake()
                self.stats.wakes += 1

    def wake_all(self) -> None:
        self.wake(list(self._subscribers))

    # -- running --------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled (in the app's lifespan task group)."""
        self._loop = asyncio.get_running_loop()
        self.running = True
        thread = None
        if self.listens:
            self._stop.clear()
            thread = threading.Thread(target=self._listen, name="joblog-listen", daemon=True)
            thread.start()
        try:
            while True:
                await anyio.sleep(self.watch_interval)
                await self._watch_once()
        finally:
            self.running = False
            self._stop.set()
            if thread is not None:
                await run_in_threadpool(thread.join, 5.0)

    async def _watch_once(self) -> None:
        keys = list(self._subscribers)
        if not keys:
            return
        try:
            # The primary's marks: a replica may not have replayed what a NOTIFY announced.
            marks = await run_in_threadpool(change_marks, self.store.primary_reads, keys)
        except JobLogError as error:  # the database is away: the streams retry on their own
            log.debug("watcher: %s", error)
            return
        self.stats.watcher_ticks += 1
        moved = []
        for key in keys:
            mark = marks.get(key, ())
            if key in self._marks and self._marks[key] != mark:
                moved.append(key)
                self._marks[key] = mark
        self.wake(moved)

    def _listen(self) -> None:
        """The LISTEN thread: hands payloads to the loop; reconnects with a backoff."""
        # LISTEN needs a session of its own: never through a transaction pooler.
        engine = create_engine(self.store.direct_url, "read", pool_size=1, max_overflow=0)
        listener = Listener(engine)
        connected = False
        delay = 0.5
        try:
            while not self._stop.is_set():
                try:
                    with storage_errors("listening for changes"):
                        if not connected:
                            listener.connect()
                            connected = True
                            delay = 0.5
                            # Anything committed while not listening: every stream re-reads.
                            self._from_thread(self.wake_all)
                            self.stats.reconnects += 1
                        keys: set[Key] = set()
                        for payload in listener.payloads(timeout=_LISTEN_BATCH_S):
                            parsed = parse_payload(payload)
                            if parsed is not None:
                                keys.add((parsed[0], parsed[2]))
                        if keys:
                            self.stats.notifications += len(keys)
                            self._from_thread(self.wake, keys)
                except Exception as error:  # a broken link, or anything else: never a dead thread
                    log.warning("change listener lost its connection: %s", error)
                    listener.close()
                    connected = False
                    self._stop.wait(delay)
                    delay = min(delay * 2, 5.0)
        finally:
            listener.close()
            engine.dispose()

    def _from_thread(self, function: Any, *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is shutting down
                loop.call_soon_threadsafe(function, *args)


@contextlib.asynccontextmanager
async def running_hub(hub: ChangeHub) -> AsyncIterator[ChangeHub]:
    """Run ``hub`` for the duration of the block (tests and benchmarks)."""
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(hub.run)
        try:
            yield hub
        finally:
            tasks.cancel_scope.cancel()
