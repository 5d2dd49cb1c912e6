"""Idle streams cost the database (almost) nothing: they wait on the process's change hub."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

import joblog
from joblog.api.app import create_app
from joblog.api.settings import ApiSettings
from tests.conftest import BACKENDS
from tests.support.api import LiveServer, backend_database

STREAMS = 10


@pytest.fixture(scope="module", params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from backend_database(request, tmp_path_factory)


def _follow(base: str, job_id: str, seen: list[str], stop: threading.Event) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:
        with client.stream("GET", f"/api/v1/jobs/{job_id}/stream") as response:
            for line in response.iter_lines():
                if line.startswith("data:") and "needle-line" in line:
                    seen.append(line)
                    return
                if stop.is_set():
                    return


def test_idle_streams_share_one_watcher_and_all_get_the_new_event(url: str) -> None:
    # On PostgreSQL the watcher is only a safety net: NOTIFY alone must deliver.
    safety = 60.0 if url.startswith("postgresql") else 0.2
    app = create_app(url, settings=ApiSettings(poll_interval=0.2, safety_interval=safety))
    store = app.state.store
    statements: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        statements.append(statement)

    tracker = joblog.Tracker(url, flush_interval=0.01)
    tracker.install_logging()
    scope = tracker.job("hub", "idle")
    job = scope.__enter__()
    tracker.flush()
    seen: list[str] = []
    stop = threading.Event()
    with LiveServer(app) as live:
        threads = [
            threading.Thread(target=_follow, args=(live.url, job.id, seen, stop), daemon=True)
            for _ in range(STREAMS)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while app.state.hub.followed < 1 or _subscribers(app) < STREAMS:
            assert time.monotonic() < deadline, "streams did not subscribe"
            time.sleep(0.05)
        time.sleep(0.5)  # let every stream finish its first read and go idle
        sa.event.listen(store.reads.engine, "before_cursor_execute", count)
        ticks_before = app.state.hub.stats.watcher_ticks
        time.sleep(2.0)
        sa.event.remove(store.reads.engine, "before_cursor_execute", count)
        ticks = app.state.hub.stats.watcher_ticks - ticks_before
        # Polling streams would read ~6 statements each per round; idle ones read none:
        # only the shared watcher's one statement per tick.
        assert len(statements) <= ticks + 1
        logging.getLogger("hub-test").warning("needle-line")
        tracker.flush()
        for thread in threads:
            thread.join(20)
        stop.set()
    scope.__exit__(None, None, None)
    tracker.close()
    assert len(seen) == STREAMS
    if url.startswith("postgresql"):
        assert app.state.hub.stats.notifications >= 1


def _subscribers(app: Any) -> int:
    return sum(len(s) for s in app.state.hub._subscribers.values())
