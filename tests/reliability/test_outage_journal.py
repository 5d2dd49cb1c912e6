"""An outage longer than the memory queue lasts: the queue spills to the journal, and after
recovery every event is stored once; nothing is dropped."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import sqlalchemy as sa

import joblog
from joblog.storage.store import Store
from tests.reliability.conftest import Record
from tests.support.db import events
from tests.support.faultproxy import FaultProxy

LINES = 5000
MAX_QUEUE = 50


@contextmanager
def sqlite_write_lock(url: str) -> Iterator[None]:
    """Another connection holds SQLite's write lock: no batch can commit."""
    blocker = sqlite3.connect(sa.make_url(url).database or "", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


@contextmanager
def cut_link(proxy: FaultProxy) -> Iterator[None]:
    """Every connection to the database reset, new ones refused."""
    proxy.cut()
    try:
        yield
    finally:
        proxy.restore()


def outage_for(
    backend: str, direct: str
) -> tuple[str, Callable[[], AbstractContextManager[None]], FaultProxy | None]:
    """The URL the tracker uses and the outage to inject on ``backend``."""
    if backend == "sqlite":
        return direct, lambda: sqlite_write_lock(direct), None
    url = sa.make_url(direct)
    proxy = FaultProxy(url.host or "127.0.0.1", url.port or 0)
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    return proxied, lambda: cut_link(proxy), proxy


def test_an_outage_longer_than_the_queue_drops_nothing(
    backend: str, database_url: str, reliability: Record
) -> None:
    Store(database_url).close()  # the schema, made directly
    url, outage, proxy = outage_for(backend, database_url)
    tracker = joblog.Tracker(
        url, batch_size=10, max_queue=MAX_QUEUE, flush_interval=0.05, heartbeat_interval=60
    )
    log = logging.getLogger("outage.journal")
    log.setLevel(logging.INFO)
    tracker.install_logging(log)
    try:
        with outage(), tracker.job("backup", "outage") as job:
            for i in range(LINES):
                log.info("copied block %d", i)
            time.sleep(1.0)  # the writer keeps failing against the outage
        assert tracker.flush(120)
        stats = tracker.stats()
    finally:
        tracker.close()
        if proxy is not None:
            proxy.close()
    store = Store(database_url)
    try:
        stored = Counter(
            row["message"] for row in events(store) if row["message"].startswith("copied")
        )
        finished = store.reads.get_job(job.id)
    finally:
        store.close()
    assert stats.dropped == 0
    assert stats.spilled > 0
    assert (len(stored), max(stored.values())) == (LINES, 1)
    assert finished is not None and finished.status is joblog.JobStatus.COMPLETED
    reliability.injected = (
        "SQLite write lock held by another connection"
        if backend == "sqlite"
        else "every connection reset, new ones refused"
    ) + f" while {LINES} lines are logged into a {MAX_QUEUE}-event queue"
    reliability.measured = {
        "stored": LINES,
        "dropped": stats.dropped,
        "spilled to the journal": stats.spilled,
        "writer retries": stats.retries,
    }
