"""The live stream: a producer in another process, a client following over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

import joblog
from joblog.api.app import create_app
from joblog.api.settings import ApiSettings
from joblog.storage import schema
from joblog.storage.producer import ProducerWrites
from joblog.storage.store import Store
from tests.conftest import BACKENDS
from tests.support.api import LiveServer, Producer, SseEvent, backend_database, read_sse

STEPS = 4
LINES = 5


@pytest.fixture(scope="module", params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from backend_database(request, tmp_path_factory)


@pytest.fixture(scope="module")
def server(url: str) -> Iterator[LiveServer]:
    app = create_app(url, settings=ApiSettings(poll_interval=0.05))
    with LiveServer(app) as live:
        yield live


@pytest.fixture(scope="module")
def tracker(url: str) -> Iterator[joblog.Tracker]:
    """An in-process tracker for jobs that finish before the stream opens."""
    tracker = joblog.Tracker(url, flush_interval=0.01)
    yield tracker
    tracker.close()


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
def external_id() -> str:
    return f"unified-live-failover-pgtest2-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def producer(url: str, server: LiveServer, external_id: str) -> Iterator[Producer]:
    running = Producer(url, external_id, steps=STEPS, lines=LINES, delay=0.02)
    yield running
    running.close()


def stored_event_ids(url: str, job_id: str) -> list[int]:
    store = Store(url)
    try:
        return [event.id for event in store.reads.list_events(job_id=job_id, limit=100_000)]
    finally:
        store.close()


def logs_of(events: list[SseEvent]) -> list[int]:
    ids: list[int] = []
    for event in events:
        if event.event == "snapshot":
            ids += [line["id"] for line in event.data["recent_events"]]
        elif event.event == "log":
            ids.append(event.data["id"])
    return ids


def final_steps(events: list[SseEvent]) -> dict[str, str]:
    """Each step's last reported status, by name (snapshot steps included)."""
    steps: dict[str, str] = {}
    for event in events:
        if event.event == "snapshot":
            steps.update({s["name"]: s["status"] for s in event.data["steps"] if s["id"]})
        elif event.event == "step":
            steps[event.data["name"]] = event.data["status"]
    return steps


def follow(http: httpx.Client, path: str, headers: dict[str, str] | None = None) -> list[SseEvent]:
    with http.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200
        return list(read_sse(response))


class TestFollowingAJob:
    def test_every_step_and_log_line_once_then_end(
        self, url: str, http: httpx.Client, producer: Producer, external_id: str
    ) -> None:
        with http.stream("GET", f"/api/v1/jobs/{external_id}/stream") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = read_sse(response)
            snapshot = next(stream)
            producer.go()
            events = [snapshot, *stream]
        assert producer.wait() == 0

        assert snapshot.event == "snapshot"
        assert snapshot.data["job"]["id"] == producer.job_id
        log_ids = logs_of(events)
        assert log_ids == stored_event_ids(url, producer.job_id)
        assert len(log_ids) == STEPS * LINES
        assert final_steps(events) == {f"step-{n}": "completed" for n in range(1, STEPS + 1)}
        percents = [e.data["percent"] for e in events if e.event == "progress"]
        assert percents == sorted(percents)
        assert percents[-1] == 100
        assert events[-1].event == "end"
        assert events[-1].data == {"status": "completed", "error_message": None}
        assert [e.event for e in events].count("end") == 1

    def test_reconnect_with_last_event_id_misses_nothing_and_repeats_nothing(
        self, url: str, http: httpx.Client, producer: Producer, external_id: str
    ) -> None:
        first: list[SseEvent] = []
        with http.stream("GET", f"/api/v1/jobs/{external_id}/stream") as response:
            stream = read_sse(response)
            first.append(next(stream))
            producer.go()
            for event in stream:
                first.append(event)
                if sum(1 for e in first if e.event == "log") == 5:
                    break
        assert first[-1].id is not None
        second = follow(
            http, f"/api/v1/jobs/{external_id}/stream", headers={"Last-Event-ID": first[-1].id}
        )
        assert producer.wait() == 0

        assert "snapshot" not in [e.event for e in second]
        assert logs_of(second), "the job should still have been running at the disconnect"
        log_ids = logs_of(first) + logs_of(second)
        assert log_ids == stored_event_ids(url, producer.job_id)
        assert final_steps(first + second) == {
            f"step-{n}": "completed" for n in range(1, STEPS + 1)
        }
        assert second[-1].event == "end"


class TestFinishedJobs:
    def test_a_finished_job_gets_snapshot_then_end(
        self, http: httpx.Client, tracker: joblog.Tracker
    ) -> None:
        with tracker.job("failover", "live", external_job_id="done-1") as job:
            tracker.log_event("INFO", "all good")
        tracker.flush(30)
        events = follow(http, "/api/v1/jobs/done-1/stream")
        assert [e.event for e in events] == ["snapshot", "end"]
        assert events[0].data["job"]["id"] == job.id
        assert [line["message"] for line in events[0].data["recent_events"]] == ["all good"]

    def test_resuming_an_ended_stream_sends_only_end(
        self, http: httpx.Client, tracker: joblog.Tracker
    ) -> None:
        with tracker.job("failover", "live", external_job_id="done-2"):
            tracker.log_event("INFO", "all good")
        tracker.flush(30)
        first = follow(http, "/api/v1/jobs/done-2/stream")
        assert first[-1].id is not None
        again = follow(http, "/api/v1/jobs/done-2/stream", headers={"Last-Event-ID": first[-1].id})
        assert [e.event for e in again] == ["end"]

    def test_a_failed_job_ends_with_its_error(
        self, http: httpx.Client, tracker: joblog.Tracker
    ) -> None:
        job = tracker.start_job("failover", "live", external_job_id="broken-1")
        job.fail("volume attach timed out")
        tracker.flush(30)
        events = follow(http, "/api/v1/jobs/broken-1/stream")
        assert events[-1].data == {"status": "failed", "error_message": "volume attach timed out"}

    def test_a_completed_legacy_job_streams_snapshot_and_end(
        self, http: httpx.Client, tracker: joblog.Tracker
    ) -> None:
        now = datetime.now(UTC).replace(tzinfo=None)
        with tracker.store.engine.begin() as conn:
            conn.execute(
                schema.failover_jobs.insert().values(
                    job_id="legacy-77", job_type="live", status="completed", created_at=now
                )
            )
        events = follow(http, "/api/v1/jobs/legacy-77/stream")
        assert [e.event for e in events] == ["snapshot", "end"]
        assert events[0].data["resolved_by"] == "failover_jobs"


class TestQuietJobs:
    def test_keepalive_comments_while_nothing_changes(
        self, url: str, tracker: joblog.Tracker
    ) -> None:
        job = tracker.start_job("failover", "live", external_job_id="quiet-1")
        tracker.flush(30)
        settings = ApiSettings(poll_interval=0.05, keepalive_interval=0.1)
        with (
            LiveServer(create_app(url, settings=settings)) as live,
            httpx.Client(base_url=live.url, timeout=30) as client,
            client.stream("GET", "/api/v1/jobs/quiet-1/stream") as response,
        ):
            lines = response.iter_lines()
            assert next(line for line in lines if line.startswith("retry:")) == "retry: 2000"
            assert next(line for line in lines if line.startswith(":")) == ": keepalive"
        job.complete()


class TestCancelRequest:
    def test_a_cancel_request_is_streamed_as_it_lands(
        self, url: str, tracker: joblog.Tracker, external_id: str
    ) -> None:
        """Another process asks the job to stop: open pages learn it at once. The flag is
        part of the stream's state and of the shared watcher's marks (on PostgreSQL the
        watcher waits a minute here: the request's NOTIFY wakes the stream)."""
        job = tracker.start_job("failover", "live", external_job_id=external_id)
        tracker.flush(30)
        safety = 60.0 if url.startswith("postgresql") else 0.2
        settings = ApiSettings(poll_interval=0.05, safety_interval=safety)
        store = Store(url)
        other_process = ProducerWrites(store, attach=lambda _external: None)
        seen: list[tuple[str, Any]] = []
        try:
            with (
                LiveServer(create_app(url, settings=settings)) as live,
                httpx.Client(base_url=live.url, timeout=30) as http,
                http.stream("GET", f"/api/v1/jobs/{external_id}/stream") as response,
            ):
                for event in read_sse(response):
                    if event.event == "snapshot":
                        seen.append(("snapshot", event.data["job"]["cancel_requested"]))
                        with job.activate():
                            tracker.log_event("INFO", "ping")
                        tracker.flush(30)
                    elif event.event == "log":
                        # The stream has read past the snapshot and waits on the hub.
                        other_process.request_cancel(job.id)
                    elif event.event == "progress":
                        seen.append(("progress", event.data["cancel_requested"]))
                        if job.status.value == "running":
                            job.complete()  # the producer may well ignore the request
                            tracker.flush(30)
                    elif event.event == "end":
                        break
        finally:
            store.close()
        assert seen[:2] == [("snapshot", False), ("progress", True)]

    def test_a_cancel_request_notifies_at_commit_on_postgresql(
        self, url: str, tracker: joblog.Tracker, external_id: str
    ) -> None:
        job = tracker.start_job("failover", "live", external_job_id=external_id)
        tracker.flush(30)
        store = Store(url)
        statements: list[str] = []

        def capture(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements.append(statement)

        sa.event.listen(store.write_engine.engine, "before_cursor_execute", capture)
        try:
            ProducerWrites(store, attach=lambda _external: None).request_cancel(job.id)
        finally:
            sa.event.remove(store.write_engine.engine, "before_cursor_execute", capture)
            store.close()
        job.complete()
        notified = sum("pg_notify" in statement for statement in statements)
        assert notified == (1 if url.startswith("postgresql") else 0)


class TestStreamErrors:
    def test_unknown_id_is_404_json(self, http: httpx.Client) -> None:
        response = http.get("/api/v1/jobs/nobody-knows/stream")
        assert response.status_code == 404
        assert response.json() == {"error": "job_not_found", "id": "nobody-knows"}

    def test_malformed_last_event_id_is_400_json(
        self, http: httpx.Client, tracker: joblog.Tracker
    ) -> None:
        with tracker.job("failover", "live", external_job_id="done-3"):
            pass
        tracker.flush(30)
        response = http.get(
            "/api/v1/jobs/done-3/stream", headers={"Last-Event-ID": "'; DROP TABLE x"}
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"
