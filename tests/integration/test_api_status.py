"""GET /api/v1/jobs/{any_id}: joblog's summary by any ID (the origin GUI's
/api/v1/failover/{job_id}/status has its own contract test: test_api_failover_contract.py)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

import joblog
from joblog._ops import InsertEvents
from joblog.api.app import create_app
from joblog.demo import insert_failover_job
from tests.conftest import BACKENDS
from tests.support.api import ApiClient, api_client, backend_database

EXTERNAL = "unified-live-failover-pgtest2-1758553933"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture(scope="module", params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from backend_database(request, tmp_path_factory)


@pytest.fixture(scope="module")
def tracker(url: str) -> Iterator[joblog.Tracker]:
    """One tracker per backend; each test writes jobs under IDs of its own."""
    tracker = joblog.Tracker(url, flush_interval=0.01, external_id_policy="allow")
    yield tracker
    tracker.close()


@pytest.fixture(scope="module")
def api(url: str, tracker: joblog.Tracker) -> Iterator[ApiClient]:
    with api_client(create_app(url)) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def status_paths(any_id: str) -> list[str]:
    quoted = quote(any_id, safe="/")
    return [f"/api/v1/jobs/{quoted}"]


def insert_legacy(tracker: joblog.Tracker, job_id: str, status: str) -> None:
    insert_failover_job(
        tracker.store,
        job_id=job_id,
        vm_id="vm-4711",
        status=status,
        source_vm_name="pgtest2",
    )


def insert_event(tracker: joblog.Tracker, job_id: str | None, external_id: str) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    row = (job_id, None, external_id, "INFO", "Failover job started", None, now, None, None)
    tracker.store.apply_batch([InsertEvents([row])])


class TestResolutionTiers:
    def test_internal_uuid(self, api: ApiClient, tracker: joblog.Tracker) -> None:
        with tracker.job("failover", "live", external_job_id=EXTERNAL) as job:
            pass
        tracker.flush(30)
        for path in status_paths(job.id):
            body = api.get(path).json()
            assert (body["resolved_by"], body["job"]["id"]) == ("job_id", job.id)

    def test_external_job_id(self, api: ApiClient, tracker: joblog.Tracker) -> None:
        with tracker.job("failover", "live", external_job_id=EXTERNAL) as job:
            pass
        tracker.flush(30)
        for path in status_paths(EXTERNAL):
            body = api.get(path).json()
            assert (body["resolved_by"], body["job"]["id"]) == ("external_job_id", job.id)

    def test_log_events_pointing_at_a_job(self, api: ApiClient, tracker: joblog.Tracker) -> None:
        with tracker.job("failover", "live") as job:
            pass
        tracker.flush(30)
        insert_event(tracker, job.id, "gui-9")
        for path in status_paths("gui-9"):
            body = api.get(path).json()
            assert (body["resolved_by"], body["job"]["id"]) == ("log_events", job.id)

    def test_log_events_only(self, api: ApiClient, tracker: joblog.Tracker) -> None:
        insert_event(tracker, None, "go-producer-7")
        for path in status_paths("go-producer-7"):
            body = api.get(path).json()
            assert body["resolved_by"] == "log_events"
            assert body["job"]["status"] == "unknown"
            assert [e["message"] for e in body["recent_events"]] == ["Failover job started"]

    def test_legacy_failover_jobs(self, api: ApiClient, tracker: joblog.Tracker) -> None:
        insert_legacy(tracker, "failover-legacy-1", "snapshotting")
        for path in status_paths("failover-legacy-1"):
            body = api.get(path).json()
            assert body["resolved_by"] == "failover_jobs"
            assert body["progress"]["percent"] == 25  # the origin's phase map
            assert body["legacy"]["source_vm_name"] == "pgtest2"

    def test_unknown_id_is_404_with_the_id(self, api: ApiClient) -> None:
        for path in status_paths("unified-live-failover-nobody-1"):
            response = api.get(path)
            assert response.status_code == 404
            assert response.json() == {
                "error": "job_not_found",
                "id": "unified-live-failover-nobody-1",
            }


class TestAwkwardIds:
    @pytest.mark.parametrize(
        "any_id",
        [
            "vm/7/failover-1",
            "fail\u00f6ver-\u2603-\U0001f680",
            "x'; DROP TABLE job_tracking; --",
            "%_%",
        ],
    )
    def test_is_a_plain_string(self, api: ApiClient, tracker: joblog.Tracker, any_id: str) -> None:
        with tracker.job("failover", "live", external_job_id=any_id) as job:
            pass
        tracker.flush(30)
        for path in status_paths(any_id):
            assert api.get(path).json()["job"]["id"] == job.id

    def test_sql_wildcards_match_nothing_else(
        self, api: ApiClient, tracker: joblog.Tracker
    ) -> None:
        with tracker.job("failover", "live", external_job_id="abc"):
            pass
        tracker.flush(30)
        assert api.get("/api/v1/jobs/%25").status_code == 404

    def test_longer_than_255_is_404(self, api: ApiClient) -> None:
        response = api.get("/api/v1/jobs/" + "a" * 300)
        assert response.status_code == 404
        assert response.json()["error"] == "job_not_found"

    def test_nul_is_404_not_a_database_error(self, api: ApiClient) -> None:
        for path in status_paths("a\x00b"):
            response = api.get(path.replace("\x00", "%00"))
            assert response.status_code == 404
            # Refused before routing (InputGuard): the path names nothing at all.
            assert response.json()["error"] == "not_found"
            assert response.json()["detail"][0]["loc"] == ["path"]


class TestSummaryBody:
    def test_has_every_documented_key(self, api: ApiClient, tracker: joblog.Tracker) -> None:
        with tracker.job("failover", "live", external_job_id=EXTERNAL):
            pass
        tracker.flush(30)
        body = api.get(f"/api/v1/jobs/{EXTERNAL}").json()
        assert set(body) == {
            "resolved_by",
            "job",
            "steps",
            "progress",
            "elapsed_seconds",
            "eta_seconds",
            "recent_events",
            "children",
            "legacy",
        }
        assert set(body["progress"]) == {
            "percent",
            "planned_steps",
            "completed_steps",
            "failed_steps",
            "running_steps",
            "current_step",
        }

    def test_steps_children_and_events_serialised(
        self, api: ApiClient, tracker: joblog.Tracker
    ) -> None:
        with tracker.job("failover", "live", external_job_id=EXTERNAL, steps=["snap"]) as job:
            with job.step("snap"):
                tracker.log_event("WARN", "slow snapshot", {"vm": "pgtest2"})
                with job.child("cleanup", "rollback"):
                    pass
        tracker.flush(30)
        body = api.get(f"/api/v1/jobs/{EXTERNAL}").json()
        step = body["steps"][0]
        assert step["status"] == "completed"
        assert isinstance(step["id"], str) and int(step["id"])
        assert isinstance(step["duration_seconds"], float)
        assert ISO_Z.match(step["started_at"])
        assert ISO_Z.match(body["job"]["created_at"])
        event = body["recent_events"][-1]
        assert (event["level"], event["message"], event["step_id"]) == (
            "WARN",
            "slow snapshot",
            step["id"],
        )
        assert event["attrs"]["vm"] == "pgtest2"
        assert [child["job_type"] for child in body["children"]] == ["cleanup"]
        assert body["job"]["status"] == "completed"
        assert body["progress"]["percent"] == 100
