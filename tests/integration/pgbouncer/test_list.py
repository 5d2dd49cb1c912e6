"""tests/integration/test_api_list.py through PgBouncer."""

from tests.integration.test_api_list import (  # noqa: F401 - fixtures, found by name
    TestListing,
    api,
    jobs,
)
