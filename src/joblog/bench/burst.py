"""``joblog bench ingest``: a burst of log lines in one job, as a log shipper is measured.

Per backend, each measurement in a fresh process (:mod:`joblog.bench.burst_child`) on a
fresh database, all in one run:

- **bare**: the same rows, made before the clock starts, through the driver's bulk path
  (sqlite3 executemany, psycopg COPY, PyMySQL's multi-row INSERT), 10,000 a transaction;
- **joblog**: ``log.info("copied block %d of disk %s", i, "disk-0", extra={"bytes":
  65536})`` N times inside one job, from the first call until ``flush()`` returns;
- **stdlib**: the same calls through ``QueueHandler`` -> ``QueueListener`` -> a handler
  that bulk-inserts every 2,000 records with the same driver;
- **null**: the same calls to a ``NullHandler`` (the floor of a logging call);
- bare and joblog again while another process spins on the second core;
- **kill**: ``durability="journal"``, SIGKILL right after the 500,000th call, then the
  next Tracker on the same journal ships what was left; rows stored are counted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from joblog.bench.backends import BenchDatabase
from joblog.bench.progress import Reporter
from joblog.storage.store import Store

__all__ = ["BurstConfig", "run_burst", "run_burst_backend"]


@dataclass
class BurstConfig:
    lines: int = 1_000_000
    kill_after: int = 500_000
    sync_interval: float = 0.05
    hog: bool = True
    #: Lines of the profiled joblog run (0: none).
    profile_lines: int = 200_000
    #: Tracker options of the joblog runs (e.g. a writer variant).
    options: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 1800.0


def _fresh(db: BenchDatabase) -> None:
    db.recreate()
    store = Store(db.sa_url, auto_migrate=False)
    try:
        store.create_tables()
    finally:
        store.close()


def child(spec: dict[str, Any], timeout: float, *, killed: bool = False) -> dict[str, Any]:
    """Run one measurement in a new Python process; its JSON result (the last line)."""
    done = subprocess.run(
        [sys.executable, "-m", "joblog.bench.burst_child", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if killed:
        if done.returncode != -9 or not lines:
            raise RuntimeError(f"the producer was not killed as planned: {done.stderr[-2000:]}")
    elif done.returncode != 0 or not lines:
        raise RuntimeError(f"{spec['kind']} run failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@contextmanager
def cpu_hog() -> Iterator[None]:
    """Another process that keeps one core busy for the duration."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        yield
    finally:
        hog.kill()
        hog.wait()


def _count(db: BenchDatabase) -> int:
    conn = db.connect()
    try:
        rows = db.execute(conn, "SELECT COUNT(*) FROM log_events")
        return int(rows[0][0])
    finally:
        conn.close()


def _measure(db: BenchDatabase, spec: dict[str, Any], config: BurstConfig) -> dict[str, Any]:
    _fresh(db)
    result = child({"url": db.sa_url, **spec}, config.timeout_s)
    result["counted"] = _count(db)
    result["rate"] = result["counted"] / result["seconds"] if result["seconds"] else 0.0
    return result


def kill_and_ship(db: BenchDatabase, config: BurstConfig) -> dict[str, Any]:
    """SIGKILL of a ``durability="journal"`` producer, then the next Tracker ships."""
    _fresh(db)
    with tempfile.TemporaryDirectory(prefix="joblog-bench-journal-") as journal_dir:
        spec = {"url": db.sa_url, "journal_dir": journal_dir}
        killed = child(
            {**spec, "kind": "kill", "count": config.kill_after,
             "sync_interval": config.sync_interval},
            config.timeout_s,
            killed=True,
        )  # fmt: skip
        before = _count(db)
        shipped = child({**spec, "kind": "ship"}, config.timeout_s)
    stored = _count(db)
    per_call = killed["produce_seconds"] / config.kill_after
    interval_lines = int(config.sync_interval / per_call) if per_call else 0
    return {
        "lines": config.kill_after,
        "stored_before_restart": before,
        "shipped_by_next_tracker": shipped["stored"],
        "stored": stored,
        "lost": config.kill_after - stored,
        "sync_interval_s": config.sync_interval,
        "lines_per_sync_interval": interval_lines,
        "ship_seconds": shipped["seconds"],
    }


def run_burst_backend(db: BenchDatabase, config: BurstConfig, reporter: Reporter) -> dict[str, Any]:
    steps = 7 + (2 if config.hog else 0) + (1 if config.profile_lines else 0)
    task = reporter.task(f"{db.backend}: burst of {config.lines:,} lines", steps)
    lines = config.lines
    out: dict[str, Any] = {"backend": db.backend}
    try:
        for name, spec in (
            ("bare", {"kind": "bare", "count": lines}),
            ("joblog", {"kind": "joblog", "count": lines, "options": config.options}),
            ("joblog_process", {"kind": "joblog", "count": lines,
                                "options": {**config.options, "writer": "process"}}),
            ("stdlib", {"kind": "stdlib", "count": lines}),
        ):  # fmt: skip
            out[name] = _measure(db, spec, config)
            reporter.advance(task)
        out["null"] = child({"kind": "null", "count": lines}, config.timeout_s)
        reporter.advance(task)
        if config.hog:
            with cpu_hog():
                out["bare_hog"] = _measure(db, {"kind": "bare", "count": lines}, config)
                reporter.advance(task)
                out["joblog_hog"] = _measure(
                    db, {"kind": "joblog", "count": lines, "options": config.options}, config
                )
                reporter.advance(task)
        out["kill"] = kill_and_ship(db, config)
        reporter.advance(task)
        if config.profile_lines:
            count = min(config.profile_lines, lines)
            profiled = _measure(db, {"kind": "profile", "count": count}, config)
            out["profile"] = {
                "lines": count,
                "caller": profiled["caller_profile"],
                "writer": profiled["writer_profile"],
            }
            reporter.advance(task)
    finally:
        db.drop()
    reporter.done(task)
    return out


def run_burst(
    databases: list[BenchDatabase], config: BurstConfig, reporter: Reporter
) -> dict[str, Any]:
    return {
        "config": {
            "lines": config.lines,
            "kill_after": config.kill_after,
            "sync_interval": config.sync_interval,
            "options": config.options,
            "bare_batch": 10_000,
            "pipeline_batch": 2000,
        },
        "results": [run_burst_backend(db, config, reporter) for db in databases],
    }
