"""What must happen once happens once, however many start it at the same instant.

"reject" is decided by the database's unique index on the open exclusive holder of an
external ID (revision 0004), not by a SELECT before the INSERT; a batch key is claimed
by one statement. Tested with threads in several processes (the library) and with
several stores, i.e. several servers' pools (the write API's rules).
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest

import joblog
from joblog.exceptions import ExternalIdInUse
from joblog.resolve import Resolver
from joblog.storage import migrate
from joblog.storage.producer import IncomingEvent, ProducerWrites
from joblog.storage.store import Store
from tests.reliability.conftest import Record

PROCESSES = 2
THREADS = 8
ROUNDS = 20
#: A barrier that never opens means a participant died: fail, do not hang.
BARRIER_TIMEOUT_S = 120


def _contend(url: str, process: int, barrier: Any, results: Any) -> None:
    """One process: THREADS threads start a job with the round's external ID at once."""
    tracker = joblog.Tracker(url)
    won: dict[int, joblog.JobHandle] = {}

    def attempt(thread: int) -> None:
        for round_no in range(ROUNDS):
            barrier.wait(BARRIER_TIMEOUT_S)
            try:
                job = tracker.start_job("failover", "live", external_job_id=f"ext-{round_no}")
            except ExternalIdInUse as refused:
                results.put((round_no, process, thread, "refused", refused.running_job_id))
            except Exception as error:  # any other outcome is a failure the test reports
                results.put((round_no, process, thread, "error", repr(error)))
            else:
                won[round_no] = job
                results.put((round_no, process, thread, "won", job.id))
            barrier.wait(BARRIER_TIMEOUT_S)  # every attempt of the round is over
            if round_no in won:
                won.pop(round_no).complete()
            barrier.wait(BARRIER_TIMEOUT_S)  # the winner has ended before the next round

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tracker.close()


class TestRejectAcrossProcesses:
    def test_exactly_one_of_sixteen_concurrent_starts_wins(
        self, database_url: str, reliability: Record
    ) -> None:
        migrate.upgrade(database_url)
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(PROCESSES * THREADS)
        results = context.Queue()
        processes = [
            context.Process(target=_contend, args=(database_url, n, barrier, results))
            for n in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        outcomes: list[tuple[Any, ...]] = []
        try:
            while len(outcomes) < PROCESSES * THREADS * ROUNDS:
                outcomes.append(results.get(timeout=BARRIER_TIMEOUT_S))
        except queue.Empty:
            pytest.fail(f"only {len(outcomes)} outcomes arrived; a contender died")
        for process in processes:
            process.join(BARRIER_TIMEOUT_S)
            assert process.exitcode == 0
        assert not [o for o in outcomes if o[3] == "error"]
        winners = Counter(o[0] for o in outcomes if o[3] == "won")
        assert winners == dict.fromkeys(range(ROUNDS), 1)
        # Every refusal names that round's winner.
        winner_of = {o[0]: o[4] for o in outcomes if o[3] == "won"}
        assert all(o[4] == winner_of[o[0]] for o in outcomes if o[3] == "refused")
        reliability.injected = (
            f"{PROCESSES} processes x {THREADS} threads start a job with one external ID"
            f" at once (policy reject), {ROUNDS} rounds"
        )
        reliability.measured = {
            "rounds with exactly one winner": f"{len(winners)}/{ROUNDS}",
            "refused (ExternalIdInUse naming the winner)": sum(o[3] == "refused" for o in outcomes),
        }


@pytest.fixture
def two_servers(database_url: str) -> Iterator[list[ProducerWrites]]:
    """Two stores (two pools, as two servers have) on one database."""
    stores = [Store(database_url) for _ in range(2)]
    yield [ProducerWrites(store, attach=Resolver(store).attach) for store in stores]
    for store in stores:
        store.close()


def _at_once(calls: list[Callable[[], object]]) -> list[object]:
    """Run every call in its own thread, released together; each one's result or error."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[object] = []

    def run(call: Callable[[], object]) -> None:
        barrier.wait(BARRIER_TIMEOUT_S)
        try:
            outcomes.append(call())
        except ExternalIdInUse:
            outcomes.append("refused")
        except Exception as error:
            outcomes.append(repr(error))

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


class TestRejectAcrossServers:
    def test_exactly_one_start_wins_each_round(
        self, two_servers: list[ProducerWrites], reliability: Record
    ) -> None:
        reliability.injected = (
            f"{2 * THREADS} concurrent job starts with one external ID through two"
            f" servers' pools (the write API's rules), {ROUNDS} rounds"
        )
        for round_no in range(ROUNDS):
            external = f"http-{round_no}"
            outcomes = _at_once(
                [partial(_start, two_servers[n % 2], external) for n in range(2 * THREADS)]
            )
            assert Counter(outcomes) == {"won": 1, "refused": 2 * THREADS - 1}, round_no
        reliability.measured = {"rounds with exactly one winner (others 409)": f"{ROUNDS}/{ROUNDS}"}

    def test_policy_allow_is_not_limited(self, database_url: str) -> None:
        store = Store(database_url)
        try:
            producer = ProducerWrites(
                store, attach=Resolver(store).attach, external_id_policy="allow"
            )
            ids = {producer.start_job("failover", "live", external_job_id="same").id for _ in "ab"}
            assert len(ids) == 2
        finally:
            store.close()


def _start(producer: ProducerWrites, external: str) -> str:
    producer.start_job("failover", "live", external_job_id=external)
    return "won"


class TestDuplicateBatches:
    def test_concurrent_posts_of_one_batch_store_it_once(
        self, two_servers: list[ProducerWrites], reliability: Record
    ) -> None:
        reliability.injected = (
            f"one batch key posted {2 * THREADS} times at once through two servers' pools,"
            f" {ROUNDS} rounds"
        )
        for round_no in range(ROUNDS):
            batch = [
                IncomingEvent(
                    level="INFO",
                    message=f"line {n}",
                    ts=datetime.now(UTC),
                    external_job_id=f"batch-{round_no}",
                )
                for n in range(5)
            ]
            outcomes = _at_once(
                [
                    partial(two_servers[n % 2].ingest_events, f"key-{round_no}", batch)
                    for n in range(2 * THREADS)
                ]
            )
            assert Counter(outcomes) == {True: 1, False: 2 * THREADS - 1}, round_no
        stored = two_servers[0].store.reads
        assert all(
            len(stored.list_events(external_job_id=f"batch-{n}")) == 5 for n in range(ROUNDS)
        )
        reliability.measured = {
            "stored once, the others answered duplicate": f"{ROUNDS}/{ROUNDS}",
            "errors": 0,
        }
