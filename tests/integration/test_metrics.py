"""``/metrics`` parsed with prometheus_client's own parser, after real traffic.

The job gauges are read from the database, so they run on all three backends; the rest
is the server's own counting.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

import joblog
from joblog.api import app as app_module
from joblog.api.app import create_app
from joblog.api.collectors import MAX_JOB_TYPES, OTHER_TYPES, JobCounts
from joblog.api.metrics import AppMetrics
from joblog.api.settings import ApiSettings
from joblog.exceptions import StorageUnavailable
from joblog.storage.store import Store
from tests.support.api import ApiClient, LiveServer, api_client, read_sse

WRITE = "metrics-write-token-0123456789"
AUTH = {"Authorization": f"Bearer {WRITE}"}
UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"


def scrape(api: ApiClient | httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ``/metrics``, keyed by (sample name, labels)."""
    response = api.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def make_api(url: str, **settings: Any) -> Any:
    return api_client(create_app(url, settings=ApiSettings(write_tokens=(WRITE,), **settings)))


@pytest.fixture
def api(database_url: str) -> Iterator[ApiClient]:
    """On each backend: for what the database answers."""
    with make_api(database_url) as client:
        yield client


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The server's own counting does not depend on the backend."""
    return f"sqlite:///{tmp_path / 'metrics.db'}"


@pytest.fixture
def local_api(sqlite_url: str) -> Iterator[ApiClient]:
    with make_api(sqlite_url) as client:
        yield client


def start_job(api: ApiClient, job_type: str, external_id: str) -> str:
    body = {"job_type": job_type, "operation": "unified", "external_job_id": external_id}
    response = api.request("POST", "/api/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def end_job(api: ApiClient, job_id: str, status: str) -> None:
    response = api.request("PATCH", f"/api/v1/jobs/{job_id}", json={"status": status}, headers=AUTH)
    assert response.status_code == 200, response.text


def send_events(api: ApiClient, key: str, job: str, count: int) -> httpx.Response:
    events = [
        {"external_job_id": job, "level": "INFO", "message": f"line {n}"} for n in range(count)
    ]
    return api.request(
        "POST", "/api/v1/events", json={"batch_key": key, "events": events}, headers=AUTH
    )


class TestJobGauges:
    def test_jobs_by_type_and_status_from_the_database(self, api: ApiClient) -> None:
        first = start_job(api, "failover", "gui-1")
        start_job(api, "failover", "gui-2")
        end_job(api, first, "completed")
        end_job(api, start_job(api, "backup", "gui-3"), "failed")
        samples = scrape(api)
        assert value(samples, "joblog_jobs", job_type="failover", status="running") == 1
        assert value(samples, "joblog_jobs", job_type="failover", status="completed") == 1
        assert value(samples, "joblog_jobs", job_type="backup", status="failed") == 1
        assert value(samples, "joblog_jobs", job_type="backup", status="running") is None

    def test_counts_are_read_once_per_ttl(self, database_url: str) -> None:
        store = Store(database_url)
        try:
            counts = JobCounts(store.reads, ttl=3600)
            assert next(iter(counts.collect())).samples == []
            tracker = joblog.Tracker(store=store)
            with tracker.job("failover", "live"):
                pass
            tracker.close()
            for _ in range(3):
                assert next(iter(counts.collect())).samples == []  # the cached answer
            assert counts.queries == 1
            fresh = JobCounts(store.reads, ttl=0)
            assert [s.value for s in next(iter(fresh.collect())).samples] == [1]
        finally:
            store.close()

    def test_a_database_away_leaves_the_gauges_empty_and_counts_it(self) -> None:
        store = Store(UNREACHABLE, auto_migrate=False)
        with api_client(create_app(store=store)) as api:
            samples = scrape(api)
        assert not any(name == "joblog_jobs" for name, _ in samples)
        assert value(samples, "joblog_jobs_read_errors_total") == 1


class FakeReads:
    def __init__(self, rows: list[tuple[str, str, int]] | None) -> None:
        self.rows = rows

    def job_counts(self) -> list[tuple[str, str, int]]:
        if self.rows is None:
            raise StorageUnavailable("down")
        return self.rows


class TestJobCountLabels:
    def test_types_past_the_largest_are_summed_as_other(self) -> None:
        rows = [(f"type-{n:03}", "running", 1000 - n) for n in range(MAX_JOB_TYPES + 5)]
        counts = JobCounts(FakeReads(rows), ttl=0)  # type: ignore[arg-type]
        samples = {s.labels["job_type"]: s.value for s in next(iter(counts.collect())).samples}
        assert len(samples) == MAX_JOB_TYPES + 1
        assert "type-000" in samples
        assert samples[OTHER_TYPES] == sum(
            1000 - n for n in range(MAX_JOB_TYPES, MAX_JOB_TYPES + 5)
        )


class TestRequests:
    def test_counted_by_route_template_and_status(self, local_api: ApiClient) -> None:
        local_api.get("/api/v1/jobs/nobody")
        local_api.get("/api/v1/jobs/somebody-else")
        samples = scrape(local_api)
        labels = {"method": "GET", "route": "/api/v1/jobs/{any_id:path}", "status": "404"}
        assert value(samples, "joblog_http_requests_total", **labels) == 2
        assert value(samples, "joblog_http_request_duration_seconds_count", **labels) == 2
        assert (
            value(samples, "joblog_http_request_duration_seconds_bucket", le="+Inf", **labels) == 2
        )

    def test_unmatched_paths_share_one_label(self, local_api: ApiClient) -> None:
        local_api.get("/no/such/page")
        text = local_api.get("/metrics").text
        labels = {"method": "GET", "route": "unmatched", "status": "404"}
        assert value(scrape(local_api), "joblog_http_requests_total", **labels) == 1
        assert "/no/such/page" not in text

    def test_each_app_counts_its_own(self, sqlite_url: str) -> None:
        with make_api(sqlite_url) as first, make_api(sqlite_url) as second:
            first.get("/api/v1/jobs/nobody")
            labels = {"method": "GET", "route": "/api/v1/jobs/{any_id:path}", "status": "404"}
            assert value(scrape(first), "joblog_http_requests_total", **labels) == 1
            assert value(scrape(second), "joblog_http_requests_total", **labels) is None


class TestIngestCounters:
    def test_stored_duplicate_and_refused_batches(self, local_api: ApiClient) -> None:
        start_job(local_api, "failover", "gui-1")
        assert send_events(local_api, "k1", "gui-1", 3).json() == {"stored": 3, "duplicate": False}
        assert send_events(local_api, "k1", "gui-1", 3).json()["duplicate"] is True
        assert send_events(local_api, "k2", "gui-2", 2).status_code == 200  # events-only ID
        refused = local_api.request(
            "POST",
            "/api/v1/events",
            json={
                "batch_key": "k3",
                "events": [{"job_id": "nope", "level": "INFO", "message": "x"}],
            },
            headers=AUTH,
        )
        assert refused.status_code == 422
        samples = scrape(local_api)
        assert value(samples, "joblog_ingest_events_total", source="http") == 5
        assert value(samples, "joblog_ingest_batches_total", source="http", outcome="stored") == 2
        assert (
            value(samples, "joblog_ingest_batches_total", source="http", outcome="duplicate") == 1
        )
        assert value(samples, "joblog_ingest_batches_total", source="http", outcome="refused") == 1
        assert value(samples, "joblog_ingest_events_rejected_total", source="http") == 1
        assert value(samples, "joblog_ingest_events_total", source="otlp") == 0

    def test_a_database_away_counts_the_batch_failed(self) -> None:
        settings = ApiSettings(write_tokens=(WRITE,))
        store = Store(UNREACHABLE, auto_migrate=False)
        with api_client(create_app(store=store, settings=settings)) as api:
            assert send_events(api, "k1", "gui-1", 2).status_code == 503
            samples = scrape(api)
        assert value(samples, "joblog_ingest_batches_total", source="http", outcome="failed") == 1
        assert value(samples, "joblog_ingest_events_total", source="http") == 0


class TestWriterCounters:
    def test_of_an_attached_tracker(self, local_api: ApiClient, sqlite_url: str) -> None:
        tracker = joblog.Tracker(sqlite_url, flush_interval=0.01)
        try:
            with tracker.job("failover", "live"):
                tracker.log_event("INFO", "one")
            assert tracker.flush(30)
            local_api.app.state.tracker = tracker
            samples = scrape(local_api)
        finally:
            tracker.close()
        assert value(samples, "joblog_writer_queue_depth") == 0
        assert value(samples, "joblog_writer_events_written_total") == 1
        assert value(samples, "joblog_writer_events_dropped_total") == 0
        assert value(samples, "joblog_writer_events_dead_lettered_total") == 0
        assert value(samples, "joblog_writer_healthy") == 1

    def test_absent_without_a_tracker(self, local_api: ApiClient) -> None:
        assert not any(name.startswith("joblog_writer_") for name, _ in scrape(local_api))


class TestPoolAndProcess:
    def test_connections_in_use_per_engine(self, api: ApiClient) -> None:
        store: Store = api.app.state.store
        with store.reads.engine.connect():
            samples = scrape(api)
        assert value(samples, "joblog_db_pool_connections_in_use", engine="read") == 1
        assert value(samples, "joblog_db_pool_connections_in_use", engine="write") == 0
        assert (value(samples, "joblog_db_pool_size", engine="write") or 0) >= 1

    def test_process_metrics(self, api: ApiClient) -> None:
        samples = scrape(api)
        assert (value(samples, "process_cpu_seconds_total") or 0) > 0
        assert any(name == "python_info" for name, _ in samples)


class TestExposition:
    def test_openmetrics_when_asked(self, local_api: ApiClient) -> None:
        local_api.get("/api/v1/jobs/nobody")
        response = local_api.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        assert response.headers["content-type"].startswith("application/openmetrics-text")
        names = {family.name for family in openmetrics_families(response.text)}
        assert {"joblog_http_requests", "joblog_jobs"} <= names

    @pytest.mark.parametrize(
        "accept", ["text/plain; version=abc", "application/openmetrics-text; version=x", ";;="]
    )
    def test_a_malformed_accept_gets_the_plain_format(
        self, local_api: ApiClient, accept: str
    ) -> None:
        response = local_api.get("/metrics", headers={"Accept": accept})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")


class TestStreams:
    def test_open_streams_are_counted_while_they_last(self, sqlite_url: str) -> None:
        tracker = joblog.Tracker(sqlite_url, flush_interval=0.01)
        settings = ApiSettings(poll_interval=0.05)
        try:
            with (
                tracker.job("failover", "live", external_job_id="followed"),
                LiveServer(create_app(sqlite_url, settings=settings)) as live,
                httpx.Client(base_url=live.url, timeout=30) as http,
            ):
                tracker.flush(30)
                with http.stream("GET", "/api/v1/jobs/followed/stream") as response:
                    events = read_sse(response)  # kept: closing it would close the stream
                    assert next(events).event == "snapshot"
                    assert _eventually(lambda: value(scrape(http), "joblog_streams_open") == 1)
                assert _eventually(lambda: value(scrape(http), "joblog_streams_open") == 0)
        finally:
            tracker.close()


def _eventually(check: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())


class TestHousekeepingRuns:
    def test_reaper_runs_are_counted(self, sqlite_url: str) -> None:
        app = create_app(sqlite_url, reap_interval=0.05)
        with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=30) as http:
            assert _eventually(
                lambda: (
                    (
                        value(
                            scrape(http),
                            "joblog_housekeeping_runs_total",
                            task="reap",
                            outcome="ran",
                        )
                        or 0
                    )
                    >= 2
                )
            )

    @pytest.mark.parametrize(
        ("outcome", "behaviour"),
        [("ran", "returns"), ("skipped", "skips"), ("failed", "raises")],
    )
    def test_outcomes(self, sqlite_url: str, outcome: str, behaviour: str) -> None:
        store = Store(sqlite_url)
        metrics = AppMetrics(store)

        def _reap() -> bool | None:
            if behaviour == "raises":
                raise StorageUnavailable("down")
            return False if behaviour == "skips" else None

        runs, labels = "joblog_housekeeping_runs_total", {"task": "reap", "outcome": outcome}

        async def run_a_few() -> None:
            with anyio.move_on_after(30):
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(app_module._every, 0.01, metrics, _reap)
                    while (metrics.registry.get_sample_value(runs, labels) or 0) < 2:
                        await anyio.sleep(0.01)
                    tasks.cancel_scope.cancel()

        try:
            anyio.run(run_a_few)
            samples = {
                (s.name, frozenset(s.labels.items())): s.value
                for family in metrics.registry.collect()
                for s in family.samples
            }
        finally:
            store.close()
        assert (
            value(samples, "joblog_housekeeping_runs_total", task="reap", outcome=outcome) or 0
        ) >= 2
        others = {"ran", "skipped", "failed"} - {outcome}
        for other in others:
            assert value(samples, "joblog_housekeeping_runs_total", task="reap", outcome=other) == 0


WORKERS_SERVER = r"""
import os, sys, uvicorn
os.environ["JOBLOG_DATABASE_URL"] = sys.argv[1]
os.environ["JOBLOG_READ_ONLY"] = "1"
uvicorn.run("joblog.api.app:create_app", factory=True, host="127.0.0.1", port=int(sys.argv[2]),
            workers=2, log_level="warning")
"""


@pytest.mark.slow
class TestSeveralWorkers:
    """prometheus_client's multiprocess mode: every worker's counts, whichever answers."""

    def test_requests_are_summed_over_the_workers(self, tmp_path: Path) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        directory = tmp_path / "prometheus"
        directory.mkdir()
        url = f"sqlite:///{tmp_path / 'workers.db'}"
        Store(url).close()  # the schema, before two workers race to create it
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
        process = subprocess.Popen(
            [sys.executable, "-c", WORKERS_SERVER, url, str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            assert _eventually(lambda: _answers(base)), "the workers did not start"
            labels = {"method": "GET", "route": "/api/v1/jobs/{any_id:path}", "status": "404"}
            # New connections each time, so that both workers answer some of them.
            for n in range(20):
                assert httpx.get(f"{base}/api/v1/jobs/nobody-{n}", timeout=30).status_code == 404
            seen = set()
            for _ in range(4):
                with httpx.Client(base_url=base, timeout=30) as http:
                    samples = scrape(http)
                seen.add(value(samples, "joblog_http_requests_total", **labels))
                assert not any(name.startswith("process_") for name, _ in samples)
            assert seen == {20}
            assert len(list(directory.glob("counter_*.db"))) == 2
        finally:
            process.terminate()
            process.communicate(timeout=30)


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
