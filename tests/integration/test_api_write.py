"""The write (ingest) API on all three backends: jobs, steps, progress, events, cancel."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import joblog
from joblog.api.app import create_app
from joblog.api.settings import ApiSettings
from joblog.stdlib import MAX_MESSAGE_CHARS
from joblog.storage.store import Store
from tests.support.api import ApiClient, api_client

WRITE = "write-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {WRITE}"}


def make_api(url: str, **settings: Any) -> Any:
    return api_client(create_app(url, settings=ApiSettings(write_tokens=(WRITE,), **settings)))


@pytest.fixture
def api(database_url: str) -> Iterator[ApiClient]:
    with make_api(database_url) as client:
        yield client


def post(api: ApiClient, path: str, body: Any = None) -> Any:
    return api.request("POST", path, json=body, headers=AUTH)


def patch(api: ApiClient, path: str, body: Any) -> Any:
    return api.request("PATCH", path, json=body, headers=AUTH)


def start(api: ApiClient, external_id: str = "gui-1", **fields: Any) -> dict[str, Any]:
    response = post(
        api,
        "/api/v1/jobs",
        {"job_type": "failover", "operation": "unified", "external_job_id": external_id, **fields},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def batch(key: str, *events: dict[str, Any]) -> dict[str, Any]:
    return {"batch_key": key, "events": list(events)}


class TestStartJob:
    def test_answers_201_with_the_job_and_its_location(self, api: ApiClient) -> None:
        response = post(api, "/api/v1/jobs", {"job_type": "failover", "operation": "unified"})
        assert response.status_code == 201
        job = response.json()
        assert job["status"] == "running"
        assert response.headers["location"] == f"/api/v1/jobs/{job['id']}"

    def test_job_is_found_by_its_external_id(self, api: ApiClient) -> None:
        job = start(api, "vm-7/failover 1", steps=["snapshot", {"name": "boot", "weight": 3}])
        summary = api.get("/api/v1/jobs/vm-7%2Ffailover%201").json()
        assert summary["job"]["id"] == job["id"]
        assert summary["job"]["planned_steps"] == [
            {"name": "snapshot", "weight": 1.0},
            {"name": "boot", "weight": 3.0},
        ]

    def test_metadata_and_context_are_stored(self, api: ApiClient) -> None:
        job = start(api, context_id="vm-7", owner="ops", metadata={"site": "b", "n": [1, 2]})
        assert (job["context_id"], job["owner"]) == ("vm-7", "ops")
        assert job["metadata"] == {"site": "b", "n": [1, 2]}

    def test_running_holder_of_external_id_is_a_409(self, api: ApiClient) -> None:
        first = start(api, "gui-1")
        response = post(
            api,
            "/api/v1/jobs",
            {"job_type": "failover", "operation": "again", "external_job_id": "gui-1"},
        )
        assert response.status_code == 409
        assert response.json()["error"] == "external_id_in_use"
        assert response.json()["running_job_id"] == first["id"]

    def test_allow_policy_starts_a_second_holder(self, database_url: str) -> None:
        with make_api(database_url, external_id_policy="allow") as api:
            start(api, "gui-1")
            second = start(api, "gui-1")
            assert api.get("/api/v1/jobs/gui-1").json()["job"]["id"] == second["id"]

    def test_parent_is_named_by_any_id(self, api: ApiClient) -> None:
        parent = start(api, "parent-ext")
        child = start(api, "child-ext", parent="parent-ext")
        assert child["parent_job_id"] == parent["id"]

    def test_unknown_parent_is_a_422(self, api: ApiClient) -> None:
        response = post(api, "/api/v1/jobs", {"job_type": "a", "operation": "b", "parent": "nope"})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "parent"]

    def test_pending_job_runs_from_its_first_step(self, api: ApiClient) -> None:
        job = start(api, start=False)
        assert job["status"] == "pending"
        post(api, f"/api/v1/jobs/{job['id']}/steps", {"name": "first"})
        assert api.get(f"/api/v1/jobs/{job['id']}").json()["job"]["status"] == "running"


class TestSteps:
    def test_steps_are_numbered_in_order(self, api: ApiClient) -> None:
        start(api)
        first = post(api, "/api/v1/jobs/gui-1/steps", {"name": "snapshot"})
        second = post(api, "/api/v1/jobs/gui-1/steps", {"name": "boot", "allow_failure": True})
        assert (first.status_code, second.status_code) == (201, 201)
        assert (first.json()["seq"], second.json()["seq"]) == (1, 2)
        assert second.json()["allow_failure"] is True

    def test_finishing_a_step_moves_planned_progress(self, api: ApiClient) -> None:
        start(api, steps=["a", "b", "c", "d"])
        post(api, "/api/v1/jobs/gui-1/steps", {"name": "a"})
        response = patch(api, "/api/v1/jobs/gui-1/steps/1", {"status": "completed"})
        assert response.status_code == 200
        assert response.json()["status"] == "completed"
        assert api.get("/api/v1/jobs/gui-1").json()["job"]["percent_complete"] == 25

    def test_failed_step_keeps_its_error(self, api: ApiClient) -> None:
        start(api)
        post(api, "/api/v1/jobs/gui-1/steps", {"name": "boot"})
        body = {"status": "failed", "error_message": "VM did not boot"}
        step = patch(api, "/api/v1/jobs/gui-1/steps/1", body).json()
        assert (step["status"], step["error_message"]) == ("failed", "VM did not boot")

    def test_unknown_step_is_a_404(self, api: ApiClient) -> None:
        start(api)
        response = patch(api, "/api/v1/jobs/gui-1/steps/9", {"status": "completed"})
        assert response.status_code == 404
        assert response.json()["error"] == "step_not_found"

    def test_finishing_twice_is_a_409(self, api: ApiClient) -> None:
        start(api)
        post(api, "/api/v1/jobs/gui-1/steps", {"name": "boot"})
        patch(api, "/api/v1/jobs/gui-1/steps/1", {"status": "completed"})
        response = patch(api, "/api/v1/jobs/gui-1/steps/1", {"status": "skipped"})
        assert response.status_code == 409
        assert response.json()["error"] == "invalid_transition"

    def test_step_of_unknown_job_is_a_404(self, api: ApiClient) -> None:
        response = post(api, "/api/v1/jobs/nope/steps", {"name": "boot"})
        assert response.status_code == 404
        assert response.json()["error"] == "job_not_found"


class TestUpdateJob:
    def test_progress_never_goes_backwards(self, api: ApiClient) -> None:
        start(api)
        assert patch(api, "/api/v1/jobs/gui-1", {"percent": 60}).json()["percent_complete"] == 60
        assert patch(api, "/api/v1/jobs/gui-1", {"percent": 30}).json()["percent_complete"] == 60

    def test_completing_sets_100(self, api: ApiClient) -> None:
        start(api)
        job = patch(api, "/api/v1/jobs/gui-1", {"status": "completed"}).json()
        assert (job["status"], job["percent_complete"]) == ("completed", 100)

    def test_completing_after_a_failed_required_step_fails(self, api: ApiClient) -> None:
        start(api)
        post(api, "/api/v1/jobs/gui-1/steps", {"name": "boot"})
        patch(api, "/api/v1/jobs/gui-1/steps/1", {"status": "failed", "error_message": "no"})
        job = patch(api, "/api/v1/jobs/gui-1", {"status": "completed"}).json()
        assert job["status"] == "failed"
        assert "boot" in job["error_message"]

    def test_a_finished_job_cannot_change(self, api: ApiClient) -> None:
        start(api)
        patch(api, "/api/v1/jobs/gui-1", {"status": "cancelled", "error_message": "user"})
        response = patch(api, "/api/v1/jobs/gui-1", {"status": "completed"})
        assert response.status_code == 409

    def test_unknown_job_is_a_404(self, api: ApiClient) -> None:
        assert patch(api, "/api/v1/jobs/nope", {"percent": 5}).status_code == 404


class TestHeartbeatAndCancel:
    def test_cancel_is_202_and_heartbeat_shows_it(self, api: ApiClient) -> None:
        start(api)
        assert post(api, "/api/v1/jobs/gui-1/heartbeat").json()["cancel_requested"] is False
        response = post(api, "/api/v1/jobs/gui-1/cancel")
        assert response.status_code == 202
        assert post(api, "/api/v1/jobs/gui-1/heartbeat").json()["cancel_requested"] is True

    def test_heartbeat_of_a_finished_job_is_a_409(self, api: ApiClient) -> None:
        start(api)
        patch(api, "/api/v1/jobs/gui-1", {"status": "completed"})
        assert post(api, "/api/v1/jobs/gui-1/heartbeat").status_code == 409

    def test_in_process_job_sees_an_http_cancel(self, database_url: str) -> None:
        tracker = joblog.Tracker(database_url, flush_interval=0.02)
        try:
            job = tracker.start_job("failover", "unified", external_job_id="in-process")
            tracker.flush(10)
            with make_api(database_url) as api:
                assert post(api, "/api/v1/jobs/in-process/cancel").status_code == 202
            job._cancel_checked = 0.0  # skip the 1 s poll interval
            assert job.cancel_requested is True
            job.cancel("asked")
        finally:
            tracker.close()


class TestEvents:
    def test_batch_is_stored_and_attributed(self, api: ApiClient) -> None:
        job = start(api)
        post(api, "/api/v1/jobs/gui-1/steps", {"name": "boot"})
        response = post(
            api,
            "/api/v1/events",
            batch(
                "k-1",
                {
                    "external_job_id": "gui-1",
                    "step_seq": 1,
                    "level": "WARNING",
                    "message": "slow",
                    "attrs": {"vm": "vm-7"},
                },
                {
                    "job_id": job["id"],
                    "level": "info",
                    "message": "done",
                    "ts": "2026-01-02T03:04:05+02:00",
                },
            ),
        )
        assert response.json() == {"stored": 2, "duplicate": False}
        events = api.get("/api/v1/jobs/gui-1/logs").json()["events"]
        assert [(e["level"], e["message"]) for e in events] == [("WARN", "slow"), ("INFO", "done")]
        assert events[0]["step_id"] is not None and events[0]["attrs"] == {"vm": "vm-7"}
        assert events[1]["ts"] == "2026-01-02T01:04:05.000000Z"
        assert all(e["job_id"] == job["id"] for e in events)

    def test_a_replayed_batch_is_stored_once(self, api: ApiClient) -> None:
        start(api)
        body = batch("retry-me", {"external_job_id": "gui-1", "level": "INFO", "message": "x"})
        assert post(api, "/api/v1/events", body).json() == {"stored": 1, "duplicate": False}
        assert post(api, "/api/v1/events", body).json() == {"stored": 0, "duplicate": True}
        assert len(api.get("/api/v1/jobs/gui-1/logs").json()["events"]) == 1

    def test_trace_and_span_ids_are_stored_lowercase(self, api: ApiClient) -> None:
        start(api)
        traced = {"trace_id": "0AF7651916CD43DD8448EB211C80319C", "span_id": "B7AD6B7169203331"}
        body = batch(
            "k",
            {"external_job_id": "gui-1", "level": "INFO", "message": "traced", **traced},
            {"external_job_id": "gui-1", "level": "INFO", "message": "plain"},
        )
        assert post(api, "/api/v1/events", body).json() == {"stored": 2, "duplicate": False}
        events = api.get("/api/v1/jobs/gui-1/logs").json()["events"]
        assert [(e["trace_id"], e["span_id"]) for e in events] == [
            ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"),
            (None, None),
        ]

    def test_events_only_external_id_is_resolvable(self, api: ApiClient) -> None:
        body = batch("k", {"external_job_id": "only-in-logs", "level": "INFO", "message": "x"})
        post(api, "/api/v1/events", body)
        events = api.get("/api/v1/jobs/only-in-logs/logs").json()["events"]
        assert [e["message"] for e in events] == ["x"]

    def test_long_message_is_cut_with_a_marker(self, api: ApiClient) -> None:
        start(api)
        long = "x" * (MAX_MESSAGE_CHARS + 50)
        post(
            api,
            "/api/v1/events",
            batch("k", {"external_job_id": "gui-1", "level": "INFO", "message": long}),
        )
        message = api.get("/api/v1/jobs/gui-1/logs").json()["events"][0]["message"]
        assert message.endswith("[truncated 50 characters]")

    def test_unknown_job_id_refuses_the_whole_batch(
        self, api: ApiClient, database_url: str
    ) -> None:
        start(api)
        response = post(
            api,
            "/api/v1/events",
            batch(
                "k",
                {"external_job_id": "gui-1", "level": "INFO", "message": "fine"},
                {"job_id": "no-such-job", "level": "INFO", "message": "bad"},
            ),
        )
        assert response.status_code == 422
        assert api.get("/api/v1/jobs/gui-1/logs").json()["events"] == []
        # The key was not used up: the corrected batch is stored under it.
        fixed = batch("k", {"external_job_id": "gui-1", "level": "INFO", "message": "fine"})
        assert post(api, "/api/v1/events", fixed).json()["stored"] == 1

    def test_unknown_step_is_a_422(self, api: ApiClient) -> None:
        start(api)
        body = batch(
            "k", {"external_job_id": "gui-1", "step_seq": 4, "level": "INFO", "message": "x"}
        )
        assert post(api, "/api/v1/events", body).status_code == 422

    def test_nul_and_nan_are_stored_safely(self, api: ApiClient, database_url: str) -> None:
        start(api)
        raw = (
            b'{"batch_key":"k","events":[{"external_job_id":"gui-1","level":"INFO",'
            b'"message":"a\\u0000b","attrs":{"ratio":NaN,"s":"c\\u0000d"}}]}'
        )
        response = api.request(
            "POST",
            "/api/v1/events",
            content=raw,
            headers={**AUTH, "content-type": "application/json"},
        )
        assert response.status_code == 200
        store = Store(database_url)
        try:
            [event] = store.reads.list_events(external_job_id="gui-1")
        finally:
            store.close()
        assert "\x00" not in event.message
        assert event.attrs == {"ratio": "nan", "s": "c\ufffdd"}
