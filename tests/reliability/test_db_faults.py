"""Database faults between joblog and PostgreSQL / MariaDB, injected by a TCP proxy.

Each test ends with nothing lost, nothing duplicated (by count and by content), job and
step rows consistent, logging calls that never waited longer than the configured bound,
and clear answers from the API while the database is gone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

import joblog
from joblog.api.app import create_app
from joblog.storage.store import Store
from tests.reliability.conftest import Record
from tests.support.api import api_client
from tests.support.db import events
from tests.support.faultproxy import FaultProxy

OUTAGE_SECONDS = 10.0
#: full_queue_timeout of these trackers: the longest a logging call may wait. A tenth of
#: the outage, and far above the microseconds a call takes, yet tolerant of a loaded CI
#: machine's scheduling and GC pauses.
CALL_BOUND = 1.0
#: The share of calls that may exceed CALL_BOUND. A logging call that waits on the
#: database would exceed it on every call of the outage; a loaded machine's one long
#: scheduling or GC pause exceeds it once. The bound tells the two apart.
SLOW_SHARE = 0.001


@dataclass
class Faulty:
    direct_url: str
    proxy_url: str
    proxy: FaultProxy


@pytest.fixture(params=["postgresql", "mariadb"])
def faulty(request: pytest.FixtureRequest, make_database: Callable[[str], str]) -> Iterator[Faulty]:
    direct = make_database(request.param)
    Store(direct).close()  # the schema, made directly
    url = sa.make_url(direct)
    proxy = FaultProxy(url.host or "127.0.0.1", url.port or 0)
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    yield Faulty(direct, proxied, proxy)
    proxy.close()


class Producers:
    """Threads logging steadily inside the current job, timing every call."""

    def __init__(self, threads: int = 2, pause: float = 0.002) -> None:
        self.log = logging.getLogger("reliability")
        self.log.setLevel(logging.INFO)
        self.sent: list[str] = []
        self.worst = 0.0
        self.slow = 0  # calls over CALL_BOUND
        self._pause = pause
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=joblog.carry(self._run), args=(n,)) for n in range(threads)
        ]

    def _run(self, n: int) -> None:
        sent, worst, slow, i = [], 0.0, 0, 0
        while not self._stop.is_set():
            message = f"t{n}-{i}"
            started = time.perf_counter()
            self.log.info(message)
            took = time.perf_counter() - started
            worst = max(worst, took)
            slow += took > CALL_BOUND
            sent.append(message)
            i += 1
            time.sleep(self._pause)
        with self._lock:
            self.sent.extend(sent)
            self.worst = max(self.worst, worst)
            self.slow += slow

    @property
    def slow_share(self) -> float:
        return self.slow / max(len(self.sent), 1)

    def __enter__(self) -> Producers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def check_exactly_once(store: Store, sent: list[str]) -> dict[str, int]:
    stored = Counter(row["message"] for row in events(store) if row["message"].startswith("t"))
    expected = Counter(sent)
    lost = sum((expected - stored).values())
    duplicated = sum((stored - expected).values())
    assert (lost, duplicated) == (0, 0)
    return {"events": len(sent), "lost": lost, "duplicated": duplicated}


def check_job(store: Store, job_id: str, steps: int) -> None:
    job = store.reads.get_job(job_id)
    assert job is not None
    assert (job.status, job.percent_complete) == (joblog.JobStatus.COMPLETED, 100)
    rows = store.reads.steps_of(job_id)
    assert [s.seq for s in rows] == list(range(1, steps + 1))
    assert {s.status for s in rows} == {joblog.StepStatus.COMPLETED}


def tracker_for(url: str) -> joblog.Tracker:
    tracker = joblog.Tracker(url, flush_interval=0.05, full_queue_timeout=CALL_BOUND)
    tracker.install_logging()
    return tracker


def test_a_ten_second_outage_mid_job(faulty: Faulty, reliability: Record) -> None:
    reliability.injected = (
        f"every connection reset, new ones refused, for {OUTAGE_SECONDS:g} s mid-job"
    )
    tracker = tracker_for(faulty.proxy_url)
    codes: Counter[str] = Counter()
    try:
        with (
            api_client(create_app(faulty.proxy_url)) as api,
            tracker.job(
                "failover", "live", external_job_id="outage-1", steps=["before", "during", "after"]
            ) as job,
            Producers() as producers,
        ):
            with job.step("before"):
                time.sleep(1.0)
                assert api.get("/api/v1/jobs/outage-1").status_code == 200
            faulty.proxy.cut()
            cut_at = time.monotonic()
            with job.step("during"):
                while time.monotonic() - cut_at < OUTAGE_SECONDS:
                    status = api.get("/api/v1/jobs/outage-1")
                    health = api.get("/healthz")
                    codes[f"status {status.status_code}"] += 1
                    codes[f"healthz {health.status_code}"] += 1
                    assert status.status_code == 503
                    assert status.json() == {"error": "database_unavailable"}
                    assert health.status_code == 503
                    time.sleep(0.5)
            faulty.proxy.restore()
            restored = time.monotonic()
            while api.get("/api/v1/jobs/outage-1").status_code != 200:
                assert time.monotonic() - restored < 30, "the API did not recover"
                time.sleep(0.1)
            recovery = time.monotonic() - restored
            with job.step("after"):
                time.sleep(1.0)
        assert tracker.flush(120)
        stats = tracker.stats()
        store = Store(faulty.direct_url)
        try:
            counts = check_exactly_once(store, producers.sent)
            check_job(store, job.id, steps=3)
        finally:
            store.close()
        assert producers.slow_share <= SLOW_SHARE, (producers.slow, len(producers.sent))
        assert stats.dropped == 0
        reliability.measured = {
            **counts,
            "writer retries": stats.retries,
            "slowest logging call": f"{producers.worst * 1000:.1f} ms",
            f"calls over {CALL_BOUND * 1000:.0f} ms": (
                f"{producers.slow} of {len(producers.sent)} (bound {SLOW_SHARE:.1%})"
            ),
            "API during outage": ", ".join(f"{k} x{v}" for k, v in sorted(codes.items())),
            "API recovered after": f"{recovery:.2f} s",
        }
    finally:
        faulty.proxy.restore()
        tracker.close()


def test_a_slow_link(faulty: Faulty, reliability: Record) -> None:
    delay = 0.02
    reliability.injected = f"{delay * 1000:.0f} ms added to every chunk in both directions"
    faulty.proxy.delay = delay
    tracker = tracker_for(faulty.proxy_url)
    try:
        with tracker.job("failover", "live", steps=["sync", "power-on"]) as job:
            with Producers(threads=2, pause=0.0005) as producers:
                with job.step("sync"):
                    time.sleep(2.0)
                with job.step("power-on"):
                    time.sleep(1.0)
        started = time.monotonic()
        assert tracker.flush(120)
        drain = time.monotonic() - started
        store = Store(faulty.direct_url)
        try:
            counts = check_exactly_once(store, producers.sent)
            check_job(store, job.id, steps=2)
        finally:
            store.close()
        assert producers.slow_share <= SLOW_SHARE, (producers.slow, len(producers.sent))
        reliability.measured = {
            **counts,
            "slowest logging call": f"{producers.worst * 1000:.1f} ms",
            "drain after the job": f"{drain:.2f} s",
            "batches": tracker.stats().batches,
        }
    finally:
        tracker.close()


def test_a_connection_reset_in_the_middle_of_a_batch(faulty: Faulty, reliability: Record) -> None:
    reliability.injected = "every connection reset after 40 kB of a batch had reached the server"
    tracker = tracker_for(faulty.proxy_url)
    log = logging.getLogger("reliability")
    log.setLevel(logging.INFO)
    try:
        with tracker.job("failover", "live", steps=["sync"]) as job:
            with job.step("sync"):
                assert tracker.flush(30)
                faulty.proxy.reset_after_bytes(40_000)
                sent = [f"t-{i}" for i in range(20_000)]
                for message in sent:
                    log.info(message)
        assert tracker.flush(120)
        stats = tracker.stats()
        assert faulty.proxy.faults_fired == 1
        assert stats.retries >= 1
        store = Store(faulty.direct_url)
        try:
            counts = check_exactly_once(store, sent)
            check_job(store, job.id, steps=1)
        finally:
            store.close()
        reliability.measured = {**counts, "writer retries": stats.retries}
    finally:
        tracker.close()


def test_a_lost_commit_acknowledgement(faulty: Faulty, reliability: Record) -> None:
    reliability.injected = (
        "the server's reply to a batch's COMMIT lost (connection reset): the client cannot "
        "know whether it committed"
    )
    tracker = tracker_for(faulty.proxy_url)
    log = logging.getLogger("reliability")
    log.setLevel(logging.INFO)
    try:
        with tracker.job("failover", "live", steps=["sync"]) as job:
            with job.step("sync"):
                assert tracker.flush(30)
                faulty.proxy.lose_reply_after(b"COMMIT")
                sent = [f"t-{i}" for i in range(2_000)]
                for message in sent:
                    log.info(message)
                assert tracker.flush(60)
        assert tracker.flush(60)
        stats = tracker.stats()
        assert faulty.proxy.faults_fired == 1
        assert stats.retries >= 1
        store = Store(faulty.direct_url)
        try:
            counts = check_exactly_once(store, sent)  # the retry found its batch key: once
            check_job(store, job.id, steps=1)
        finally:
            store.close()
        reliability.measured = {**counts, "writer retries": stats.retries}
    finally:
        tracker.close()
