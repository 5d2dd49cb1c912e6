from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import joblog


@pytest.fixture
def tracker(database_url: str) -> Iterator[joblog.Tracker]:
    """A tracker on a fresh database, its handler on the root logger."""
    tracker = joblog.Tracker(database_url, flush_interval=0.05)
    tracker.install_logging()
    yield tracker
    tracker.close()


@pytest.fixture
def log() -> logging.Logger:
    logger = logging.getLogger("app.failover")
    logger.setLevel(logging.DEBUG)
    return logger
