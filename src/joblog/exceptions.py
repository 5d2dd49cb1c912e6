"""joblog's exceptions.

Every error joblog raises on purpose derives from one root::

    JobLogError
     +-- ConfigError            a bad URL, setting or argument (also a ValueError)
     +-- JobNotFound            no tier of resolution knows the ID
     +-- ExternalIdInUse        a running job already holds the external ID
     +-- InvalidTransition      e.g. finishing a step that already ended
     +-- JobCancelled           raised inside a job to cancel it (or by raise_if_cancel_requested)
     +-- RemoteError            a joblog server refused a client's request
     +-- StorageError           the database failed; the driver error is the __cause__
          +-- StorageUnavailable   it could not be reached, or the link broke (transient)
          +-- Conflict             a unique constraint refused the row
          +-- DataRejected         the database refused a value (type, size, encoding, key)
          +-- SchemaError          its schema is not one joblog can use or adopt

Each class's docstring is its default message. Driver errors become these at one place,
:func:`joblog.storage.engine.translate`; nothing raw from a driver passes it. A
:class:`StorageError` says whether retrying the same work later may succeed
(``transient``), which is the only thing the batch writer needs to know.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "Conflict",
    "DataRejected",
    "ExternalIdInUse",
    "InvalidTransition",
    "JobCancelled",
    "JobLogError",
    "JobNotFound",
    "RemoteError",
    "SchemaError",
    "StorageError",
    "StorageUnavailable",
]


class JobLogError(Exception):
    """joblog failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(JobLogError, ValueError):
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


class JobCancelled(JobLogError):
    """The job was cancelled."""


class RemoteError(JobLogError):
    """The joblog server refused the request."""

    def __init__(self, status_code: int, body: Any, message: str | None = None) -> None:
        self.status_code = status_code
        self.body = body
        super().__init__(message or f"joblog server answered {status_code}: {body}")


class StorageError(JobLogError):
    """The database operation failed."""

    #: True when the same work may succeed if tried again later (a lock timeout, a
    #: deadlock, a server restarting); the batch writer retries those and nothing else.
    transient: bool = False

    def __init__(self, message: str | None = None, *, transient: bool | None = None) -> None:
        super().__init__(message)
        if transient is not None:
            self.transient = transient


class StorageUnavailable(StorageError):
    """The database cannot be reached."""

    transient = True


class Conflict(StorageError):
    """A unique constraint refused the row."""


class DataRejected(StorageError):
    """The database refused a value."""


class SchemaError(StorageError):
    """The database schema is not one joblog can use."""
