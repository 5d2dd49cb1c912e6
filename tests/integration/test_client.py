"""joblog.client against a real server: a job reported over HTTP reads like an in-process one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import joblog
from joblog.api.app import create_app
from joblog.api.settings import ApiSettings
from joblog.client import Client, RemoteError
from joblog.client import remote as remote_module
from joblog.exceptions import ExternalIdInUse, StorageUnavailable
from joblog.handles import JobCancelled
from tests.support.api import LiveServer, SseEvent, read_sse

WRITE = "write-token-0123456789abcdef"
STEPS = ["snapshot", ("copy", 2.0), "boot"]


@pytest.fixture
def server(database_url: str) -> Iterator[LiveServer]:
    settings = ApiSettings(write_tokens=(WRITE,), poll_interval=0.05)
    with LiveServer(create_app(database_url, settings=settings)) as live:
        yield live


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
def client(server: LiveServer) -> Iterator[Client]:
    remote = Client(server.url, WRITE, flush_interval=0.02)
    remote.install_logging()
    yield remote
    remote.close()


def failover(runner: Any, log: logging.Logger, external_id: str) -> None:
    """The same workload for a Tracker and a Client: steps, progress, logs, one warning."""
    with runner.job("failover", "unified", external_job_id=external_id, steps=STEPS) as job:
        log.info("failover of %s starts", external_id)
        with job.step("snapshot"):
            log.debug("quiescing")
            log.info("snapshot taken", extra={"snapshot_id": "snap-1"})
        with job.step("copy") as step:
            for block in range(4):
                step.progress(25 * (block + 1))
                log.info("copied block %d", block)
        with job.step("boot"):
            log.warning("boot is slow")


def summary(http: httpx.Client, any_id: str) -> dict[str, Any]:
    response = http.get(f"/api/v1/jobs/{any_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def logs(http: httpx.Client, any_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = http.get(f"/api/v1/jobs/{any_id}/logs").json()["events"]
    return events


def shape(http: httpx.Client, any_id: str) -> dict[str, Any]:
    """What a GUI sees of a job, without IDs and times."""
    body = summary(http, any_id)
    names = {step["id"]: step["name"] for step in body["steps"]}
    return {
        "status": body["job"]["status"],
        "percent": body["job"]["percent_complete"],
        "planned": body["job"]["planned_steps"],
        "steps": [(s["seq"], s["name"], s["status"], s["weight"]) for s in body["steps"]],
        "progress": body["progress"],
        "events": [
            (e["level"], e["message"], names.get(e["step_id"]), e["attrs"].get("snapshot_id"))
            for e in logs(http, any_id)
        ],
    }


class TestReportedOverHttp:
    def test_job_reads_like_an_in_process_one(
        self, client: Client, http: httpx.Client, database_url: str, log: logging.Logger
    ) -> None:
        tracker = joblog.Tracker(database_url, flush_interval=0.02)
        tracker.install_logging()
        try:
            failover(tracker, log, "in-process-1")
            tracker.flush(30)
        finally:
            tracker.close()
        failover(client, log, "over-http-1")
        remote, local = shape(http, "over-http-1"), shape(http, "in-process-1")
        assert remote["events"][0][1] == "failover of over-http-1 starts"
        remote["events"][0] = local["events"][0] = None
        assert remote == local
        assert remote["status"] == "completed" and remote["percent"] == 100

    def test_logs_carry_the_job_and_step(
        self, client: Client, http: httpx.Client, log: logging.Logger
    ) -> None:
        failover(client, log, "gui-1")
        job_id = summary(http, "gui-1")["job"]["id"]
        events = logs(http, "gui-1")
        assert {e["job_id"] for e in events} == {job_id}
        assert {e["external_job_id"] for e in events} == {"gui-1"}
        assert [e["step_id"] is not None for e in events] == [False] + [True] * 7

    def test_stream_follows_the_job_to_its_end(
        self, client: Client, server: LiveServer, log: logging.Logger
    ) -> None:
        seen: list[SseEvent] = []
        subscribed = threading.Event()

        def follow() -> None:
            with (
                httpx.Client(base_url=server.url, timeout=30) as http,
                http.stream("GET", "/api/v1/jobs/live-1/stream") as response,
            ):
                for event in read_sse(response):
                    seen.append(event)
                    subscribed.set()
                    if event.event == "end":
                        return

        with client.job("failover", "unified", external_job_id="live-1", steps=STEPS) as job:
            follower = threading.Thread(target=follow, daemon=True)
            follower.start()
            assert subscribed.wait(10)
            for name in ("snapshot", "copy", "boot"):
                with job.step(name):
                    log.info("in %s", name)
        follower.join(30)
        assert seen[0].event == "snapshot" and seen[-1].event == "end"
        assert seen[-1].data["status"] == "completed"
        steps = {e.data["name"]: e.data["status"] for e in seen if e.event == "step"}
        assert steps == {"snapshot": "completed", "copy": "completed", "boot": "completed"}
        lines = [e.data["message"] for e in seen if e.event == "log"]
        lines += [e["message"] for e in seen[0].data["recent_events"]]
        assert sorted(lines) == ["in boot", "in copy", "in snapshot"]

    def test_dashboard_shows_the_job(
        self, client: Client, http: httpx.Client, log: logging.Logger
    ) -> None:
        failover(client, log, "vm-42-failover")
        page = http.get("/jobs/vm-42-failover")
        assert page.status_code == 200
        for text in ("vm-42-failover", "snapshot", "copy", "boot"):
            assert text in page.text

    def test_child_job_rolls_up_into_its_parent(self, client: Client, http: httpx.Client) -> None:
        with client.job("failover", "unified", external_job_id="parent-1", steps=["disks"]) as job:
            with job.step("disks"), job.child("volume", "copy", external_job_id="disk-1") as disk:
                disk.progress(50)
                assert job.percent == 50
        body = summary(http, "parent-1")
        assert [c["external_job_id"] for c in body["children"]] == ["disk-1"]
        assert summary(http, "disk-1")["job"]["parent_job_id"] == body["job"]["id"]

    def test_client_http_chatter_is_not_shipped(
        self, client: Client, http: httpx.Client, log: logging.Logger
    ) -> None:
        logging.getLogger().setLevel(logging.DEBUG)
        try:
            failover(client, log, "quiet-1")
        finally:
            logging.getLogger().setLevel(logging.WARNING)
        loggers = {e["attrs"]["logger"] for e in logs(http, "quiet-1")}
        assert loggers == {"app.failover"}


class TestFailureAndCancel:
    def test_exception_fails_step_and_job_and_is_reraised(
        self, client: Client, http: httpx.Client
    ) -> None:
        with (
            pytest.raises(RuntimeError, match="disk full"),
            client.job("failover", "unified", external_job_id="bad-1") as job,
            job.step("copy"),
        ):
            raise RuntimeError("disk full")
        body = summary(http, "bad-1")
        assert body["job"]["status"] == "failed"
        assert body["job"]["error_message"] == "RuntimeError: disk full"
        assert [(s["name"], s["status"]) for s in body["steps"]] == [("copy", "failed")]
        errors = [e for e in logs(http, "bad-1") if e["level"] == "ERROR"]
        assert "Traceback" in errors[0]["attrs"]["exception"]

    def test_optional_step_failure_lets_the_job_complete(
        self, client: Client, http: httpx.Client
    ) -> None:
        with client.job("failover", "unified", external_job_id="opt-1") as job:
            with job.step("cleanup", allow_failure=True):
                raise OSError("temp dir busy")
            with job.step("boot"):
                pass
        body = summary(http, "opt-1")
        assert body["job"]["status"] == "completed"
        assert [s["status"] for s in body["steps"]] == ["failed", "completed"]

    def test_cancel_request_reaches_the_producer(
        self, client: Client, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(remote_module, "CANCEL_POLL_SECONDS", 0.0)
        with client.job("failover", "unified", external_job_id="cancel-1") as job:
            assert job.cancel_requested is False
            answer = http.post(
                "/api/v1/jobs/cancel-1/cancel", headers={"Authorization": f"Bearer {WRITE}"}
            )
            assert answer.status_code == 202
            assert job.cancel_requested is True
            with pytest.raises(JobCancelled):
                job.raise_if_cancel_requested()
            job.cancel("operator asked")
        assert summary(http, "cancel-1")["job"]["status"] == "cancelled"

    def test_external_id_held_by_a_running_job_raises(self, client: Client) -> None:
        with client.job("failover", "unified", external_job_id="held-1") as job:
            with pytest.raises(ExternalIdInUse) as caught:
                client.start_job("failover", "unified", external_job_id="held-1")
            assert caught.value.running_job_id == job.id

    def test_wrong_token_raises(self, server: LiveServer) -> None:
        with Client(server.url, "wrong-token-0123456789abcdef") as wrong:
            with pytest.raises(RemoteError) as caught:
                wrong.start_job("failover", "unified")
            assert caught.value.status_code == 403

    def test_unreachable_server_raises_storage_unavailable(self) -> None:
        with Client("http://127.0.0.1:9", WRITE, retries=0, timeout=2) as nowhere:
            with pytest.raises(StorageUnavailable):
                nowhere.start_job("failover", "unified")


class Flaky(httpx.BaseTransport):
    """Delivers events requests, then loses the first ``failures`` answers."""

    def __init__(self, mode: str, failures: int = 2) -> None:
        self._inner = httpx.HTTPTransport()
        self._mode = mode
        self.failures = failures

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/api/v1/events" or self.failures == 0:
            return self._inner.handle_request(request)
        self.failures -= 1
        if self._mode == "refused":  # never reached the server
            raise httpx.ConnectError("connection refused", request=request)
        response = self._inner.handle_request(request)  # the server stored it...
        response.read()
        response.close()
        if self._mode == "503":  # ...but a proxy answered 503
            return httpx.Response(503, json={"error": "unavailable"}, request=request)
        raise httpx.ReadError("connection reset", request=request)  # ...and the answer got lost

    def close(self) -> None:
        self._inner.close()


class TestRetriedBatches:
    @pytest.mark.parametrize("mode", ["503", "lost-answer", "refused"])
    def test_writer_retries_store_each_event_once(
        self, server: LiveServer, http: httpx.Client, log: logging.Logger, mode: str
    ) -> None:
        flaky = Flaky(mode)
        remote = Client(server.url, WRITE, flush_interval=0.02, transport=flaky)
        remote.install_logging()
        try:
            with remote.job("failover", "unified", external_job_id=f"retry-{mode}"):
                for line in range(5):
                    log.info("line %d", line)
            assert remote.flush(30)
            stats = remote.stats()
        finally:
            remote.close()
        messages = [e["message"] for e in logs(http, f"retry-{mode}")]
        assert messages == [f"line {n}" for n in range(5)]
        assert flaky.failures == 0 and stats.retries >= 2
        assert (stats.failed, stats.dropped) == (0, 0)
