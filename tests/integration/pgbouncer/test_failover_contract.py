"""tests/integration/test_api_failover_contract.py through PgBouncer."""

from tests.integration.test_api_failover_contract import (  # noqa: F401 - fixtures, by name
    TestJoblogJobs,
    TestLegacyRows,
    TestNotFound,
    api,
    tracker,
)
