"""Three ``joblog serve`` processes on one database, as deployed behind a load balancer.

What must happen once happens once across servers: of concurrent starts of one external
ID (policy reject) through all three, exactly one wins; a batch posted to every server at
the same instant is stored once. A producer in another process writes a job while a
stream on each server follows it: every stream sees every event once, then the end.
On PostgreSQL and MariaDB.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from joblog.bench.servers import ServeProcess
from joblog.storage.store import Store
from tests.reliability.conftest import Record
from tests.support.api import Producer, read_sse, temporary_database

SERVERS = 3
THREADS = 9
ROUNDS = 5
WRITE = "write-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {WRITE}"}
#: A barrier that never opens means a participant died: fail, do not hang.
TIMEOUT_S = 120


@pytest.fixture(scope="module", params=("postgresql", "mariadb"))
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with temporary_database(str(request.param), tmp_path_factory.mktemp("db")) as url:
        Store(url).close()  # migrated once, before the servers start
        yield url


@pytest.fixture(scope="module")
def servers(database: str) -> Iterator[list[str]]:
    """The base URLs of three servers on the database."""
    with ExitStack() as stack:
        processes = [
            ServeProcess(
                database,
                write_token=WRITE,
                args=["--poll-interval", "0.05", "--reap-interval", "0"],
            )
            for _ in range(SERVERS)
        ]
        for process in processes:
            stack.callback(process.stop)
            process.launch()
        for process in processes:
            process.wait_started()
        yield [process.url for process in processes]


def at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Every call in its own thread, released together; each one's result."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait(TIMEOUT_S)
        try:
            results[index] = calls[index]()
        except Exception as error:  # reported by the assertions on results
            results[index] = repr(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_S)
    return results


def post(base: str, path: str, body: Any) -> httpx.Response:
    return httpx.post(base + path, json=body, headers=AUTH, timeout=TIMEOUT_S)


class TestRejectAcrossServers:
    def test_exactly_one_start_wins_each_round(
        self, servers: list[str], reliability: Record
    ) -> None:
        reliability.injected = (
            f"{THREADS} starts of one external ID at once through {SERVERS} servers"
            f" (policy reject), {ROUNDS} rounds"
        )
        won = 0
        for round_no in range(ROUNDS):
            body = {"job_type": "failover", "operation": "live", "external_job_id": f"r-{round_no}"}
            responses = at_once(
                [
                    lambda n=n, body=body: post(servers[n % SERVERS], "/api/v1/jobs", body)
                    for n in range(THREADS)
                ]
            )
            codes = Counter(getattr(r, "status_code", r) for r in responses)
            assert codes == {201: 1, 409: THREADS - 1}, (round_no, codes)
            winner = next(r.json()["id"] for r in responses if r.status_code == 201)
            refused = [r.json() for r in responses if r.status_code == 409]
            assert all(body["running_job_id"] == winner for body in refused)
            httpx.patch(  # ended, so that the next round's ID is free again
                f"{servers[round_no % SERVERS]}/api/v1/jobs/{winner}",
                json={"status": "completed"},
                headers=AUTH,
                timeout=TIMEOUT_S,
            ).raise_for_status()
            won += 1
        reliability.measured = {"rounds with exactly one winner (others 409)": f"{won}/{ROUNDS}"}


class TestBatchKeysAcrossServers:
    def test_one_batch_posted_to_every_server_at_once_is_stored_once(
        self, servers: list[str], database: str, reliability: Record
    ) -> None:
        reliability.injected = (
            f"one batch key posted {THREADS} times at once to {SERVERS} servers, {ROUNDS} rounds"
        )
        external = f"batch-{uuid.uuid4().hex[:8]}"
        for round_no in range(ROUNDS):
            body = {
                "batch_key": f"{external}-{round_no}",
                "events": [
                    {"external_job_id": external, "level": "INFO", "message": f"{round_no}.{n}"}
                    for n in range(5)
                ],
            }
            responses = at_once(
                [
                    lambda n=n, body=body: post(servers[n % SERVERS], "/api/v1/events", body)
                    for n in range(THREADS)
                ]
            )
            answers = Counter(
                (r.json()["stored"], r.json()["duplicate"]) if hasattr(r, "json") else r
                for r in responses
            )
            assert answers == {(5, False): 1, (0, True): THREADS - 1}, (round_no, answers)
        store = Store(database)
        try:
            stored = store.reads.list_events(external_job_id=external, limit=10_000)
        finally:
            store.close()
        assert sorted(event.message for event in stored) == sorted(
            f"{r}.{n}" for r in range(ROUNDS) for n in range(5)
        )
        reliability.measured = {"stored once, the others answered duplicate": f"{ROUNDS}/{ROUNDS}"}


class TestStreamsOnEveryServer:
    def test_each_server_streams_every_event_once(
        self, servers: list[str], database: str, reliability: Record
    ) -> None:
        external = f"stream-{uuid.uuid4().hex[:8]}"
        producer = Producer(database, external, steps=3, lines=20, delay=0.005)
        seen: list[list[int]] = [[] for _ in servers]
        ended = [False] * len(servers)
        opened = threading.Barrier(len(servers) + 1)

        def follow(index: int) -> None:
            url = f"{servers[index]}/api/v1/jobs/{external}/stream"
            with httpx.stream("GET", url, timeout=TIMEOUT_S) as response:
                events = read_sse(response)
                next(events)  # the snapshot: the stream is open
                opened.wait(TIMEOUT_S)
                for event in events:
                    if event.event == "log":
                        seen[index].append(event.data["id"])
                    elif event.event == "end":
                        ended[index] = True
                        return

        followers = [threading.Thread(target=follow, args=(n,)) for n in range(len(servers))]
        try:
            for follower in followers:
                follower.start()
            opened.wait(TIMEOUT_S)
            producer.go()
            assert producer.wait(TIMEOUT_S) == 0
            for follower in followers:
                follower.join(TIMEOUT_S)
        finally:
            producer.close()
        store = Store(database)
        try:
            stored = [e.id for e in store.reads.list_events(job_id=producer.job_id, limit=10_000)]
        finally:
            store.close()
        assert len(stored) == 3 * 20
        assert ended == [True] * len(servers)
        assert seen == [stored] * len(servers)  # every event, once, in order, on each server
        reliability.injected = (
            f"a producer in another process logs {len(stored)} events; a stream follows the"
            f" job on each of {SERVERS} servers"
        )
        reliability.measured = {"streams that saw every event exactly once": f"{SERVERS}/{SERVERS}"}
