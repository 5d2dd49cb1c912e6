"""The origin GUI's contract: ``GET /api/v1/failover/{job_id}/status``.

The platform's Next.js GUI polls this path and reads the Go handler's
``JobStatusResponse``. :func:`gui_progress` reads a body exactly as the GUI's progress
proxy does; with the wrong shape it shows "status unknown, NaN%, 0/0 steps, Unknown VM"
and polls forever, which is what these tests rule out, on every backend.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pytest

import joblog
from joblog.api.app import create_app
from joblog.demo import insert_failover_job
from tests.conftest import BACKENDS
from tests.support.api import ApiClient, api_client, backend_database

TERMINAL = {"completed", "failed", "cancelled"}
RESPONSE_KEYS = {"success", "message", "job_id", "status", "progress", "start_time"}
JOBLOG_DETAILS = {
    "job_type",
    "operation",
    "context_id",
    "external_job_id",
    "job_category",
    "total_steps",
    "completed_steps",
    "failed_steps",
    "running_steps",
    "step_completion",
    "error_message",
    "metadata",
    "tracking_source",
    "gui_job_id",
    "internal_job_id",
}
LEGACY_DETAILS = {
    "vm_id",
    "vm_name",
    "job_type",
    "destination_vm_id",
    "error_message",
    "started_at",
    "completed_at",
    "tracking_source",
}


def gui_progress(body: dict[str, Any]) -> dict[str, Any]:
    """What the GUI's progress proxy takes from a body (its fallbacks included)."""
    details = body.get("job_details") or {}
    metadata = details.get("metadata") or {}
    percent = float(body.get("progress", math.nan))
    return {
        "status": body.get("status") or "unknown",
        "percent": percent,
        "steps": f"{details.get('completed_steps', 0)}/{details.get('total_steps', 0)}",
        "vm_name": metadata.get("vm_name") or "Unknown VM",
        "failover_type": metadata.get("failover_type"),
        "keeps_polling": body.get("status") not in TERMINAL,
    }


def assert_go_shaped(body: dict[str, Any]) -> None:
    assert set(body) >= RESPONSE_KEYS
    assert body["success"] is True
    assert isinstance(body["duration"], int) and body["duration"] >= 0  # time.Duration, ns
    datetime.fromisoformat(body["start_time"].replace("Z", "+00:00"))  # RFC 3339


@pytest.fixture(scope="module", params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from backend_database(request, tmp_path_factory)


@pytest.fixture(scope="module")
def tracker(url: str) -> Iterator[joblog.Tracker]:
    tracker = joblog.Tracker(url, flush_interval=0.01, external_id_policy="allow")
    yield tracker
    tracker.close()


@pytest.fixture(scope="module")
def api(url: str, tracker: joblog.Tracker) -> Iterator[ApiClient]:
    with api_client(create_app(url)) as client:
        yield client


def status(api: ApiClient, any_id: str) -> tuple[int, dict[str, Any]]:
    response = api.get(f"/api/v1/failover/{quote(any_id, safe='')}/status")
    return response.status_code, response.json()


def failover_ids() -> tuple[str, str, str]:
    n = uuid.uuid4().hex[:8]
    vm = f"pgtest{n}"
    return vm, f"unified-live-failover-{vm}-1758553933", f"ctx-{vm}-20250909-114231"


PLAN = ["validation", "snapshot", "vm-creation", "volume-switch", "power-on"]


class TestJoblogJobs:
    def test_running_job_by_external_id(self, api: ApiClient, tracker: joblog.Tracker) -> None:
        vm, external, context = failover_ids()
        job = tracker.start_job(
            "failover",
            "unified-live-failover",
            external_job_id=external,
            context_id=context,
            steps=PLAN,
            metadata={"vm_name": vm, "failover_type": "live"},
        )
        try:
            for name in PLAN[:2]:
                job.start_step(name).complete()
            job.start_step(PLAN[2])
            tracker.flush(30)
            code, body = status(api, external)
            assert code == 200
            assert_go_shaped(body)
            assert gui_progress(body) == {
                "status": "running",
                "percent": 40.0,
                "steps": "2/5",
                "vm_name": vm,
                "failover_type": "live",
                "keeps_polling": True,
            }
            details = body["job_details"]
            assert set(details) >= JOBLOG_DETAILS
            assert body["job_id"] == details["internal_job_id"] == job.id
            assert details["tracking_source"] == "external_job_id_correlation"
            assert details["gui_job_id"] == external
            assert (details["running_steps"], details["current_step"]) == (1, "vm-creation")
            assert details["job_category"] == "failover"
            assert "error" not in body
        finally:
            job.complete()

    def test_completed_job_stops_the_polling(self, api: ApiClient, tracker: joblog.Tracker) -> None:
        vm, external, _context = failover_ids()
        metadata = {"vm_name": vm, "failover_type": "test"}
        with tracker.job("failover", "live", external_job_id=external, metadata=metadata) as job:
            for name in PLAN:
                with job.step(name):
                    pass
        tracker.flush(30)
        code, body = status(api, external)
        assert code == 200
        assert gui_progress(body) == {
            "status": "completed",
            "percent": 100.0,
            "steps": "5/5",
            "vm_name": vm,
            "failover_type": "test",
            "keeps_polling": False,
        }
        assert body["job_details"]["step_completion"] == 100.0

    def test_failed_job_carries_the_error(self, api: ApiClient, tracker: joblog.Tracker) -> None:
        _vm, external, _context = failover_ids()
        with (
            pytest.raises(RuntimeError),
            tracker.job("failover", "live", external_job_id=external, steps=PLAN) as job,
            job.step("validation"),
        ):
            raise RuntimeError("hypervisor refused")
        tracker.flush(30)
        _code, body = status(api, external)
        assert body["status"] == "failed" and not gui_progress(body)["keeps_polling"]
        assert "hypervisor refused" in body["error"]
        assert body["job_details"]["failed_steps"] == 1

    def test_by_uuid(self, api: ApiClient, tracker: joblog.Tracker) -> None:
        vm, external, _context = failover_ids()
        metadata = {"vm_name": vm, "failover_type": "live"}
        with tracker.job("failover", "live", external_job_id=external, metadata=metadata) as job:
            pass
        tracker.flush(30)
        _code, body = status(api, job.id)
        assert body["job_id"] == job.id
        assert body["job_details"]["tracking_source"] == "direct_joblog_uuid"
        assert gui_progress(body)["vm_name"] == vm

    def test_by_context_id_the_newest_job_of_the_context(
        self, api: ApiClient, tracker: joblog.Tracker
    ) -> None:
        vm, external, context = failover_ids()
        metadata = {"vm_name": vm, "failover_type": "live"}
        with tracker.job("failover", "live", context_id=context, metadata=metadata):
            pass
        with tracker.job(
            "failover", "live", external_job_id=external, context_id=context, metadata=metadata
        ) as newest:
            pass
        tracker.flush(30)
        code, body = status(api, context)
        assert code == 200
        assert body["job_id"] == newest.id
        assert body["job_details"]["tracking_source"] == "context_id"
        assert body["job_details"]["context_id"] == context
        # joblog's own endpoint resolves the same way.
        mine = api.get(f"/api/v1/jobs/{context}").json()
        assert (mine["resolved_by"], mine["job"]["id"]) == ("context_id", newest.id)


class TestLegacyRows:
    @pytest.mark.parametrize(
        ("phase", "percent"),
        [
            ("pending", 0),
            ("validating", 10),
            ("snapshotting", 25),
            ("creating_vm", 50),
            ("switching_volume", 75),
            ("powering_on", 90),
            ("completed", 100),
            ("failed", 0),
            ("cleanup", 100),
            ("reverting", 50),
        ],
    )
    def test_phase_and_the_origins_percent(
        self, api: ApiClient, tracker: joblog.Tracker, phase: str, percent: int
    ) -> None:
        job_id = f"failover-{uuid.uuid4().hex[:10]}"
        insert_failover_job(
            tracker.store,
            job_id=job_id,
            vm_id="vm-4711",
            job_type="test",
            status=phase,
            source_vm_name="pgtest2",
            error_message="snapshot timed out" if phase == "failed" else None,
        )
        code, body = status(api, job_id)
        assert code == 200
        assert_go_shaped(body)
        assert body["job_id"] == job_id
        assert body["status"] == phase  # the raw phase
        assert body["progress"] == percent
        details = body["job_details"]
        assert set(details) >= LEGACY_DETAILS
        assert (details["vm_id"], details["vm_name"], details["job_type"]) == (
            "vm-4711",
            "pgtest2",
            "test",
        )
        assert details["tracking_source"] == "legacy_failover_jobs"
        assert gui_progress(body)["vm_name"] == "pgtest2"
        assert ("error" in body) == (phase == "failed")


class TestNotFound:
    @pytest.mark.parametrize(
        "any_id",
        ["unified-live-failover-nobody-1", "a\x00b", "x" * 300, "vm/7/failover-1", "%_%"],
    )
    def test_404_in_the_origins_shape(self, api: ApiClient, any_id: str) -> None:
        code, body = status(api, any_id)
        assert code == 404
        assert body == {
            "success": False,
            "message": "Failover job not found",
            "error": f"failover job not found: {any_id}",
        }


def test_openapi_documents_both_shapes_with_examples(api: ApiClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    failover = paths["/api/v1/failover/{job_id}/status"]["get"]["responses"]
    assert set(failover["200"]["content"]["application/json"]["examples"]) == {
        "joblog job",
        "legacy row",
    }
    assert "404" in failover
    assert "/api/v1/jobs/{any_id}" in paths
