"""IDs and timestamps joblog makes itself, without a round trip."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

__all__ = ["new_step_id", "utcnow"]


def new_step_id() -> int:
    """A BIGINT step ID made without a round trip: milliseconds, then 21 random bits.

    Time-ordered, so the primary-key index grows at its end; two IDs collide only if made
    in the same millisecond with the same 21 random bits.
    """
    return (time.time_ns() // 1_000_000) << 21 | secrets.randbits(21)


def utcnow() -> datetime:
    """Naive UTC now, the form every timestamp column holds."""
    return datetime.now(UTC).replace(tzinfo=None)
