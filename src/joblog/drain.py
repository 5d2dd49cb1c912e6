"""Ship what a journal or a dead-letter file holds: the work of ``joblog drain``.

Both hold records of one format (:mod:`joblog.journal`). A journal is shipped in order,
batch by batch, each under its journal key, with the journal's cursor moved past it once
the sink stored it (exactly as the writer of the process that wrote it would have); a
dead-letter file line by line, each under a key made from the line. So draining twice, or
after a Tracker or Client shipped part, stores each record once.

A sink is a :class:`~joblog.storage.store.Store` or the client's
:class:`~joblog.client.http.EventSink`: ``apply_batch(ops, key)`` is False when the key
was stored before. What it refuses for good is kept in a dead-letter file (journals) or
left where it is (dead-letter files), and counted; an outage stops the drain, with
everything not shipped left in place for the next one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from joblog._ops import InsertEvents, Op, Sink, one_by_one
from joblog.dead_letter import DeadLetter, line_key
from joblog.exceptions import StorageError
from joblog.journal import Journal, decode_line

__all__ = ["DrainReport", "drain_file", "drain_journal"]

#: Events a batch read from a journal may hold (the writer's ``max_batch``).
MAX_BATCH = 50_000
_MAX_PROBLEMS = 20


@dataclass
class DrainReport:
    """What one drain of one journal or file did."""

    source: Path
    events: int = 0  # events stored by this drain
    batches: int = 0  # batches (dead-letter lines) stored by this drain
    duplicates: int = 0  # batches the database already had: not stored again
    corrupt: int = 0  # records skipped: cut short, not UTF-8, not JSON, not a record
    refused: int = 0  # ops the database refused for good
    stopped: str | None = None  # the error that stopped the drain (an outage)
    kept_in: Path | None = None  # where the refused ops of a journal went
    problems: list[str] = field(default_factory=list)

    def note(self, problem: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(problem)

    def summary(self) -> str:
        return (
            f"shipped {self.events} event(s) in {self.batches} batch(es), "
            f"already stored {self.duplicates}, corrupt lines skipped {self.corrupt}, "
            f"refused {self.refused}"
        )


def drain_journal(
    directory: Path,
    sink: Sink,
    dead_letter: DeadLetter,
    *,
    events_only: bool = False,
    max_events: int = MAX_BATCH,
) -> DrainReport:
    """Ship the journal in ``directory`` (removed once empty).

    :class:`~joblog.journal.JournalLocked` names the live process that holds it.
    ``events_only``: the sink takes log events only (a server): other ops are refused.
    """
    report = DrainReport(directory)
    journal = Journal(directory)
    try:
        while (batch := journal.read_batch(max_events)) is not None:
            _collect(journal, report)
            journal.begin(batch)
            try:
                stored = _ship(sink, batch.ops, batch.key, report, dead_letter, events_only)
            except StorageError as error:  # transient: leave the batch pending, same key
                report.stopped = str(error)
                break
            journal.commit(batch)
            report.batches += stored
            report.duplicates += 1 - stored
        _collect(journal, report)
    finally:
        journal.close(remove_if_empty=report.stopped is None)
    if report.refused:
        report.kept_in = dead_letter.path
    return report


def drain_file(path: Path, sink: Sink) -> DrainReport:
    """Store each line of a dead-letter file once; the file is left as it is."""
    report = DrainReport(path)
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8", "replace")
                op = decode_line(text)
            except ValueError as error:  # UnicodeDecodeError included
                report.corrupt += 1
                report.note(f"line {number}: skipped, {error}")
                continue
            try:
                stored = sink.apply_batch([op], line_key(text))
            except Exception as error:
                if isinstance(error, StorageError) and error.transient:
                    report.stopped = str(error)
                    break
                report.refused += 1
                report.note(f"line {number}: still refused: {error}")
                continue
            if stored:
                report.batches += 1
                report.events += _events([op])
            else:
                report.duplicates += 1
    return report


def _ship(
    sink: Sink,
    ops: list[Op],
    key: str,
    report: DrainReport,
    dead_letter: DeadLetter,
    events_only: bool,
) -> int:
    """0 when the database had the whole batch already, else 1. Refused ops are isolated
    one by one under the keys the writer uses (``<key>:<n>``), so a batch the writer
    had begun to isolate before a crash is still stored once."""
    if events_only and any(not isinstance(op, InsertEvents) for op in ops):
        return _one_by_one(sink, ops, key, report, dead_letter, events_only)
    try:
        stored = sink.apply_batch(ops, key)
    except Exception as error:
        if isinstance(error, StorageError) and error.transient:
            raise
        return _one_by_one(sink, ops, key, report, dead_letter, events_only)
    if stored:
        report.events += _events(ops)
    return int(stored)


def _one_by_one(
    sink: Sink,
    ops: list[Op],
    key: str,
    report: DrainReport,
    dead_letter: DeadLetter,
    events_only: bool,
) -> int:
    duplicates_only = True
    for number, op in enumerate(one_by_one(ops)):
        if events_only and not isinstance(op, InsertEvents):
            why = "a joblog server takes log events only: drain with --url"
            _refuse(op, why, report, dead_letter)
            duplicates_only = False
            continue
        try:
            stored = sink.apply_batch([op], f"{key}:{number}")
        except Exception as error:
            if isinstance(error, StorageError) and error.transient:
                raise
            _refuse(op, str(error), report, dead_letter)
            duplicates_only = False
            continue
        if stored:
            duplicates_only = False
            report.events += _events([op])
    return int(not duplicates_only)


def _refuse(op: Op, why: str, report: DrainReport, dead_letter: DeadLetter) -> None:
    report.refused += 1
    report.note(f"{type(op).__name__} refused: {why}")
    try:
        dead_letter.append(op, why)
    except OSError as error:
        report.note(f"and the dead-letter file {dead_letter.path} failed: {error}")


def _events(ops: Sequence[Op]) -> int:
    return sum(len(op.rows) for op in ops if isinstance(op, InsertEvents))


def _collect(journal: Journal, report: DrainReport) -> None:
    report.corrupt = journal.corrupt
    for problem in journal.problems:
        report.note(problem)
    journal.problems.clear()
