"""Shared fixtures: one ``database_url`` parameterised over SQLite, PostgreSQL and MariaDB.

Each test gets a fresh, empty database. A server that cannot be reached makes its tests
skip with the reason on a developer's machine, and fail under ``CI=true``.

The services some tests need beside the servers, a hot standby (``hot_standby``) and
PgBouncer (``pgbouncer``), are started here once per session and stopped at its end
(:mod:`tests.support.services`); the same rule applies when one cannot be started.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get(
    "JOBLOG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_ADMIN_URL = os.environ.get(
    "JOBLOG_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)
BACKENDS = ("sqlite", "postgresql", "mariadb")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

_reachable: dict[str, str | None] = {}


def _unreachable_reason(backend: str, admin_url: str) -> str | None:
    """None when the server answers, else why not (cached per session)."""
    if backend not in _reachable:
        engine = sa.create_engine(admin_url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            _reachable[backend] = None
        except Exception as exc:
            _reachable[backend] = f"{backend} at {engine.url.render_as_string()} unreachable: {exc}"
        finally:
            engine.dispose()
    return _reachable[backend]


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``; under CI=true, fail instead."""
    if IN_CI:
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


def require_backend(backend: str) -> None:
    """Skip (or, under CI=true, fail) when the backend's server cannot be reached."""
    admin = {"postgresql": PG_ADMIN_URL, "mariadb": MYSQL_ADMIN_URL}.get(backend)
    if admin is None:
        return
    reason = _unreachable_reason(backend, admin)
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)


@pytest.fixture
def make_database(tmp_path: Path) -> Iterator[object]:
    """A factory: ``make_database(backend) -> url`` of a new empty database, dropped afterwards."""
    created: list[tuple[str, str, str]] = []

    def make(backend: str) -> str:
        require_backend(backend)
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / f'joblog-{uuid.uuid4().hex[:8]}.db'}"
        name = f"joblog_t_{uuid.uuid4().hex[:12]}"
        admin = PG_ADMIN_URL if backend == "postgresql" else MYSQL_ADMIN_URL
        engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            if backend == "postgresql":
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            else:
                conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        engine.dispose()
        created.append((backend, admin, name))
        return sa.make_url(admin).set(database=name).render_as_string(hide_password=False)

    yield make

    for backend, admin, name in created:
        engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            if backend == "postgresql":
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend's name: sqlite, postgresql or mariadb."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, make_database: object) -> str:
    """The URL of a fresh, empty database on the current backend (no tables yet)."""
    return make_database(backend)  # type: ignore[operator]


@pytest.fixture(scope="session")
def hot_standby() -> Iterator[object]:
    """A PostgreSQL primary and its streaming hot standby of this session's own."""
    from tests.support.services import HotStandbyPair, ServiceUnavailable

    try:
        pair = HotStandbyPair().__enter__()
    except ServiceUnavailable as error:
        skip_or_fail(f"no hot standby: {error}")
    try:
        yield pair
    finally:
        pair.stop()


@pytest.fixture(scope="session")
def pgbouncer() -> Iterator[object]:
    """PgBouncer (transaction pooling) in front of the test PostgreSQL server."""
    from tests.support.services import PgBouncer, ServiceUnavailable

    require_backend("postgresql")
    admin = sa.make_url(PG_ADMIN_URL)
    try:
        bouncer = PgBouncer((admin.host or "127.0.0.1", admin.port or 5432)).__enter__()
    except ServiceUnavailable as error:
        skip_or_fail(f"no PgBouncer: {error}")
    try:
        yield bouncer
    finally:
        bouncer.stop()
