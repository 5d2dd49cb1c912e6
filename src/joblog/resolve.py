"""Any ID to a job summary, through tiers tried in a declared order.

1. ``job_id``: the internal UUID (job_tracking.id)
2. ``external_job_id``: job_tracking.external_job_id, newest job first
3. ``log_events``: log_events.external_job_id, for producers that never created a job row
4. ``failover_jobs``: the older system's failover_jobs.job_id
Otherwise :class:`JobNotFound`.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

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
from joblog.storage.store import Store

__all__ = ["LEGACY_PHASES", "Resolver", "legacy_percent"]

#: The older system's failover phases in order, with the percent each one stands for.
LEGACY_PHASES = {
    "pending": 0,
    "validating": 10,
    "snapshotting": 30,
    "creating_vm": 50,
    "switching_volume": 70,
    "powering_on": 90,
    "completed": 100,
}
_LEGACY_STEPS = ("validating", "snapshotting", "creating_vm", "switching_volume", "powering_on")
_LEGACY_STATUS = {
    "pending": JobStatus.PENDING,
    "completed": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
}
_FINISHED = (StepStatus.COMPLETED, StepStatus.SKIPPED)
MAX_ID_LENGTH = 255


def legacy_percent(status: str) -> int:
    """A failover_jobs phase as a percent (cleanup and reverting count as nearly done)."""
    return LEGACY_PHASES.get(status, 95 if status in ("cleanup", "reverting") else 0)


class Resolver:
    """Resolves IDs and builds summaries; ETA history is cached per job type."""

    def __init__(self, store: Store, *, recent_events: int = 20, history_ttl: float = 60.0):
        self.store = store
        self.recent_events = recent_events
        self._history_ttl = history_ttl
        self._history: dict[tuple[str, str], tuple[float, float | None]] = {}
        self._history_lock = threading.Lock()
        self.tiers: tuple[tuple[ResolvedBy, Callable[[str], JobSummary | None]], ...] = (
            (ResolvedBy.JOB_ID, self._by_job_id),
            (ResolvedBy.EXTERNAL_JOB_ID, self._by_external_id),
            (ResolvedBy.LOG_EVENTS, self._by_log_events),
            (ResolvedBy.FAILOVER_JOBS, self._by_failover_jobs),
        )

    def resolve(self, any_id: str) -> JobSummary:
        if not any_id or len(any_id) > MAX_ID_LENGTH:
            raise JobNotFound(any_id)
        # Tiers 1 and 2 are one statement (the hot path of every GUI poll)...
        found = self.store.job_by_any_id(any_id)
        if found is not None:
            job, tier = found
            return self.summarize(job, self.tiers[tier - 1][0])
        # ...then the later tiers, in their declared order.
        for _tier, lookup in self.tiers[2:]:
            summary = lookup(any_id)
            if summary is not None:
                return summary
        raise JobNotFound(any_id)

    def job_id_for(self, any_id: str) -> str:
        """The internal job ID for any ID (tiers 1-3 only: legacy rows have none)."""
        if not any_id or len(any_id) > MAX_ID_LENGTH:
            raise JobNotFound(any_id)
        job_id = self.store.resolve_job_id(any_id)  # tiers 1-3, one round trip
        if job_id is not None:
            return job_id
        raise JobNotFound(any_id)

    # -- tiers -------------------------------------------------------------------------------

    def _by_job_id(self, any_id: str) -> JobSummary | None:
        job = self.store.get_job(any_id)
        return self.summarize(job, ResolvedBy.JOB_ID) if job else None

    def _by_external_id(self, any_id: str) -> JobSummary | None:
        job = self.store.newest_job_by_external_id(any_id)
        return self.summarize(job, ResolvedBy.EXTERNAL_JOB_ID) if job else None

    def _by_log_events(self, any_id: str) -> JobSummary | None:
        found, job_id = self.store.job_id_from_events(any_id)
        if not found:
            return None
        job = self.store.get_job(job_id) if job_id else None
        if job is not None:
            return self.summarize(job, ResolvedBy.LOG_EVENTS)
        return self._events_only(any_id, job_id)

    def _by_failover_jobs(self, any_id: str) -> JobSummary | None:
        legacy = self.store.get_failover_job(any_id)
        return self._legacy(legacy) if legacy else None

    # -- summaries ---------------------------------------------------------------------------

    def summarize(self, job: Job, resolved_by: ResolvedBy) -> JobSummary:
        rows, recent_events, children = self.store.summary_details(job.id, self.recent_events)
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
        durations = self.store.recent_durations(job_type, operation)
        typical = statistics.median(durations) if len(durations) >= 3 else None
        with self._history_lock:
            self._history[key] = (now, typical)
        return typical

    def _events_only(self, external_job_id: str, job_id: str | None) -> JobSummary:
        events = self.store.recent_events(external_job_id=external_job_id, limit=self.recent_events)
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
