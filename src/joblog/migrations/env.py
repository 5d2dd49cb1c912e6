"""Alembic environment for joblog, configured in code rather than by an alembic.ini.

``joblog.storage.migrate`` hands over an open connection in ``config.attributes``
(so that it can hold the migration lock and, on SQLite, the one write transaction
around the whole run). Run standalone, the URL comes from ``sqlalchemy.url``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from sqlalchemy.pool import NullPool

from joblog.storage.schema import metadata

config = context.config


def run_with_connection(connection: sa.Connection) -> None:
    """Run the migrations on ``connection``, one transaction per revision.

    Per-revision transactions suit 0002, whose PostgreSQL index is built CONCURRENTLY
    in an autocommit block that commits whatever preceded it.
    """
    context.configure(
        connection=connection,
        target_metadata=metadata,
        transaction_per_migration=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with_connection(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection given and no sqlalchemy.url set")
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            run_with_connection(connection)
    finally:
        engine.dispose()


def run_offline() -> None:
    """Emit the SQL instead of running it (``alembic upgrade --sql``)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
