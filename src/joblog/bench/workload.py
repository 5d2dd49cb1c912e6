"""Synthetic but realistic data for the benchmarks, generated deterministically.

The shape follows the seed's statistics: 14% of log events belong to a job, a job has
7 events (the first says ``Failover job started: <external id>``), and external IDs are
the GUI's constructed ``unified-live-failover-<vm>-<unix time>``. Every cycle of 50
events holds one job: its 7 events plus 43 events that belong to no job, so any multiple
of 50 events has exactly 14% attributed.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

__all__ = [
    "EVENTS_PER_CYCLE",
    "EVENTS_PER_JOB",
    "STEP_NAMES",
    "Chunk",
    "external_id",
    "generate",
    "job_uuid",
    "jobs_for_events",
    "missing_external_ids",
    "started_message",
]

EVENTS_PER_JOB = 7
EVENTS_PER_CYCLE = 50  # 7 / 50 = 14%
STEP_NAMES = ("validating", "snapshotting", "creating_vm", "switching_volume", "powering_on")
#: VM families: the 50-char message prefix keeps only the first 6 characters of the name.
VM_NAMES = tuple(
    f"{family}{n}"
    for family in ("pgtest", "webapp", "dbprod", "mailsrv", "filesrv", "k8snode")
    for n in range(1, 9)
)
BASE_TS = 1_758_553_933
BASE_TIME = datetime(2025, 9, 22, 8, 0, 0)
EVENT_SPACING = timedelta(milliseconds=40)
_OTHER_MESSAGES = (
    "replication heartbeat from {host}: lag {n} ms",
    "scheduler tick: {n} pending tasks",
    "volume {n} attached to {host}",
    "HTTP GET /api/v1/vms/{n} 200",
    "cache refresh took {n} ms on {host}",
)
_HOSTS = ("esx01", "esx02", "esx03", "esx04")


def external_id(job_index: int) -> str:
    """The GUI's ID of job ``job_index``: unique, shaped like the seed's example."""
    vm = VM_NAMES[job_index % len(VM_NAMES)]
    kind = "test" if job_index % 5 == 4 else "live"
    return f"unified-{kind}-failover-{vm}-{BASE_TS + job_index * 37}"


def missing_external_ids(count: int, seed: int = 7) -> list[str]:
    """IDs shaped like real ones (same 50-char message prefix) that no job carries."""
    rng = random.Random(seed)
    return [
        f"unified-live-failover-{rng.choice(VM_NAMES)}-{BASE_TS + rng.randrange(10**7) * 37 + 1}"
        for _ in range(count)
    ]


def started_message(external_job_id: str) -> str:
    return f"Failover job started: {external_job_id}"


def jobs_for_events(events: int) -> int:
    return events // EVENTS_PER_CYCLE


def job_uuid(job_index: int) -> str:
    """The internal job ID (job_tracking.id) of job ``job_index``."""
    return str(uuid.UUID(int=random.Random(job_index).getrandbits(128), version=4))


@dataclass
class Chunk:
    """Rows for a run of consecutive jobs, in the column order the loaders use."""

    jobs: list[tuple[object, ...]] = field(default_factory=list)
    steps: list[tuple[object, ...]] = field(default_factory=list)
    events: list[tuple[object, ...]] = field(default_factory=list)
    correlations: list[tuple[object, ...]] = field(default_factory=list)
    external_ids: list[str] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)


#: job_tracking columns the loaders fill, in this order.
JOB_COLUMNS = (
    "id",
    "job_type",
    "operation",
    "status",
    "external_job_id",
    "context_id",
    "percent_complete",
    "metadata",
    "planned_steps",
    "cancel_requested",
    "created_at",
    "started_at",
    "completed_at",
    "updated_at",
    "heartbeat_at",
)
STEP_COLUMNS = (
    "id",
    "job_id",
    "seq",
    "name",
    "status",
    "weight",
    "allow_failure",
    "started_at",
    "completed_at",
)
EVENT_COLUMNS = ("job_id", "step_id", "external_job_id", "level", "message", "attrs", "ts")
CORRELATION_COLUMNS = ("external_job_id", "internal_job_id", "job_type", "created_at")
_PLANNED = json.dumps([{"name": name, "weight": 1.0} for name in STEP_NAMES])


def generate(first_job: int, jobs: int, *, chunk_jobs: int = 1000) -> Iterator[Chunk]:
    """Rows for jobs ``first_job`` .. ``first_job + jobs - 1`` and their cycles of events."""
    end = first_job + jobs
    for start in range(first_job, end, chunk_jobs):
        yield _chunk(start, min(start + chunk_jobs, end))


def _chunk(start: int, stop: int) -> Chunk:
    chunk = Chunk()
    for index in range(start, stop):
        _cycle(chunk, index)
    return chunk


def _cycle(chunk: Chunk, index: int) -> None:
    rng = random.Random(index)
    job_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))  # == job_uuid(index)
    ext = external_id(index)
    vm = VM_NAMES[index % len(VM_NAMES)]
    first_event = index * EVENTS_PER_CYCLE
    t0 = BASE_TIME + first_event * EVENT_SPACING
    done = t0 + EVENTS_PER_JOB * EVENT_SPACING
    running = index % 97 == 0
    chunk.jobs.append(
        (
            job_id,
            "failover",
            "test-failover" if "-test-" in ext else "live-failover",
            "running" if running else "completed",
            ext,
            vm,
            60 if running else 100,
            json.dumps({"vm_name": vm}),
            _PLANNED,
            False,
            t0,
            t0,
            None if running else done,
            done,
            done,
        )
    )
    chunk.correlations.append((ext, job_id, "failover", t0))
    chunk.external_ids.append(ext)
    chunk.job_ids.append(job_id)
    step_base = index * len(STEP_NAMES) + 1
    job_events: list[tuple[str, str, int | None, dict[str, str]]] = [
        ("INFO", started_message(ext), None, {"external_job_id": ext, "vm_name": vm}),
    ]
    for seq, name in enumerate(STEP_NAMES, start=1):
        step_id = step_base + seq - 1
        chunk.steps.append((step_id, job_id, seq, name, "completed", 1.0, False, t0, done))
        job_events.append(("INFO", f"step {name} completed for {vm}", step_id, {"step": name}))
    job_events.append(("INFO", f"Failover job completed: {ext}", None, {"vm_name": vm}))
    ts = t0
    for level, message, event_step, attrs in job_events:
        attrs_json = json.dumps({"logger": "failover", **attrs})
        chunk.events.append((job_id, event_step, ext, level, message, attrs_json, ts))
        ts += EVENT_SPACING
    for n in range(EVENTS_PER_CYCLE - EVENTS_PER_JOB):
        host = _HOSTS[(index + n) % len(_HOSTS)]
        text = _OTHER_MESSAGES[n % len(_OTHER_MESSAGES)].format(host=host, n=rng.randrange(1000))
        attrs_json = json.dumps({"logger": "platform", "host": host})
        level = "DEBUG" if n % 3 == 0 else "INFO"
        chunk.events.append((None, None, None, level, text, attrs_json, ts))
        ts += EVENT_SPACING
