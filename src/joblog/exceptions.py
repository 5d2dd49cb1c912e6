"""joblog's exceptions.

Every error joblog raises on purpose derives from one root::

    JobLogError
     +-- ConfigError            a bad URL, setting or argument
     +-- JobNotFound            no tier of resolution knows the ID
     +-- ExternalIdInUse        a running job already holds the external ID
     +-- InvalidTransition      e.g. finishing a step that already ended
     +-- StorageError           the database failed; the driver error is the __cause__
          +-- StorageUnavailable   it could not be reached at all
          +-- SchemaError          its schema is not one joblog can use or adopt

Each class's docstring is its default message.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ExternalIdInUse",
    "InvalidTransition",
    "JobLogError",
    "JobNotFound",
    "SchemaError",
    "StorageError",
    "StorageUnavailable",
]


class JobLogError(Exception):
    """joblog failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(JobLogError):
    """The configuration is not valid."""


class JobNotFound(JobLogError):
    """No job is known by that ID."""

    def __init__(self, job_id: str, message: str | None = None) -> None:
        self.job_id = job_id
        super().__init__(message or f"no job is known by the ID {job_id!r}")


class ExternalIdInUse(JobLogError):
    """A running job already uses that external job ID."""

    def __init__(self, external_job_id: str, running_job_id: str) -> None:
        self.external_job_id = external_job_id
        self.running_job_id = running_job_id
        super().__init__(
            f"external job ID {external_job_id!r} is held by running job {running_job_id}"
        )


class InvalidTransition(JobLogError):
    """That state change is not allowed."""


class StorageError(JobLogError):
    """The database operation failed."""


class StorageUnavailable(StorageError):
    """The database cannot be reached."""


class SchemaError(StorageError):
    """The database schema is not one joblog can use."""
