"""Constants more than one layer needs, each written once."""

from __future__ import annotations

__all__ = ["DEFAULT_URL", "MAX_BIGINT", "MAX_ID_LENGTH"]

#: The database when none is given: a SQLite file in the working directory.
DEFAULT_URL = "sqlite:///joblog.db"

#: No resolution tier holds a longer ID (the ID columns are VARCHAR(255) at most).
MAX_ID_LENGTH = 255

#: The largest value of a BIGINT column (event and step IDs, cursors).
MAX_BIGINT = 2**63 - 1
