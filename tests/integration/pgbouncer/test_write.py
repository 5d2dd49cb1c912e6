"""tests/integration/test_api_write.py through PgBouncer (a fresh database per test)."""

from tests.integration.test_api_write import (  # noqa: F401 - fixtures, found by name
    TestEvents,
    TestStartJob,
    TestSteps,
    TestUpdateJob,
    api,
)
