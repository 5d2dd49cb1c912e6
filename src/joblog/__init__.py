"""joblog: track jobs and their steps in SQL, and find them by any ID.

>>> tracker = joblog.Tracker("sqlite:///joblog.db")
>>> tracker.install_logging()
>>> with tracker.job("failover", "unified-live-failover", external_job_id="...") as job:
...     with job.step("validation"):
...         logging.getLogger(__name__).info("validating")
"""

from __future__ import annotations

from joblog.context import carry, current_job, current_step
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
from joblog.tracker import Tracker
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
    "structlog_processor",
]

__version__ = "0.1.0"
