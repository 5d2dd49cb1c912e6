"""``joblog logs``'s printing and ``--follow``: a job's events as plain lines or NDJSON.

:class:`Follower` consumes the job's stream (the events of :mod:`joblog.api.stream`,
whichever :mod:`joblog.cli.sources` path they came by). On the first ``snapshot`` it
prints the newest ``--limit`` matching events up to the snapshot's log tail, then every
``log`` event after it that matches, each once (a resumed connection never repeats a
line); step changes and the job's end go to stderr, and ``end`` gives the exit status.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import click
from rich.text import Text

from joblog.api.serialize import event_from_dict, event_to_dict
from joblog.cli.common import escaped, plain, terminal
from joblog.cli.sources import JobSource
from joblog.cli.sse import SseEvent, StreamGarbage
from joblog.model import LogEvent
from joblog.storage.queries import EventFilter

__all__ = [
    "EXIT_CODES",
    "EXIT_INTERRUPTED",
    "EXIT_TROUBLE",
    "Follower",
    "LogPrinter",
    "StepSelection",
]

#: ``joblog logs --follow``'s exit status: the job's end ...
EXIT_CODES = {"completed": 0, "failed": 1, "cancelled": 2}
#: ... or the follow's own trouble (an unknown ID, no server, a bad option), or Ctrl-C.
EXIT_TROUBLE = 3
EXIT_INTERRUPTED = 130

_LEVEL_STYLE = {"DEBUG": "dim", "INFO": "", "WARN": "yellow", "ERROR": "bold red"}
#: ``12:00:00.000000 ERROR `` : continuation lines of a message are indented this far,
#: so a newline in a message can never pass for a line of its own.
_INDENT = "\n" + " " * 22
#: Lines written to a pipe at once.
_CHUNK = 1000


class LogPrinter:
    """Events as plain lines (markup and control characters shown as text), or as NDJSON
    (the API's event object, ASCII-only so no byte of it acts on a terminal)."""

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        self.console = terminal()

    def print(self, events: Iterable[LogEvent]) -> None:
        events = list(events)
        if not events:
            return
        if self.as_json or not self.console.is_terminal:
            # A pipe or a file gets no styles: write the lines at once (Rich renders each
            # line through its whole pipeline, several times slower for a long log).
            for start in range(0, len(events), _CHUNK):
                chunk = events[start : start + _CHUNK]
                if self.as_json:
                    lines = [json.dumps(event_to_dict(e), ensure_ascii=True) for e in chunk]
                else:
                    lines = [_line(event) for event in chunk]
                sys.stdout.write("\n".join(lines) + "\n")
                sys.stdout.flush()
            return
        styled = [
            Text(_line(event), style=_LEVEL_STYLE.get(event.level.value, "")) for event in events
        ]
        self.console.print(Text("\n").join(styled), soft_wrap=True)


def _line(event: LogEvent) -> str:
    """``12:00:00.000000 ERROR message``, the message escaped and its continuation lines
    indented."""
    message = escaped(event.message).replace("\n", _INDENT)
    return f"{event.ts:%H:%M:%S.%f} {event.level.value:<5} {message}"


@dataclass(frozen=True, slots=True)
class StepSelection:
    """``--step``: steps by name or by number (``seq``)."""

    values: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.values)

    def picks(self, step: dict[str, Any]) -> bool:
        seq = step.get("seq")
        return step.get("name") in self.values or (seq is not None and str(seq) in self.values)

    def step_ids(self, steps: Iterable[dict[str, Any]]) -> tuple[int, ...]:
        """The stored steps picked (declared steps not started yet have no ID)."""
        picked = {_step_id(step) for step in steps if self.picks(step)}
        return tuple(sorted(step_id for step_id in picked if step_id is not None))

    def check(self, steps: Sequence[dict[str, Any]]) -> None:
        """A usage error naming the values that no step of the job (stored or declared)
        has as its name or number."""
        unknown = [
            value
            for value in self.values
            if not any(step.get("name") == value or str(step.get("seq")) == value for step in steps)
        ]
        if unknown:
            known = ", ".join(escaped(step.get("name")) for step in steps) or "none"
            raise click.BadParameter(
                f"the job has no step {', '.join(repr(escaped(v)) for v in unknown)}"
                f" (its steps: {known})",
                param_hint="--step",
            )


def _step_id(step: dict[str, Any]) -> int | None:
    """A step's row ID (a string in the API: a 63-bit integer); None for a declared step."""
    value = step.get("id")
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StreamGarbage(f"a step whose ID is not a number: {value!r}") from None


def steps_of(summary: dict[str, Any]) -> list[dict[str, Any]]:
    steps = summary.get("steps")
    if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
        raise StreamGarbage("a job summary without a list of steps")
    return steps


class Follower:
    """The handler of one ``--follow``: returns the exit status at the job's end."""

    def __init__(
        self,
        source: JobSource,
        printer: LogPrinter,
        filters: EventFilter,
        selection: StepSelection,
        limit: int,
    ) -> None:
        self.source = source
        self.printer = printer
        self.selection = selection
        self.limit = limit
        self.notes = terminal(stderr=True)
        self.job_id = ""
        #: The newest log event handled: nothing at or below it is printed again.
        self.after = 0
        self._base = filters
        self._filters = filters
        self._steps: dict[str, dict[str, Any]] = {}
        self._step_ids: set[int] = set()
        self._looked_up: set[int] = set()
        self._started = False

    def __call__(self, event: SseEvent) -> int | None:
        if event.event == "snapshot":
            self._snapshot(_object(event))
        elif event.event == "log":
            try:
                line = event_from_dict(_object(event))
            except ValueError as error:
                raise StreamGarbage(f"a log event that is not one: {error}") from None
            if line.id > self.after:
                self.after = line.id
                if self._wanted(line):
                    self.printer.print([line])
        elif event.event == "step":
            self._step(_object(event), announce=True)
        elif event.event == "end":
            data = _object(event)
            status = str(data.get("status"))
            reason = data.get("error_message")
            self._note(f"job {self.job_id} {status}" + (f": {reason}" if reason else ""))
            return EXIT_CODES.get(status, EXIT_TROUBLE)
        return None

    def _snapshot(self, summary: dict[str, Any]) -> None:
        steps = steps_of(summary)
        for step in steps:
            self._step(step, announce=False)
        if self._started:  # a server that sends a snapshot on a resume: state only
            return
        self._started = True
        job = summary.get("job")
        recent = summary.get("recent_events")
        if not isinstance(job, dict) or not isinstance(recent, list):
            raise StreamGarbage("a snapshot that is not a job summary")
        self.job_id = str(job.get("id"))
        if self.selection:
            self.selection.check(steps)
        try:
            tail = max((int(event["id"]) for event in recent), default=0)
        except (TypeError, KeyError, ValueError):
            raise StreamGarbage("a snapshot whose recent events have no IDs") from None
        if self.limit > 0 and (not self.selection or self._filters.step_ids):
            self.printer.print(self.source.newest_events(self._filters, tail + 1, self.limit))
        self.after = tail
        self._note(
            f"following job {self.job_id} ({job.get('status')}, {job.get('percent_complete')}%);"
            " Ctrl-C stops"
        )

    def _step(self, step: dict[str, Any], *, announce: bool) -> None:
        key = str(step.get("id") or f"seq:{step.get('seq')}")
        before = self._steps.get(key)
        self._steps[key] = step
        step_id = _step_id(step)
        if step_id is not None:
            self._step_ids.add(step_id)
        if self.selection and step_id is not None and self.selection.picks(step):
            ids = self.selection.step_ids(self._steps.values())
            self._filters = replace(self._base, step_ids=ids)
        if announce and (before is None or before.get("status") != step.get("status")):
            self._note(f"step {step.get('seq')} {step.get('name')}: {step.get('status')}")

    def _wanted(self, line: LogEvent) -> bool:
        if self.selection:
            if line.step_id is None:
                return False
            if line.step_id not in self._step_ids and line.step_id not in self._looked_up:
                # The line came in the same round as its step's row, read just after the
                # round's state: learn the step now rather than drop the line.
                self._looked_up.add(line.step_id)
                for step in steps_of(self.source.summary()):
                    self._step(step, announce=True)
            if not self._filters.step_ids:
                return False  # none of the chosen steps has started: none of their lines yet
        return self._filters.matches(line)

    def _note(self, message: str) -> None:
        self.notes.print(plain(f"-- {message}", "dim"), soft_wrap=True)


def _object(event: SseEvent) -> dict[str, Any]:
    try:
        data = json.loads(event.data)
    except ValueError:
        raise StreamGarbage(f"a {event.event!r} event whose data is not JSON") from None
    if not isinstance(data, dict):
        raise StreamGarbage(f"a {event.event!r} event whose data is not an object")
    return data
