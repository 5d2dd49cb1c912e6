"""tests/integration/test_api_logs.py through PgBouncer."""

from tests.integration.test_api_logs import (  # noqa: F401 - fixtures, found by name
    TestFilters,
    TestNdjson,
    TestPagination,
    api,
    job,
)
