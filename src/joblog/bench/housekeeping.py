"""``joblog bench housekeeping``: three ``joblog serve`` processes on one database housekeep once.

The issue this answers: with the reaper and retention running on every server, two
reapers failed the same 531 jobs and three prunes ran at once. Per backend, the database
gets ``jobs`` running jobs whose heartbeat stopped an hour ago and ``events`` events older
than the retention; three servers start with a reap every second and a prune every two,
and run until every job is failed and every old event gone, then a few rounds more. Their
logs (``--log-level debug``: a skipped round is a DEBUG line) say which server did what.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from joblog._ids import utcnow
from joblog._ops import EventRow, InsertEvents
from joblog.bench.backends import BenchDatabase
from joblog.bench.progress import Reporter
from joblog.bench.retention import load_note
from joblog.resolve import Resolver
from joblog.storage import migrate, schema
from joblog.storage.producer import ProducerWrites
from joblog.storage.store import Store

__all__ = ["HousekeepingConfig", "render_housekeeping", "run_housekeeping"]

_SERVE = "from joblog.cli import main; main()"
_REAPED = re.compile(r"reap: failed (\d+) abandoned job\(s\)(?:: (.*))?$")
_PRUNED = re.compile(r"prune: removed ([\d,]+) log events")
_SKIPPED = re.compile(r"(reap|prune|partitions): skipped")
_RAN = re.compile(r"(reap|prune|partitions): (failed|removed|created|nothing)")


@dataclass
class HousekeepingConfig:
    servers: int = 3
    jobs: int = 500
    events: int = 100_000
    reap_interval: float = 1.0
    prune_interval: float = 2.0
    rounds_after: float = 6.0  # seconds of rounds with nothing left to do
    timeout: float = 300.0


def run_housekeeping(
    dbs: list[BenchDatabase], config: HousekeepingConfig, reporter: Reporter
) -> dict[str, Any]:
    task = reporter.task("housekeeping: three servers", len(dbs))
    results = []
    for db in dbs:
        results.append(_run_backend(db, config))
        reporter.advance(task)
    return {
        "servers": config.servers,
        "jobs": config.jobs,
        "events": config.events,
        "results": results,
    }


def _run_backend(db: BenchDatabase, config: HousekeepingConfig) -> dict[str, Any]:
    db.recreate()
    url = db.sa_url
    migrate.upgrade(url)
    stale = _seed(url, config)
    servers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _SERVE,
                "serve",
                "--url",
                url,
                "--port",
                "0",
                "--read-only",
                "--reap-interval",
                str(config.reap_interval),
                "--retention",
                "30d",
                "--prune-interval",
                f"{config.prune_interval:g}s",
                "--log-level",
                "debug",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(config.servers)
    ]
    started = time.monotonic()
    done_after: float | None = None
    try:
        deadline = started + config.timeout
        while time.monotonic() < deadline:
            if _all_done(url, stale):
                done_after = time.monotonic() - started
                break
            time.sleep(0.2)
        time.sleep(config.rounds_after)
    finally:
        logs = []
        for server in servers:
            server.terminate()
        for server in servers:
            _out, err = server.communicate(timeout=60)
            logs.append(err)
        db.drop()
    return {"backend": db.backend, "done_after_s": done_after, **_tally(logs, stale, config)}


def _seed(url: str, config: HousekeepingConfig) -> set[str]:
    store = Store(url)
    try:
        producer = ProducerWrites(store, attach=Resolver(store).attach)
        stale = {producer.start_job("failover", "live").id for _ in range(config.jobs)}
        past = utcnow() - timedelta(hours=1)
        with store.engine.begin() as connection:
            connection.execute(
                schema.job_tracking.update().values(heartbeat_at=past, updated_at=past)
            )
        old = utcnow() - timedelta(days=90)
        for first in range(0, config.events, 10_000):
            rows: list[EventRow] = [
                (None, None, None, "INFO", f"old {n}", None, old, None, None)
                for n in range(first, min(first + 10_000, config.events))
            ]
            store.apply_batch([InsertEvents(rows)])
    finally:
        store.close()
    return stale


def _all_done(url: str, stale: set[str]) -> bool:
    store = Store(url, auto_migrate=False)
    try:
        with store.engine.connect() as connection:
            running = connection.scalar(
                sa.select(sa.func.count()).where(schema.job_tracking.c.status == "running")
            )
            old = connection.scalar(
                sa.select(sa.func.count()).where(
                    schema.log_events.c.ts < utcnow() - timedelta(days=30)
                )
            )
    finally:
        store.close()
    return running == 0 and old == 0


def _tally(logs: list[str], stale: set[str], config: HousekeepingConfig) -> dict[str, Any]:
    reaped: Counter[str] = Counter()
    pruned = 0
    rounds: Counter[tuple[str, str]] = Counter()
    by_server: list[dict[str, int]] = []
    for log in logs:
        mine: Counter[str] = Counter()
        for line in log.splitlines():
            skipped = _SKIPPED.search(line)
            if skipped:
                rounds[(skipped[1], "skipped")] += 1
                continue
            ran = _RAN.search(line)
            if ran:
                rounds[(ran[1], "ran")] += 1
            found = _REAPED.search(line)
            if found and found[2]:
                ids = found[2].split(", ")
                reaped.update(ids)
                mine["reaped"] += len(ids)
            found = _PRUNED.search(line)
            if found:
                count = int(found[1].replace(",", ""))
                pruned += count
                mine["pruned"] += count
        by_server.append(dict(mine))
    return {
        "reaped_jobs": len(reaped),
        "reaped_twice": sum(1 for count in reaped.values() if count > 1),
        "reaped_unknown": len(set(reaped) - stale),
        "pruned_events": pruned,
        "rounds": {f"{task} {outcome}": count for (task, outcome), count in sorted(rounds.items())},
        "by_server": by_server,
        "expected": {"jobs": config.jobs, "events": config.events},
    }


def render_housekeeping(data: dict[str, Any]) -> list[str]:
    """The housekeeping section of RESULTS.md."""
    lines = [
        "## Housekeeping across three servers",
        "",
        f"Run: {data.get('date', '?')}. {data['servers']} `joblog serve` processes on one"
        f" database, reap every 1 s, prune every 2 s; {data['jobs']:,} jobs whose heartbeat"
        f" stopped and {data['events']:,} events older than the retention. Counted from the"
        " servers' logs; done after: from starting the servers, their startup included. Before"
        " the lease, two reapers failed the same 531 jobs."
        f" {load_note(data)}",
        "",
        "| backend | jobs failed (once each) | failed twice | events pruned | done after"
        " | rounds ran / skipped (reap) | (prune) | per server: jobs failed, events pruned |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in data["results"]:
        rounds = result["rounds"]
        per_server = "; ".join(
            f"{server.get('reaped', 0):,}, {server.get('pruned', 0):,}"
            for server in result["by_server"]
        )
        done = result["done_after_s"]
        lines.append(
            f"| {result['backend']} | {result['reaped_jobs']:,} of {result['expected']['jobs']:,}"
            f" | {result['reaped_twice']} | {result['pruned_events']:,} of"
            f" {result['expected']['events']:,} | {'-' if done is None else f'{done:.1f} s'}"
            f" | {rounds.get('reap ran', 0)} / {rounds.get('reap skipped', 0)}"
            f" | {rounds.get('prune ran', 0)} / {rounds.get('prune skipped', 0)}"
            f" | {per_server} |"
        )
    return [*lines, ""]
