"""The seed's change: log_events.external_job_id, indexed, added online.

The GUI holds a constructed ID (``unified-live-failover-pgtest2-1758553933``), not
joblog's UUID; this column makes that ID a direct indexed lookup instead of a search
through JSON attrs. Existing rows stay NULL (``joblog db backfill`` fills them).

Online where the engine allows, because log_events is the big, busy table:
MariaDB uses ALGORITHM=INPLACE, LOCK=NONE (and refuses rather than silently locking);
PostgreSQL adds the nullable column as a catalog-only change and builds the index
CONCURRENTLY. The MariaDB and PostgreSQL steps use IF [NOT] EXISTS because neither
runs in one transaction here: a run interrupted half-way can simply be run again.

Revision ID: 0002_external_job_id
Revises: 0001_base
Create Date: 2025-09-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002_external_job_id"
down_revision: str | None = "0001_base"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

INDEX = "idx_log_events_external_job_id"


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect in ("mysql", "mariadb"):
        op.execute(
            "ALTER TABLE log_events ADD COLUMN IF NOT EXISTS external_job_id VARCHAR(255) NULL,"
            " ALGORITHM=INPLACE, LOCK=NONE"
        )
        op.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON log_events (external_job_id)"
            " ALGORITHM=INPLACE LOCK=NONE"
        )
    elif dialect == "postgresql":
        op.execute("ALTER TABLE log_events ADD COLUMN IF NOT EXISTS external_job_id VARCHAR(255)")
        with op.get_context().autocommit_block():
            # A failed CONCURRENTLY build leaves an INVALID index behind; drop it first.
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
            op.execute(f"CREATE INDEX CONCURRENTLY {INDEX} ON log_events (external_job_id)")
    else:
        op.add_column("log_events", sa.Column("external_job_id", sa.String(255), nullable=True))
        op.create_index(INDEX, "log_events", ["external_job_id"])


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect in ("mysql", "mariadb"):
        # DROP INDEX takes no ALGORITHM/LOCK clause on MariaDB; ALTER TABLE does both.
        op.execute(
            f"ALTER TABLE log_events DROP INDEX IF EXISTS {INDEX},"
            " DROP COLUMN IF EXISTS external_job_id, ALGORITHM=INPLACE, LOCK=NONE"
        )
    elif dialect == "postgresql":
        with op.get_context().autocommit_block():
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
        op.execute("ALTER TABLE log_events DROP COLUMN IF EXISTS external_job_id")
    else:
        # SQLite (3.35+) drops a column in place once no index refers to it.
        op.drop_index(INDEX, table_name="log_events")
        op.drop_column("log_events", "external_job_id")
