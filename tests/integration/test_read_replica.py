"""Reads from a real hot standby (``--read-url``), and the reads that must go to the primary.

The harness makes a primary and its streaming standby (:mod:`tests.support.services`).
Pausing the standby's replay is an exact, controlled lag: whatever the primary commits
then is not on the replica until replay resumes. Every test resumes it before it ends.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from joblog.api.app import create_app
from joblog.api.read_routing import POSITION_HEADER
from joblog.api.settings import ApiSettings
from joblog.exceptions import ConfigError
from joblog.storage.replica import format_position, parse_position
from joblog.storage.store import Store
from tests.support.api import ApiClient, LiveServer, api_client, read_sse
from tests.support.services import HotStandbyPair, free_port

WRITE = "write-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {WRITE}"}
#: Generous bound for conditions that need replication or a lag check to happen.
WAIT_S = 30.0


@pytest.fixture
def pair(hot_standby: HotStandbyPair) -> Iterator[HotStandbyPair]:
    yield hot_standby
    hot_standby.resume_replay()  # whatever the test did


@pytest.fixture
def database(pair: HotStandbyPair) -> Iterator[str]:
    """A fresh database on the primary (its schema replicated), by name."""
    name = f"joblog_r_{uuid.uuid4().hex[:12]}"
    pair.create_database(name)
    Store(pair.url(name)).close()  # joblog's schema, through migrations
    pair.wait_replayed()
    yield name
    pair.resume_replay()
    pair.drop_database(name)


def make_app(pair: HotStandbyPair, database: str, **settings: Any) -> Any:
    return create_app(
        pair.url(database),
        settings=ApiSettings(
            write_tokens=(WRITE,), read_url=pair.url(database, standby=True), **settings
        ),
    )


@pytest.fixture
def api(pair: HotStandbyPair, database: str) -> Iterator[ApiClient]:
    with api_client(make_app(pair, database)) as client:
        yield client


def start(api: ApiClient, external_id: str, **fields: Any) -> dict[str, Any]:
    body = {"job_type": "failover", "operation": "unified", "external_job_id": external_id}
    response = api.request("POST", "/api/v1/jobs", json={**body, **fields}, headers=AUTH)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def set_percent(api: ApiClient, any_id: str, percent: int) -> httpx.Response:
    response = api.request(
        "PATCH", f"/api/v1/jobs/{any_id}", json={"percent": percent}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    return response


def stats(api: ApiClient) -> Any:
    return api.app.state.store.replica.stats


class TestReadsGoToTheReplica:
    def test_a_read_without_a_position_is_the_replicas(
        self, api: ApiClient, pair: HotStandbyPair
    ) -> None:
        job = start(api, "gui-1")
        set_percent(api, job["id"], 10)
        pair.wait_replayed()
        pair.pause_replay()
        set_percent(api, job["id"], 60)  # on the primary only
        answer = api.get(f"/api/v1/jobs/{job['id']}").json()
        assert answer["job"]["percent_complete"] == 10  # the replica's, a moment old
        assert stats(api).replica_reads > 0

    def test_lists_and_logs_are_the_replicas(self, api: ApiClient, pair: HotStandbyPair) -> None:
        start(api, "gui-1")
        pair.wait_replayed()
        pair.pause_replay()
        start(api, "gui-2")
        listed = api.get("/api/v1/jobs").json()["jobs"]
        assert [job["external_job_id"] for job in listed] == ["gui-1"]


class TestNotFoundAsksThePrimary:
    def test_a_job_created_while_the_replica_lags_is_found(
        self, api: ApiClient, pair: HotStandbyPair
    ) -> None:
        pair.pause_replay()
        job = start(api, "gui-new")
        for any_id in (job["id"], "gui-new"):
            response = api.get(f"/api/v1/jobs/{any_id}")
            assert response.status_code == 200, response.text
            assert response.json()["job"]["id"] == job["id"]
        assert api.get("/api/v1/failover/gui-new/status").status_code == 200
        assert stats(api).not_found_on_replica >= 3

    def test_the_rest_of_that_request_reads_the_primary(
        self, api: ApiClient, pair: HotStandbyPair
    ) -> None:
        pair.pause_replay()
        job = start(api, "gui-new", steps=["copy"])
        api.request("POST", f"/api/v1/jobs/{job['id']}/steps", json={"name": "copy"}, headers=AUTH)
        events = {
            "batch_key": "b1",
            "events": [{"job_id": job["id"], "level": "INFO", "message": "m"}],
        }
        api.request("POST", "/api/v1/events", json=events, headers=AUTH)
        summary = api.get(f"/api/v1/jobs/{job['id']}").json()
        assert [step["status"] for step in summary["steps"]] == ["running"]
        assert [event["message"] for event in summary["recent_events"]] == ["m"]
        logs = api.get(f"/api/v1/jobs/{job['id']}/logs").json()["events"]
        assert [event["message"] for event in logs] == ["m"]

    def test_an_unknown_id_is_still_a_404(self, api: ApiClient) -> None:
        assert api.get("/api/v1/jobs/nobody-has-this").status_code == 404


class TestOwnWritesReadThePrimary:
    def test_a_write_answer_carries_the_primarys_position(self, api: ApiClient) -> None:
        job = start(api, "gui-1")
        response = set_percent(api, job["id"], 20)
        parse_position(response.headers[POSITION_HEADER])  # a WAL position

    def test_a_read_with_that_position_sees_the_write(
        self, api: ApiClient, pair: HotStandbyPair
    ) -> None:
        job = start(api, "gui-1")
        pair.wait_replayed()
        pair.pause_replay()
        position = set_percent(api, job["id"], 70).headers[POSITION_HEADER]
        mine = api.get(f"/api/v1/jobs/{job['id']}", headers={POSITION_HEADER: position})
        assert mine.json()["job"]["percent_complete"] == 70
        others = api.get(f"/api/v1/jobs/{job['id']}")
        assert others.json()["job"]["percent_complete"] == 0

    def test_a_position_the_replica_has_replayed_reads_the_replica(
        self, api: ApiClient, pair: HotStandbyPair
    ) -> None:
        job = start(api, "gui-1")
        position = set_percent(api, job["id"], 30).headers[POSITION_HEADER]
        pair.wait_replayed()
        before = stats(api).replica_reads
        answer = api.get(f"/api/v1/jobs/{job['id']}", headers={POSITION_HEADER: position})
        assert answer.json()["job"]["percent_complete"] == 30
        assert stats(api).replica_reads > before

    @pytest.mark.parametrize(
        "value", [b"yesterday", b"1/2/3", b"G/0", b"0/FFFFFFFFF", "\u00e9/1".encode(), b"0/1\x01"]
    )
    def test_a_malformed_position_is_a_400(self, api: ApiClient, value: bytes) -> None:
        response = api.get("/api/v1/jobs", headers={POSITION_HEADER: value})
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"

    def test_writes_resolve_ids_on_the_primary(self, api: ApiClient, pair: HotStandbyPair) -> None:
        """The replica still knows only the first run of the external ID: a write naming
        it must reach the new run, not fail on the finished one."""
        first = start(api, "gui-rerun")
        api.request("PATCH", "/api/v1/jobs/gui-rerun", json={"status": "failed"}, headers=AUTH)
        pair.wait_replayed()
        pair.pause_replay()
        second = start(api, "gui-rerun")
        response = api.request(
            "POST", "/api/v1/jobs/gui-rerun/steps", json={"name": "copy"}, headers=AUTH
        )
        assert response.status_code == 201, response.text
        assert response.json()["job_id"] == second["id"] != first["id"]

    def test_ingest_attaches_to_the_newest_run(self, api: ApiClient, pair: HotStandbyPair) -> None:
        start(api, "gui-rerun")
        api.request("PATCH", "/api/v1/jobs/gui-rerun", json={"status": "failed"}, headers=AUTH)
        pair.wait_replayed()
        pair.pause_replay()
        second = start(api, "gui-rerun")
        events = {
            "batch_key": "b1",
            "events": [{"external_job_id": "gui-rerun", "level": "INFO", "message": "m"}],
        }
        assert api.request("POST", "/api/v1/events", json=events, headers=AUTH).status_code == 200
        stored = api.app.state.store.primary_reads.list_events(external_job_id="gui-rerun")
        assert [event.job_id for event in stored] == [second["id"]]


class TestLagAndFailures:
    def test_a_replica_further_behind_than_max_lag_is_not_read(
        self, pair: HotStandbyPair, database: str
    ) -> None:
        with api_client(make_app(pair, database, read_max_lag=0.05)) as api:
            job = start(api, "gui-1")
            pair.wait_replayed()
            pair.pause_replay()
            set_percent(api, job["id"], 80)
            deadline = time.monotonic() + WAIT_S
            while api.get(f"/api/v1/jobs/{job['id']}").json()["job"]["percent_complete"] != 80:
                assert time.monotonic() < deadline, "reads stayed on the lagging replica"
                time.sleep(0.1)
            assert stats(api).lagging
            pair.resume_replay()
            while stats(api).lagging:
                assert time.monotonic() < deadline, "the replica was not read again"
                api.get("/api/v1/jobs")
                time.sleep(0.1)

    def test_an_unreachable_replica_leaves_reads_to_the_primary(
        self, pair: HotStandbyPair, database: str
    ) -> None:
        dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/{database}"
        app = create_app(
            pair.url(database), settings=ApiSettings(write_tokens=(WRITE,), read_url=dead)
        )
        with api_client(app) as api:
            job = start(api, "gui-1")
            for _ in range(3):
                assert api.get(f"/api/v1/jobs/{job['id']}").status_code == 200
            assert api.get("/healthz").status_code == 200
            assert stats(api).replica_errors >= 1
            assert stats(api).replica_reads == 0


class TestStreamsFollowThePrimary:
    def test_a_stream_sees_every_event_while_replay_is_paused(
        self, pair: HotStandbyPair, database: str
    ) -> None:
        # No lag bound: only the stream's own rule can keep it on the primary.
        app = make_app(pair, database, poll_interval=0.05, read_max_lag=3600)
        with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=WAIT_S) as http:
            created = http.post(
                "/api/v1/jobs",
                json={"job_type": "failover", "operation": "unified", "external_job_id": "s-1"},
                headers=AUTH,
            ).json()
            pair.pause_replay()
            messages = [f"line {n}" for n in range(6)]
            with http.stream("GET", f"/api/v1/jobs/{created['id']}/stream") as stream:
                for n, message in enumerate(messages):
                    body = {
                        "batch_key": f"k{n}",
                        "events": [{"job_id": created["id"], "level": "INFO", "message": message}],
                    }
                    assert http.post("/api/v1/events", json=body, headers=AUTH).status_code == 200
                http.patch(
                    f"/api/v1/jobs/{created['id']}", json={"status": "completed"}, headers=AUTH
                )
                seen = []
                for event in read_sse(stream):
                    if event.event == "log":
                        seen.append(event.data["message"])
                    if event.event == "end":
                        break
        assert seen == messages


class TestConfiguration:
    def test_read_url_needs_postgresql(self, tmp_path: Any) -> None:
        url = f"sqlite:///{tmp_path / 'a.db'}"
        with pytest.raises(ConfigError, match="PostgreSQL"):
            Store(url, read_url=f"sqlite:///{tmp_path / 'b.db'}")

    def test_read_url_must_be_the_same_kind_of_database(self, pair: HotStandbyPair) -> None:
        with pytest.raises(ConfigError, match="read_url"):
            Store(pair.url(), read_url="mysql+pymysql://root@127.0.0.1:3306/test")

    def test_settings_read_the_environment(self) -> None:
        settings = ApiSettings.from_env(
            {
                "JOBLOG_READ_DATABASE_URL": "postgresql+psycopg://replica/joblog",
                "JOBLOG_DIRECT_DATABASE_URL": "postgresql+psycopg://primary/joblog",
                "JOBLOG_READ_MAX_LAG": "5s",
            }
        )
        assert settings.read_url == "postgresql+psycopg://replica/joblog"
        assert settings.direct_url == "postgresql+psycopg://primary/joblog"
        assert settings.read_max_lag == 5.0

    def test_without_a_replica_no_position_is_sent(self, tmp_path: Any) -> None:
        app = create_app(
            f"sqlite:///{tmp_path / 'a.db'}", settings=ApiSettings(write_tokens=(WRITE,))
        )
        with api_client(app) as api:
            response = api.request(
                "POST", "/api/v1/jobs", json={"job_type": "a", "operation": "b"}, headers=AUTH
            )
            assert response.status_code == 201
            assert POSITION_HEADER not in response.headers


class TestPositions:
    @pytest.mark.parametrize("text", ["0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF", "a/1"])
    def test_a_position_survives_the_round_trip(self, text: str) -> None:
        assert format_position(parse_position(text)) == text.upper()

    @pytest.mark.parametrize(
        "text", ["", "/", "0/", "/0", "1/2/3", "G/0", "0/1FFFFFFFF", "0/0\x00", "\ud800/0", "+1/0"]
    )
    def test_anything_else_is_refused(self, text: str) -> None:
        with pytest.raises(ValueError, match="WAL position"):
            parse_position(text)
