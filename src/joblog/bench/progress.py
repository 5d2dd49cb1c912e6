"""Rich progress bars for long runs, or silence (tests, ``--quiet``)."""

from __future__ import annotations

from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["Reporter"]


class Reporter:
    """Progress of the benchmark's phases; ``enabled=False`` draws nothing."""

    def __init__(self, enabled: bool = True) -> None:
        self._progress: Progress | None = None
        if enabled:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )

    def __enter__(self) -> Reporter:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def task(self, description: str, total: float | None) -> TaskID:
        if self._progress is None:
            return TaskID(0)
        return self._progress.add_task(description, total=total)

    def advance(self, task: TaskID, amount: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(task, amount)

    def update(self, task: TaskID, completed: float) -> None:
        if self._progress is not None:
            self._progress.update(task, completed=completed)

    def done(self, task: TaskID) -> None:
        if self._progress is not None:
            total = self._progress.tasks[task].total
            if total is not None:
                self._progress.update(task, completed=total)

    def log(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.log(message)
