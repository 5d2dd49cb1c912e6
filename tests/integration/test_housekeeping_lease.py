"""One housekeeper: each task's lease per database, and tasks that stay exact without it.

Several servers (or cron jobs) share one database. A round takes the task's lease or
skips; and when two rounds do run at once (a lease lost with its connection), a stale job
is still failed, and reported, by one reaper only, and a pruned event counted once.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from joblog import JobStatus
from joblog._ids import utcnow
from joblog._ops import InsertEvents
from joblog.api.app import create_app
from joblog.cli import main
from joblog.resolve import Resolver
from joblog.storage import schema
from joblog.storage.producer import ProducerWrites
from joblog.storage.store import Store
from tests.support.api import LiveServer
from tests.support.db import events, jobs_by_id

ROOT = Path(__file__).resolve().parents[2]
#: A barrier that never opens means a participant died: fail, do not hang.
BARRIER_TIMEOUT_S = 120


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    yield store
    store.close()


@contextlib.contextmanager
def stores(url: str, count: int) -> Iterator[list[Store]]:
    """``count`` stores on one database: as many servers' pools."""
    opened = [Store(url) for _ in range(count)]
    try:
        yield opened
    finally:
        for one in opened:
            one.close()


def stale_jobs(store: Store, count: int) -> set[str]:
    """``count`` running jobs, each with a step, whose heartbeat stopped an hour ago."""
    producer = ProducerWrites(store, attach=Resolver(store).attach)
    ids = set()
    for _ in range(count):
        job = producer.start_job("failover", "live")
        producer.start_step(job.id, "sync")
        ids.add(job.id)
    past = utcnow() - timedelta(hours=1)
    with store.engine.begin() as conn:
        conn.execute(
            schema.job_tracking.update()
            .where(schema.job_tracking.c.id.in_(ids))
            .values(heartbeat_at=past, updated_at=past)
        )
    return ids


def old_events(store: Store, count: int) -> None:
    old = utcnow() - timedelta(days=90)
    rows = [(None, None, None, "INFO", f"old {n}", None, old, None, None) for n in range(count)]
    store.apply_batch([InsertEvents(rows)])


def at_once(count: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(n)`` in ``count`` threads released together; their results."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    failures: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait(BARRIER_TIMEOUT_S)
            results[n] = work(n)
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    return results


@contextlib.contextmanager
def lease_in_another_process(url: str, *tasks: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.lease_holder", url, *tasks],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()
        process.wait(30)
        process.stdout.close()


class TestLease:
    def test_a_held_lease_makes_another_round_skip(self, store: Store, database_url: str) -> None:
        stale = stale_jobs(store, 2)
        with stores(database_url, 1) as (other,), store.housekeeping.lease("reap") as held:
            assert held
            run = other.housekeeping.run_reap(60)
            assert (run.ran, run.outcome, run.reaped) == (False, "skipped", ())
            assert "another process holds the lease" in run.describe()
        assert set(store.housekeeping.run_reap(60).reaped) == stale

    def test_each_task_has_its_own_lease(self, store: Store) -> None:
        with store.housekeeping.lease("prune") as held:
            assert held
            assert store.housekeeping.run_reap(60).ran
            assert store.housekeeping.run_partitions().ran
            assert not store.housekeeping.run_prune(timedelta(days=1)).ran

    def test_a_holder_in_another_process_makes_rounds_skip_until_it_dies(
        self, store: Store, database_url: str
    ) -> None:
        stale = stale_jobs(store, 1)
        old_events(store, 5)
        cli = CliRunner()
        with lease_in_another_process(database_url, "reap", "prune") as holder:
            run = store.housekeeping.run_prune(timedelta(days=30))
            assert not run.ran and run.pruned is None
            reap = cli.invoke(main, ["reap", "--url", database_url])
            prune = cli.invoke(main, ["prune", "--url", database_url, "--older-than", "30d"])
            assert (reap.exit_code, prune.exit_code) == (0, 0), reap.output + prune.output
            assert "reap: skipped, another process holds the lease" in reap.output
            assert "prune: skipped, another process holds the lease" in prune.output
            assert len(events(store)) == 5
            assert jobs_by_id(store)[next(iter(stale))]["status"] == "running"
            holder.send_signal(signal.SIGKILL)
            holder.wait(30)
            # The server notices the closed connection by itself; give it time.
            deadline = time.monotonic() + 60
            while not (run := store.housekeeping.run_reap(60)).ran:
                assert time.monotonic() < deadline, "the lease outlived its holder"
                time.sleep(0.1)
        assert set(run.reaped) == stale
        pruned = store.housekeeping.run_prune(timedelta(days=30)).pruned
        assert pruned is not None and pruned.events == 5

    def test_two_databases_on_one_server_do_not_share_it(
        self, backend: str, make_database: Callable[[str], str]
    ) -> None:
        with (
            stores(make_database(backend), 1) as (first,),
            stores(make_database(backend), 1) as (second,),
        ):
            with first.housekeeping.lease("reap") as held:
                assert held
                assert second.housekeeping.run_reap(60).ran
                assert not first.housekeeping.run_reap(60).ran


class TestReapWithoutTheLease:
    """Two reapers at once (a lease lost with its connection) still fail a job once."""

    def test_concurrent_reapers_fail_each_job_once(self, store: Store, database_url: str) -> None:
        stale = stale_jobs(store, 30)
        with stores(database_url, 6) as pools:
            results = at_once(6, lambda n: pools[n].housekeeping.reap_abandoned(60))
        reported = Counter(job_id for result in results for job_id in result)
        assert set(reported) == stale
        assert set(reported.values()) == {1}
        jobs = jobs_by_id(store)
        assert {jobs[job_id]["status"] for job_id in stale} == {JobStatus.FAILED.value}

    def test_concurrent_reapers_in_several_processes_fail_each_job_once(
        self, make_database: Callable[[str], str]
    ) -> None:
        # The statements are the threads' above (each store is a pool of its own); this
        # adds separate processes, on the server several joblog hosts share most.
        database_url = make_database("postgresql")
        with stores(database_url, 1) as (store,):
            stale = stale_jobs(store, 30)
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(2 * 2)
        results = context.Queue()
        processes = [
            context.Process(target=_reap_in_threads, args=(database_url, 2, barrier, results))
            for _ in range(2)
        ]
        for process in processes:
            process.start()
        reported: Counter[str] = Counter()
        for _ in range(2 * 2):
            outcome, value = results.get(timeout=BARRIER_TIMEOUT_S)
            assert outcome == "reaped", value
            reported.update(value)
        for process in processes:
            process.join(60)
            assert process.exitcode == 0
        assert set(reported) == stale
        assert set(reported.values()) == {1}

    @pytest.mark.parametrize("server", ["postgresql", "mariadb"])
    def test_a_job_whose_heartbeat_is_being_written_is_left_alone(
        self, server: str, make_database: Callable[[str], str]
    ) -> None:
        # SQLite has one writer at a time: there a heartbeat and a reap never overlap.
        with stores(make_database(server), 1) as (store,):
            beating, *others = sorted(stale_jobs(store, 3))
            with store.engine.connect() as heartbeat, heartbeat.begin():
                heartbeat.execute(
                    schema.job_tracking.update()
                    .where(schema.job_tracking.c.id == beating)
                    .values(heartbeat_at=utcnow())
                )
                assert sorted(store.housekeeping.reap_abandoned(60)) == others
            assert jobs_by_id(store)[beating]["status"] == JobStatus.RUNNING.value


def _reap_in_threads(url: str, threads: int, barrier: Any, results: Any) -> None:
    """One process: ``threads`` reapers on one store, released by the shared barrier."""
    store = Store(url, auto_migrate=False)

    def reap() -> None:
        try:
            barrier.wait(BARRIER_TIMEOUT_S)
            results.put(("reaped", store.housekeeping.reap_abandoned(60)))
        except Exception as error:  # the test reports it
            results.put(("error", repr(error)))

    workers = [threading.Thread(target=reap) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    store.close()


class TestSimultaneousRounds:
    def test_rounds_at_the_same_instant_report_each_job_once(
        self, store: Store, database_url: str
    ) -> None:
        stale = stale_jobs(store, 20)
        with stores(database_url, 6) as pools:
            runs = at_once(6, lambda n: pools[n].housekeeping.run_reap(60))
        reported = Counter(job_id for run in runs for job_id in run.reaped)
        assert set(reported) == stale and set(reported.values()) == {1}
        assert any(run.ran for run in runs)
        assert all(run.reaped == () for run in runs if not run.ran)

    def test_prunes_at_the_same_instant_count_each_event_once(
        self, store: Store, database_url: str
    ) -> None:
        old_events(store, 3000)
        with stores(database_url, 4) as pools:
            runs = at_once(
                4, lambda n: pools[n].housekeeping.run_prune(timedelta(days=30), batch_size=100)
            )
        assert sum(run.pruned.events for run in runs if run.pruned is not None) == 3000
        assert all(run.pruned is None for run in runs if not run.ran)
        assert events(store) == []


class TestThreeServers:
    def test_each_abandoned_job_is_failed_once_and_each_event_pruned_once(
        self, store: Store, database_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        stale = stale_jobs(store, 12)
        old_events(store, 500)
        caplog.set_level(logging.INFO, logger="joblog.api")
        apps = [
            create_app(
                store=pool, reap_interval=0.2, retention=timedelta(days=30), prune_interval=0.2
            )
            for pool in (store, Store(database_url), Store(database_url))
        ]
        try:
            with LiveServer(apps[0]), LiveServer(apps[1]), LiveServer(apps[2]):
                deadline = time.monotonic() + 60
                while events(store) or any(
                    jobs_by_id(store)[job_id]["status"] == "running" for job_id in stale
                ):
                    assert time.monotonic() < deadline, "housekeeping did not run"
                    time.sleep(0.1)
                time.sleep(0.5)  # a few more rounds, which must find nothing
        finally:
            for app in apps[1:]:
                app.state.store.close()
        reaped: Counter[str] = Counter()
        pruned = 0
        for record in caplog.records:
            line = record.getMessage()
            if line.startswith("reap: failed"):
                reaped.update(line.split(": ", 2)[2].split(", "))
            found = re.match(r"prune: removed ([\d,]+) log events", line)
            if found:
                pruned += int(found[1].replace(",", ""))
        assert set(reaped) == stale and set(reaped.values()) == {1}
        assert pruned == 500

        def ran(task: str) -> float:
            return sum(
                app.state.metrics.registry.get_sample_value(
                    "joblog_housekeeping_runs_total", {"task": task, "outcome": "ran"}
                )
                or 0
                for app in apps
            )

        assert ran("reap") >= 1 and ran("prune") >= 1


class TestCli:
    def test_the_help_says_what_the_lease_does(self) -> None:
        for command in ("reap", "prune"):
            result = CliRunner().invoke(main, [command, "--help"])
            assert "lease" in " ".join(result.output.split())
