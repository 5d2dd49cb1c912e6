"""The current job and step, carried by a ContextVar.

asyncio tasks inherit the context they were created in, so a task started inside a job
logs into that job. Threads do not inherit it: wrap the callable with :func:`carry`
(``executor.submit(joblog.carry(fn), ...)``) or enter ``job.activate()`` in the thread.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from joblog.handles import JobHandle, StepHandle

__all__ = ["Frame", "carry", "current_frame", "current_job", "current_step"]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Frame:
    """What the logging handler needs, precomputed: (job_id, step_id, external_job_id)."""

    job: JobHandle
    step: StepHandle | None
    ids: tuple[str, int | None, str | None]


_current: ContextVar[Frame | None] = ContextVar("joblog_current", default=None)
current_frame = _current.get


def current_job() -> JobHandle | None:
    """The job running in this context, if any."""
    frame = _current.get()
    return frame.job if frame is not None else None


def current_step() -> StepHandle | None:
    """The step running in this context, if any."""
    frame = _current.get()
    return frame.step if frame is not None else None


def carry(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``fn`` so that it runs in the job and step current *now*, on any thread."""
    frame = _current.get()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _current.set(frame)
        try:
            return fn(*args, **kwargs)
        finally:
            _current.reset(token)

    return run


def enter(frame: Frame | None) -> object:
    return _current.set(frame)


def leave(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
