"""The batch writer: drains on flush and close, survives an outage, counts what it drops."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

import joblog
from joblog.exceptions import StorageUnavailable
from joblog.storage.store import Store
from tests.support.db import events
from tests.support.faultproxy import FaultProxy


def count_events(store: Store) -> int:
    return len(events(store))


class TestDraining:
    def test_flush_stores_everything_logged_before_it(
        self, tracker: joblog.Tracker, log: logging.Logger
    ) -> None:
        with tracker.job("failover", "live"):
            for i in range(5000):
                log.info("event %d", i)
        assert tracker.flush(60)
        assert count_events(tracker.store) == 5000

    def test_close_drains_the_queue(self, database_url: str, log: logging.Logger) -> None:
        tracker = joblog.Tracker(database_url, flush_interval=5)
        tracker.install_logging()
        with tracker.job("failover", "live"):
            for i in range(3000):
                log.info("event %d", i)
        store = Store(database_url)
        tracker.close()
        assert count_events(store) == 3000
        store.close()

    def test_logging_after_close_neither_fails_nor_stores(
        self, database_url: str, log: logging.Logger
    ) -> None:
        tracker = joblog.Tracker(database_url)
        handler = tracker.install_logging()
        tracker.close()
        log.info("after close")  # the handler is detached
        handler.handle(
            logging.LogRecord(
                "app", logging.INFO, __file__, 1, "straight to the handler", None, None
            )
        )
        assert tracker.stats().dropped_after_close == 1


class _Switch:
    """Makes ``store.apply_batch`` fail as if the database were down, until turned off."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.down = threading.Event()
        real = store.apply_batch

        def apply_batch(*args: object, **kwargs: object) -> bool:
            if self.down.is_set():
                raise StorageUnavailable("database unavailable: connection refused")
            return real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(store, "apply_batch", apply_batch)


@pytest.fixture
def outage_tracker(
    backend: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[joblog.Tracker, object]]:
    """A tracker whose database can be cut: through a TCP proxy on servers, a switch on SQLite."""
    if backend == "sqlite":
        tracker = joblog.Tracker(database_url, flush_interval=0.05)
        switch = _Switch(tracker.store, monkeypatch)
        cut, restore = switch.down.set, switch.down.clear
        proxy = None
    else:
        url = sa.make_url(database_url)
        Store(url).close()  # create the schema directly, then go through the proxy
        proxy = FaultProxy(url.host or "127.0.0.1", url.port or 0)
        tracker = joblog.Tracker(
            url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
            flush_interval=0.05,
        )
        cut, restore = proxy.cut, proxy.restore
    tracker.install_logging()
    yield tracker, (cut, restore)
    restore()
    tracker.close()
    if proxy is not None:
        proxy.close()


class TestOutage:
    def test_no_event_is_lost_while_the_database_is_down(
        self, outage_tracker: tuple[joblog.Tracker, object], log: logging.Logger
    ) -> None:
        tracker, (cut, restore) = outage_tracker  # type: ignore[misc]
        with tracker.job("failover", "live", steps=["sync", "power-on"]) as job:
            with job.step("sync"):
                for i in range(200):
                    log.info("before %d", i)
                assert tracker.flush(30)
                cut()
                for i in range(500):
                    log.info("during %d", i)
                time.sleep(1.0)  # the writer meets the outage and retries
                assert not tracker.flush(0.2)
                assert tracker.stats().retries > 0
                restore()
            with job.step("power-on"):
                log.info("after")
        assert tracker.flush(60)
        stored = [row["message"] for row in events(tracker.store)]
        expected = [f"before {i}" for i in range(200)] + [f"during {i}" for i in range(500)]
        assert sorted(stored) == sorted([*expected, "after"])  # none lost, none twice
        assert tracker.stats().dropped == 0
        summary = tracker.resolve(job.id)
        assert summary.job.status is joblog.JobStatus.COMPLETED
        assert [s.status.value for s in summary.steps] == ["completed", "completed"]


class TestFullQueue:
    def test_a_full_queue_in_an_outage_spills_to_the_journal_and_loses_nothing(
        self, database_url: str, log: logging.Logger, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        tracker = joblog.Tracker(
            database_url, batch_size=10, max_queue=100, full_queue_timeout=0.01
        )
        switch = _Switch(tracker.store, monkeypatch)
        tracker.install_logging()
        try:
            switch.down.set()
            with tracker.job("failover", "live"):
                for i in range(300):
                    log.info("event %d", i)
            stats = tracker.stats()
            assert stats.dropped == 0
            assert stats.spilled > 0
            switch.down.clear()
            assert tracker.flush(30)
            assert count_events(tracker.store) == 300
        finally:
            tracker.close()
