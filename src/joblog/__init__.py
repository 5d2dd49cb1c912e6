"""joblog: track jobs and their steps in SQL, and find them by any ID.

>>> tracker = joblog.Tracker("sqlite:///joblog.db")
>>> tracker.install_logging()
>>> with tracker.job("failover", "unified-live-failover", external_job_id="...") as job:
...     with job.step("validation"):
...         logging.getLogger(__name__).info("validating")
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from joblog._loguru import loguru_sink
from joblog.exceptions import (
    ConfigError,
    ExternalIdInUse,
    InvalidTransition,
    JobLogError,
    JobNotFound,
    SchemaError,
    StorageError,
    StorageUnavailable,
)
from joblog.handles import JobCancelled, JobHandle, StepHandle
from joblog.lifecycle import carry, current_job, current_step
from joblog.model import (
    Job,
    JobStatus,
    JobSummary,
    LegacyFailoverJob,
    Level,
    LogEvent,
    PlannedStep,
    Progress,
    ResolvedBy,
    Step,
    StepStatus,
)
from joblog.stdlib import JobLogHandler, structlog_processor
from joblog.writer import WriterStats

__all__ = [
    "ConfigError",
    "ExternalIdInUse",
    "InvalidTransition",
    "Job",
    "JobCancelled",
    "JobHandle",
    "JobLogError",
    "JobLogHandler",
    "JobNotFound",
    "JobStatus",
    "JobSummary",
    "LegacyFailoverJob",
    "Level",
    "LogEvent",
    "PlannedStep",
    "Progress",
    "ResolvedBy",
    "SchemaError",
    "Step",
    "StepHandle",
    "StepStatus",
    "StorageError",
    "StorageUnavailable",
    "Tracker",
    "WriterStats",
    "carry",
    "current_job",
    "current_step",
    "loguru_sink",
    "structlog_processor",
]

__version__ = "0.1.0"

if _TYPE_CHECKING:
    from joblog.tracker import Tracker


_LAZY = ("Tracker",)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def __getattr__(name: str) -> _Any:
    # The Tracker brings SQLAlchemy and the storage layer; loaded on first use, so that
    # ``import joblog.client`` (a producer that only talks HTTP) never loads them.
    if name == "Tracker":
        from joblog.tracker import Tracker

        return Tracker
    raise AttributeError(f"module 'joblog' has no attribute {name!r}")
