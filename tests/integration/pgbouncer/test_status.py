"""tests/integration/test_api_status.py through PgBouncer."""

from tests.integration.test_api_status import (  # noqa: F401 - fixtures, found by name
    TestAwkwardIds,
    TestResolutionTiers,
    TestSummaryBody,
    api,
    tracker,
)
