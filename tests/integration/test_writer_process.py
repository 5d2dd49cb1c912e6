"""``Tracker(writer="process")``: the driver's work in a child process, same counts."""

from __future__ import annotations

import logging
import os
import signal

import pytest

import joblog
from joblog.exceptions import ConfigError
from joblog.storage.store import Store
from tests.support.db import events, jobs_by_id


class TestWriterProcess:
    def test_every_event_and_the_job_are_stored(
        self, database_url: str, log: logging.Logger
    ) -> None:
        tracker = joblog.Tracker(database_url, writer="process", flush_interval=0.05)
        tracker.install_logging()
        try:
            with tracker.job("failover", "live", external_job_id="proc-1") as job:
                for i in range(3000):
                    log.info("event %d", i, extra={"bytes": 65536, "text": "\x00\ud800"})
            assert tracker.flush(60)
            stats = tracker.stats()
            stored = events(tracker.store)
            assert stats.written == 3000 and stats.dropped == 0
            assert len(stored) == 3000
            assert jobs_by_id(tracker.store)[job.id]["status"] != "running"
        finally:
            tracker.close()

    def test_a_killed_child_is_replaced_and_nothing_is_stored_twice(
        self, database_url: str, log: logging.Logger
    ) -> None:
        tracker = joblog.Tracker(database_url, writer="process", flush_interval=0.05)
        tracker.install_logging()
        sink = tracker._process_sink
        assert sink is not None and sink.pid is not None
        try:
            with tracker.job("failover", "live"):
                for i in range(500):
                    log.info("before %d", i)
                assert tracker.flush(60)
                os.kill(sink.pid, signal.SIGKILL)
                for i in range(500):
                    log.info("after %d", i)
            assert tracker.flush(60)
            assert len(events(tracker.store)) == 1000
            assert sink.restarts == 1
        finally:
            tracker.close()

    def test_close_stops_the_child(self, database_url: str) -> None:
        tracker = joblog.Tracker(database_url, writer="process")
        sink = tracker._process_sink
        assert sink is not None
        process = sink._process
        tracker.close()
        assert process is not None and not process.is_alive()

    def test_an_in_memory_database_is_refused(self) -> None:
        store = Store("sqlite://")
        try:
            with pytest.raises(ConfigError, match="writer='process'"):
                joblog.Tracker(store=store, writer="process")
        finally:
            store.close()

    def test_an_unknown_writer_is_refused(self, tmp_path: object) -> None:
        with pytest.raises(ConfigError, match="writer must be"):
            joblog.Tracker(f"sqlite:///{tmp_path}/x.db", writer="fiber")  # type: ignore[arg-type]
