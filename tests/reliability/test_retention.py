"""Pruning old events while a producer keeps writing."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import joblog
from joblog._ids import utcnow
from joblog._ops import InsertEvents
from joblog.storage import schema
from tests.reliability.conftest import Record
from tests.support.db import events


def test_pruning_in_small_batches_keeps_writers_moving(
    database_url: str, reliability: Record
) -> None:
    old_events = 30_000
    reliability.injected = f"prune of {old_events:,} old events in batches of 500 while a job logs"
    tracker = joblog.Tracker(database_url, flush_interval=0.02)
    tracker.install_logging()
    store = tracker.store
    old = utcnow() - timedelta(days=60)
    rows = [
        (None, None, None, "DEBUG", f"old {i}", None, old, None, None) for i in range(old_events)
    ]
    for start in range(0, old_events, 5000):
        store.apply_batch([InsertEvents(rows[start : start + 5000])])
    apply_times: list[float] = []
    real_apply = store.apply_batch

    def timed_apply(*args: object, **kwargs: object) -> bool:
        started = time.perf_counter()
        try:
            return real_apply(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            apply_times.append(time.perf_counter() - started)

    store.apply_batch = timed_apply  # type: ignore[method-assign]
    log = logging.getLogger("retention")
    log.setLevel(logging.INFO)
    done = threading.Event()
    report = []
    try:
        with tracker.job("failover", "live", steps=["sync"]) as job, job.step("sync"):

            def prune() -> None:
                report.append(store.housekeeping.prune(timedelta(days=30), batch_size=500))
                done.set()

            pruner = threading.Thread(target=prune)
            pruner.start()
            sent = 0
            while not done.is_set():
                log.info("live %d", sent)
                sent += 1
                time.sleep(0.001)
            pruner.join()
        assert tracker.flush(60)
        live = [row for row in events(store) if row["message"].startswith("live ")]
        assert len(live) == sent
        assert report[0].events == old_events
        with store.engine.connect() as conn:
            left = conn.execute(
                schema.log_events.select().where(schema.log_events.c.message.like("old %"))
            ).first()
        assert left is None
        slowest = max(apply_times)
        # "A moment": no writer transaction waited on the pruner for long.
        assert slowest < 2.0
        reliability.measured = {
            "pruned": f"{report[0].events:,} in {report[0].seconds:.1f} s",
            "events logged meanwhile": sent,
            "slowest writer batch during the prune": f"{slowest * 1000:.0f} ms",
        }
    finally:
        tracker.close()
