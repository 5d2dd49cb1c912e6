"""Any ID to a job: the resolution tiers, declared once, in order, and the one walk.

:data:`TIERS` is the order (first match wins):

1. ``job_id``: the internal UUID (job_tracking.id)
2. ``external_job_id``: job_tracking.external_job_id, newest job first
3. ``context_id``: job_tracking.context_id (e.g. the VM context the GUI knows), newest first
4. ``log_events``: log_events.external_job_id, for producers that never created a job row
5. ``failover_jobs``: the older system's failover_jobs.job_id

Otherwise :class:`JobNotFound`. Each tier is a probe in :mod:`joblog.storage.queries`;
:meth:`Resolver.locate` runs them as one statement built from this declaration (a hit on
an early tier never runs the later probes). The API, the dashboard, the stream, the CLI
and the ingest path all call :meth:`Resolver.locate`; adding a tier is one entry here
plus its probe.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from joblog._config import MAX_ID_LENGTH
from joblog.exceptions import JobNotFound
from joblog.model import (
    Job,
    JobStatus,
    JobSummary,
    LegacyFailoverJob,
    Progress,
    ResolvedBy,
    Step,
    StepStatus,
)
from joblog.storage import queries
from joblog.storage.rows import job_from_row
from joblog.storage.store import Store

__all__ = [
    "ATTACH_TIERS",
    "JOB_TIERS",
    "LEGACY_PHASES",
    "MAX_ID_LENGTH",
    "TIERS",
    "EventScope",
    "Located",
    "Resolver",
    "Tier",
    "is_resolvable",
    "legacy_percent",
]


@dataclass(frozen=True, slots=True)
class Tier:
    """One way an ID can name a job: its name and its probe (a query of one column that
    is non-NULL exactly when the tier knows the ID)."""

    name: ResolvedBy
    probe: Any


TIERS: tuple[Tier, ...] = (
    Tier(ResolvedBy.JOB_ID, queries.TIER_JOB_ID),
    Tier(ResolvedBy.EXTERNAL_JOB_ID, queries.TIER_EXTERNAL_JOB_ID),
    Tier(ResolvedBy.CONTEXT_ID, queries.TIER_CONTEXT_ID),
    Tier(ResolvedBy.LOG_EVENTS, queries.TIER_LOG_EVENTS),
    Tier(ResolvedBy.FAILOVER_JOBS, queries.TIER_FAILOVER_JOBS),
)

#: What a write to "a job" may name: its UUID or its external ID.
JOB_TIERS: tuple[Tier, ...] = TIERS[:2]

#: Tiers through which an incoming event's ``external_job_id`` attaches it to a job.
ATTACH_TIERS: tuple[Tier, ...] = tuple(t for t in TIERS if t.name is ResolvedBy.EXTERNAL_JOB_ID)

#: Tiers whose hit is the ID of a job row.
_NAMES_A_JOB = frozenset({ResolvedBy.JOB_ID, ResolvedBy.EXTERNAL_JOB_ID, ResolvedBy.CONTEXT_ID})


@dataclass(frozen=True, slots=True)
class Located:
    """Where an ID led: the tier that matched and what it names.

    ``job_id`` is the internal job (None for events whose producer never made a job row,
    and for legacy rows); ``external_job_id`` the ID the job's events carry when the
    match was by one; ``legacy`` the failover_jobs row of tier ``failover_jobs``; ``job``
    the job row when it was read in the same round trip, and ``state`` then that row with
    the job's state columns (:func:`joblog.storage.queries.job_state`).
    """

    tier: ResolvedBy
    job_id: str | None
    external_job_id: str | None
    legacy: LegacyFailoverJob | None = None
    state: Mapping[str, Any] | None = None

    @property
    def job(self) -> Job | None:
        """The job row read along (built when asked: a 304 never needs it)."""
        return None if self.state is None else job_from_row(self.state)

    @property
    def scope(self) -> EventScope:
        """Which log events belong to the ID."""
        if self.tier in _NAMES_A_JOB:
            return EventScope(job_id=self.job_id)
        if self.tier is ResolvedBy.LOG_EVENTS:
            return EventScope(external_job_id=self.external_job_id)
        return EventScope()


@dataclass(frozen=True, slots=True)
class EventScope:
    """The events of one ID: by job, by external ID only (events whose producer made no
    job row), or none (a legacy failover row)."""

    job_id: str | None = None
    external_job_id: str | None = None

    @property
    def empty(self) -> bool:
        return self.job_id is None and self.external_job_id is None


def is_resolvable(any_id: object) -> bool:
    """False for an ID that no tier could hold: empty, too long, or not storable text
    (a NUL, a lone surrogate); such an ID is unknown without asking the database."""
    if not isinstance(any_id, str) or not any_id or len(any_id) > MAX_ID_LENGTH:
        return False
    if "\x00" in any_id:
        return False
    try:
        any_id.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: The older system's failover phases as percents: the origin platform's own map (its
#: GUI shows these numbers), with every other phase at 50.
LEGACY_PHASES = {
    "pending": 0,
    "validating": 10,
    "snapshotting": 25,
    "creating_vm": 50,
    "switching_volume": 75,
    "powering_on": 90,
    "completed": 100,
    "failed": 0,
    "cleanup": 100,
}
LEGACY_OTHER_PHASE = 50
_LEGACY_STEPS = ("validating", "snapshotting", "creating_vm", "switching_volume", "powering_on")
_LEGACY_STATUS = {
    "pending": JobStatus.PENDING,
    "completed": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
}
_FINISHED = (StepStatus.COMPLETED, StepStatus.SKIPPED)


def legacy_percent(status: str) -> int:
    """A failover_jobs phase as a percent, as the origin platform reports it."""
    return LEGACY_PHASES.get(status, LEGACY_OTHER_PHASE)


class Resolver:
    """Resolves IDs and builds summaries; ETA history is cached per job type."""

    def __init__(self, store: Store, *, recent_events: int = 20, history_ttl: float = 60.0):
        self.store = store
        self.recent_events = recent_events
        self._history_ttl = history_ttl
        self._history: dict[tuple[str, str], tuple[float, float | None]] = {}
        self._history_lock = threading.Lock()
        self._statements: dict[tuple[tuple[ResolvedBy, ...], bool], Any] = {}

    def locate(
        self, any_id: str, *, tiers: Sequence[Tier] = TIERS, with_job: bool = False
    ) -> Located:
        """The first of ``tiers`` that knows ``any_id``, in one round trip (two for a
        legacy row); JobNotFound when none does. ``with_job`` reads the job row along."""
        if not is_resolvable(any_id):
            raise JobNotFound(any_id if isinstance(any_id, str) else repr(any_id))
        statement = self._statement(tuple(tiers), with_job)
        state = None
        if with_job:
            hit, state = self.store.reads.first_hit_with_job(statement, any_id)
        else:
            hit = self.store.reads.first_hit(statement, any_id)
        if hit is None:
            raise JobNotFound(any_id)
        position, _sep, value = hit.partition(queries.HIT_SEPARATOR)
        tier = tiers[int(position) - 1].name
        if tier in _NAMES_A_JOB:
            external = any_id if tier is ResolvedBy.EXTERNAL_JOB_ID else None
            if state is not None:
                external = state["external_job_id"]
            return Located(tier, value, external, state=state)
        if tier is ResolvedBy.LOG_EVENTS:
            return Located(tier, value or None, any_id, state=state)
        legacy = self.store.reads.get_failover_job(any_id)
        if legacy is None:  # deleted between the two reads
            raise JobNotFound(any_id)
        return Located(tier, None, any_id, legacy=legacy)

    def job_id(self, any_id: str) -> str:
        """The job row ``any_id`` names by UUID or external ID; JobNotFound otherwise."""
        job_id = self.locate(any_id, tiers=JOB_TIERS).job_id
        assert job_id is not None
        return job_id

    def attach(self, external_job_id: str) -> str | None:
        """The job an incoming event with only ``external_job_id`` belongs to (the
        :data:`ATTACH_TIERS`), or None: it stays an events-only ID."""
        try:
            return self.locate(external_job_id, tiers=ATTACH_TIERS).job_id
        except JobNotFound:
            return None

    def _statement(self, tiers: tuple[Tier, ...], with_job: bool) -> Any:
        key = (tuple(t.name for t in tiers), with_job)
        statement = self._statements.get(key)
        if statement is None:
            probes = [t.probe for t in tiers]
            build = queries.first_hit_with_job if with_job else queries.first_hit
            statement = self._statements[key] = build(probes)
        return statement

    def resolve(self, any_id: str) -> JobSummary:
        """The summary of the job ``any_id`` names, by the first tier that knows it."""
        return self.summary(self.locate(any_id, with_job=True))

    def summary(self, located: Located) -> JobSummary:
        """The summary of what :meth:`locate` found."""
        if located.legacy is not None:
            return self._legacy(located.legacy)
        job = located.job
        if job is None and located.job_id is not None:
            job = self.store.reads.get_job(located.job_id)
        if job is not None:
            return self.summarize(job, located.tier)
        assert located.external_job_id is not None
        return self._events_only(located.external_job_id, located.job_id)

    # -- summaries ---------------------------------------------------------------------------

    def summarize(self, job: Job, resolved_by: ResolvedBy) -> JobSummary:
        rows, recent_events, children = self.store.reads.summary_details(job.id, self.recent_events)
        started = {step.name for step in rows}
        pending = [
            Step(None, job.id, None, p.name, StepStatus.PENDING, weight=p.weight)
            for p in job.planned_steps
            if p.name not in started
        ]
        steps = rows + pending
        running = [s for s in rows if s.status is StepStatus.RUNNING]
        percent = 100 if job.status is JobStatus.COMPLETED else job.percent_complete
        progress = Progress(
            percent=percent,
            planned_steps=len(job.planned_steps) or len(rows),
            completed_steps=sum(1 for s in rows if s.status in _FINISHED),
            failed_steps=sum(1 for s in rows if s.status is StepStatus.FAILED),
            running_steps=len(running),
            current_step=running[-1].name if running else None,
        )
        elapsed = _elapsed(job.started_at or job.created_at, job.completed_at)
        return JobSummary(
            job=job,
            resolved_by=resolved_by,
            steps=steps,
            progress=progress,
            elapsed_seconds=elapsed,
            eta_seconds=self._eta(job, percent, elapsed),
            recent_events=recent_events,
            children=children,
        )

    def _eta(self, job: Job, percent: int, elapsed: float | None) -> float | None:
        if job.is_terminal:
            return 0.0
        if elapsed is None:
            return None
        typical = self._typical_duration(job.job_type, job.operation)
        if typical is not None:
            by_history = max(typical - elapsed, 0.0)
            if percent > 0:  # blend with the job's own pace once it has one
                by_pace = elapsed * (100 - percent) / percent
                return round((by_history + by_pace) / 2, 1)
            return round(by_history, 1)
        if percent > 0:
            return round(elapsed * (100 - percent) / percent, 1)
        return None

    def _typical_duration(self, job_type: str, operation: str) -> float | None:
        key = (job_type, operation)
        now = time.monotonic()
        with self._history_lock:
            cached = self._history.get(key)
        if cached is not None and now - cached[0] < self._history_ttl:
            return cached[1]
        durations = self.store.reads.recent_durations(job_type, operation)
        typical = statistics.median(durations) if len(durations) >= 3 else None
        with self._history_lock:
            self._history[key] = (now, typical)
        return typical

    def _events_only(self, external_job_id: str, job_id: str | None) -> JobSummary:
        events = self.store.reads.recent_events(
            external_job_id=external_job_id, limit=self.recent_events
        )
        first = events[0].ts if events else datetime.now(UTC)
        job = Job(
            id=job_id or external_job_id,
            job_type="unknown",
            operation="unknown",
            status=JobStatus.UNKNOWN,
            created_at=first,
            external_job_id=external_job_id,
            started_at=first,
            updated_at=events[-1].ts if events else None,
        )
        return JobSummary(
            job=job,
            resolved_by=ResolvedBy.LOG_EVENTS,
            steps=[],
            progress=Progress(0, 0, 0, 0, 0, None),
            elapsed_seconds=_elapsed(first, events[-1].ts if events else None),
            eta_seconds=None,
            recent_events=events,
        )

    def _legacy(self, legacy: LegacyFailoverJob) -> JobSummary:
        status = _LEGACY_STATUS.get(legacy.status, JobStatus.RUNNING)
        created = legacy.created_at or datetime.now(UTC)
        job = Job(
            id=legacy.job_id,
            job_type="failover",
            operation=f"{legacy.job_type}-failover",
            status=status,
            created_at=created,
            external_job_id=legacy.job_id,
            context_id=legacy.vm_id,
            percent_complete=legacy_percent(legacy.status),
            error_message=legacy.error_message,
            started_at=created,
            completed_at=legacy.completed_at,
            updated_at=legacy.updated_at,
            metadata={"source_vm_name": legacy.source_vm_name, "phase": legacy.status},
        )
        steps = _legacy_steps(legacy)
        running = [s for s in steps if s.status is StepStatus.RUNNING]
        return JobSummary(
            job=job,
            resolved_by=ResolvedBy.FAILOVER_JOBS,
            steps=steps,
            progress=Progress(
                percent=job.percent_complete,
                planned_steps=len(steps),
                completed_steps=sum(1 for s in steps if s.status is StepStatus.COMPLETED),
                failed_steps=sum(1 for s in steps if s.status is StepStatus.FAILED),
                running_steps=len(running),
                current_step=running[0].name if running else None,
            ),
            elapsed_seconds=_elapsed(created, legacy.completed_at),
            eta_seconds=0.0 if job.is_terminal else None,
            recent_events=[],
            legacy=legacy,
        )


def _legacy_steps(legacy: LegacyFailoverJob) -> list[Step]:
    """The older system's phases as a step timeline."""
    if legacy.status == "completed":
        current = len(_LEGACY_STEPS)
    elif legacy.status in _LEGACY_STEPS:
        current = _LEGACY_STEPS.index(legacy.status)
    else:
        current = -1
    steps = []
    for seq, phase in enumerate(_LEGACY_STEPS, start=1):
        if current < 0:
            status = StepStatus.PENDING
        elif seq - 1 < current:
            status = StepStatus.COMPLETED
        elif seq - 1 == current:
            status = StepStatus.RUNNING
        else:
            status = StepStatus.PENDING
        steps.append(Step(None, legacy.job_id, seq, phase, status))
    return steps


def _elapsed(start: datetime | None, end: datetime | None) -> float | None:
    if start is None:
        return None
    return round(((end or datetime.now(UTC)) - start).total_seconds(), 3)
