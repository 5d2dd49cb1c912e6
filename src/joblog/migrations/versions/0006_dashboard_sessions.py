"""dashboard_sessions: the dashboard's sign-ins, kept server-side so that signing out
ends a session in every server process (a signed cookie alone cannot be revoked).

A new, empty table: nothing the platform owns is touched, and no row is copied.

Revision ID: 0006_dashboard_sessions
Revises: 0005_event_lookups
Create Date: 2026-12-10
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0006_dashboard_sessions"
down_revision: str | None = "0005_event_lookups"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

TABLE = "dashboard_sessions"
EXPIRES = "idx_dashboard_sessions_expires_at"


def timestamp() -> sa.types.TypeEngine[Any]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    again = _tolerant()
    op.create_table(
        TABLE,
        sa.Column("session_hash", sa.String(64), nullable=False),
        sa.Column("token_fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", timestamp(), nullable=False),
        sa.Column("expires_at", timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("session_hash", name="pk_dashboard_sessions"),
        if_not_exists=again,
    )
    op.create_index(EXPIRES, TABLE, ["expires_at"], if_not_exists=again)


def downgrade() -> None:
    again = _tolerant()
    op.drop_index(EXPIRES, table_name=TABLE, if_exists=again)
    op.drop_table(TABLE, if_exists=again)


def _tolerant() -> bool | None:
    """IF [NOT] EXISTS where the backend has it: MariaDB commits each DDL statement, so a
    run stopped half-way may be run again (SQLite runs the upgrade in one transaction)."""
    return True if op.get_context().dialect.name != "sqlite" else None
