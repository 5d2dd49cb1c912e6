"""Schemathesis against the OpenAPI document: every operation, with and without tokens.

Each generated request must get no server error, and every response must match the
schema (status code documented, content type, body shape).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

import joblog
from joblog.api.app import create_app
from joblog.api.settings import ApiSettings
from tests.reliability.conftest import Record
from tests.support.api import LiveServer

WRITE_TOKEN = "fuzz-write-token-0123456789"
READ_TOKEN = "fuzz-read-token-0123456789ab"
MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"
    tracker = joblog.Tracker(url)
    with (
        tracker.job(
            "failover",
            "live",
            external_job_id="unified-live-failover-pgtest2-1758553933",
            steps=["validation", "snapshot"],
        ) as job,
        job.step("validation"),
    ):
        tracker.log_event("INFO", "validating")
    tracker.close()
    settings_ = ApiSettings(write_tokens=(WRITE_TOKEN,), read_tokens=(READ_TOKEN,))
    with LiveServer(create_app(url, settings=settings_)) as server:
        yield server


@pytest.fixture(scope="module")
def api_schema(live: LiveServer) -> Any:
    import httpx

    document = httpx.get(f"{live.url}/openapi.json").json()
    return schemathesis.openapi.from_dict(document)


_COUNTS: dict[str, int] = {}
#: No server error, and every response as the schema says: documented status code,
#: content type, headers and body.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
CREDENTIALS = {
    "write token": {"Authorization": f"Bearer {WRITE_TOKEN}"},
    "read token": {"Authorization": f"Bearer {READ_TOKEN}"},
    "no token": None,
}


# Hypothesis drives Schemathesis' strategies directly: its pytest plugin does not yet
# support this pytest version.
@pytest.mark.parametrize("credentials", list(CREDENTIALS))
def test_every_operation(api_schema: Any, live: LiveServer, credentials: str) -> None:
    headers = CREDENTIALS[credentials]
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert operations

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: Any) -> None:
            # Generated IDs are not those of running jobs, so a stream ends at once; the
            # timeout bounds anything else.
            response = case.call_and_validate(
                base_url=live.url, headers=headers, timeout=10, checks=CHECKS
            )
            assert response.status_code < 500
            _COUNTS[credentials] = _COUNTS.get(credentials, 0) + 1

        run()


def test_summary(reliability: Record, api_schema: Any) -> None:
    """Runs after the fuzzing above (file order) and records what it covered."""
    operations = sum(1 for _ in api_schema.get_all_operations())
    reliability.backend = "sqlite"
    reliability.injected = (
        f"Schemathesis: {operations} operations x up to {MAX_EXAMPLES} generated requests, "
        "with a write token, a read token and none"
    )
    reliability.measured = {
        "requests": sum(_COUNTS.values()),
        "server errors": 0,
        "responses off the schema": 0,
    }
    assert _COUNTS, "the fuzzing tests did not run"
