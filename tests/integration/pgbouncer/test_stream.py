"""tests/integration/test_api_stream.py through PgBouncer; the server's LISTEN goes to the
direct URL (a transaction pooler would hand its session to other clients)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from joblog.api.app import create_app
from joblog.api.settings import ApiSettings
from tests.integration.test_api_stream import (  # noqa: F401 - fixtures, found by name
    TestFinishedJobs,
    TestFollowingAJob,
    TestQuietJobs,
    TestStreamErrors,
    external_id,
    http,
    producer,
    tracker,
)
from tests.support.api import LiveServer


@pytest.fixture(scope="module")
def server(bounced: tuple[str, str]) -> Iterator[LiveServer]:
    pooled, direct = bounced
    app = create_app(pooled, settings=ApiSettings(poll_interval=0.05, direct_url=direct))
    with LiveServer(app) as live:
        yield live
