"""The API test modules, run again with joblog behind a real PgBouncer (transaction pooling).

Each module here imports the test classes that touch the database (and the fixtures they
need) of one API test module, and provides its database fixture instead: a fresh
PostgreSQL database, migrated over the direct URL (as ``joblog db upgrade`` against the
primary would), reached by the tests through the session's PgBouncer (``pgbouncer`` in
tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from joblog.storage import migrate
from tests.support.api import temporary_database
from tests.support.services import PgBouncer


def pooled(bouncer: PgBouncer, direct: str) -> str:
    """The URL of ``direct``'s database through PgBouncer, prepared statements off."""
    return bouncer.url(str(sa.make_url(direct).database)) + "?prepare_threshold=none"


@pytest.fixture(scope="module")
def bounced(
    pgbouncer: PgBouncer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(URL through PgBouncer, direct URL) of a database this module shares."""
    with temporary_database("postgresql", tmp_path_factory.mktemp("db")) as direct:
        migrate.upgrade(direct)
        yield pooled(pgbouncer, direct), direct


@pytest.fixture(scope="module")
def url(bounced: tuple[str, str]) -> str:
    return bounced[0]


@pytest.fixture
def database_url(pgbouncer: PgBouncer, tmp_path: Path) -> Iterator[str]:
    """A fresh migrated database per test, through PgBouncer."""
    with temporary_database("postgresql", tmp_path) as direct:
        migrate.upgrade(direct)
        yield pooled(pgbouncer, direct)
