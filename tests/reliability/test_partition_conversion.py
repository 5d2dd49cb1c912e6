"""``joblog db partition`` on a PostgreSQL log_events that producers keep writing to."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa

from joblog._ids import utcnow
from joblog._ops import InsertEvents
from joblog.resolve import Resolver
from joblog.storage import migrate
from joblog.storage.dialects.pg_partitions import EVENT_PARTITIONS
from joblog.storage.maintenance import ConversionReport
from joblog.storage.producer import IncomingEvent, ProducerWrites
from joblog.storage.store import Store
from tests.reliability.conftest import Record

OLD_EVENTS = 50_000


@pytest.mark.parametrize("server", ["postgresql"])
def test_converting_while_producers_write_loses_nothing(
    server: str, make_database: Callable[[str], str], reliability: Record
) -> None:
    reliability.injected = (
        f"joblog db partition on a plain log_events of {OLD_EVENTS:,} events (60 days) while"
        " a batch writer and an HTTP-ingest path write, batch-keyed, without pause"
    )
    url = make_database(server)
    migrate.upgrade(url, "0005_event_lookups")
    migrate.upgrade(url)  # an existing database: its log_events stays plain
    store = Store(url)
    try:
        now = utcnow()
        old = [
            (None, None, None, "INFO", f"old {n}", None, now - timedelta(minutes=n), None, None)
            for n in range(OLD_EVENTS)
        ]
        for first in range(0, OLD_EVENTS, 10_000):
            store.apply_batch([InsertEvents(old[first : first + 10_000])])
        producer = ProducerWrites(store, attach=Resolver(store).attach)
        job_id = producer.start_job("failover", "live").id
        done = threading.Event()
        sent = [0, 0]
        slowest = [0.0, 0.0]
        errors: list[BaseException] = []

        def batch_writer() -> None:
            while not done.is_set():
                rows = [(job_id, None, None, "INFO", "live", None, utcnow(), None, None)] * 20
                started = time.perf_counter()
                assert store.apply_batch([InsertEvents(rows)], batch_key=uuid.uuid4().hex)
                slowest[0] = max(slowest[0], time.perf_counter() - started)
                sent[0] += len(rows)
                time.sleep(0.002)

        def http_ingest() -> None:
            while not done.is_set():
                batch = [
                    IncomingEvent(level="INFO", message="ingested", ts=utcnow(), job_id=job_id)
                ] * 20
                started = time.perf_counter()
                assert producer.ingest_events(uuid.uuid4().hex, batch)
                slowest[1] = max(slowest[1], time.perf_counter() - started)
                sent[1] += len(batch)
                time.sleep(0.002)

        def guarded(work: Callable[[], None]) -> Callable[[], None]:
            def run() -> None:
                try:
                    work()
                except BaseException as error:  # reported below, not lost in the thread
                    errors.append(error)

            return run

        writers = [threading.Thread(target=guarded(w)) for w in (batch_writer, http_ingest)]
        for writer in writers:
            writer.start()
        time.sleep(0.5)
        try:
            report = store.housekeeping.partition_events()
        finally:
            time.sleep(0.5)
            done.set()
            for writer in writers:
                writer.join(60)
        assert not errors, errors
        assert isinstance(report, ConversionReport)
        with store.engine.connect() as connection:
            assert EVENT_PARTITIONS.is_partitioned(connection)
            total, distinct = connection.execute(
                sa.text("SELECT count(*), count(DISTINCT id) FROM log_events")
            ).one()
        assert total == distinct == OLD_EVENTS + sum(sent)
        reliability.measured = {
            "writers' events during the conversion": f"{sum(sent):,}, all stored once",
            "swap (log_events locked)": f"{report.swap_seconds * 1000:.0f} ms",
            "slowest writer batch": f"{max(slowest) * 1000:.0f} ms",
            "lock requests retried": report.lock_retries,
            "conversion took": f"{report.seconds:.1f} s",
        }
    finally:
        store.close()
