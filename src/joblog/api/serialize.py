"""Model objects as JSON-ready dicts: the one shape the API, the stream and the dashboard share.

Timestamps are ISO-8601 UTC with a ``Z`` and microseconds; enums are their string values.
Step IDs are strings: they are random 63-bit integers, beyond what a JavaScript number
holds exactly, and the dashboard keys steps by them.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import orjson

from joblog._config import parse_timestamp
from joblog.model import Job, JobSummary, LegacyFailoverJob, Level, LogEvent, Progress, Step

__all__ = [
    "dumps",
    "event_from_dict",
    "event_to_dict",
    "iso",
    "job_to_dict",
    "legacy_to_dict",
    "progress_to_dict",
    "step_to_dict",
    "summary_to_dict",
]


def iso(moment: datetime | None) -> str | None:
    """``2026-01-02T03:04:05.000006Z`` (naive datetimes are taken as UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds") + "Z"


def job_to_dict(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "parent_job_id": job.parent_job_id,
        "job_type": job.job_type,
        "operation": job.operation,
        "status": job.status.value,
        "external_job_id": job.external_job_id,
        "context_id": job.context_id,
        "owner": job.owner,
        "percent_complete": job.percent_complete,
        "metadata": job.metadata,
        "error_message": job.error_message,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "completed_at": iso(job.completed_at),
        "updated_at": iso(job.updated_at),
        "heartbeat_at": iso(job.heartbeat_at),
        "cancel_requested": job.cancel_requested,
        "planned_steps": [{"name": p.name, "weight": p.weight} for p in job.planned_steps],
    }


def step_to_dict(step: Step) -> dict[str, Any]:
    return {
        "id": None if step.id is None else str(step.id),
        "job_id": step.job_id,
        "seq": step.seq,
        "name": step.name,
        "status": step.status.value,
        "started_at": iso(step.started_at),
        "completed_at": iso(step.completed_at),
        "duration_seconds": step.duration_seconds,
        "error_message": step.error_message,
        "weight": step.weight,
        "allow_failure": step.allow_failure,
    }


def event_to_dict(event: LogEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "job_id": event.job_id,
        "step_id": None if event.step_id is None else str(event.step_id),
        "external_job_id": event.external_job_id,
        "level": event.level.value,
        "message": event.message,
        "attrs": event.attrs,
        "ts": iso(event.ts),
        "trace_id": event.trace_id,
        "span_id": event.span_id,
    }


def event_from_dict(data: Any) -> LogEvent:
    """An :func:`event_to_dict` object read back (from the API, the stream); ValueError
    when it is not one."""
    if not isinstance(data, dict):
        raise ValueError("an event is a JSON object")
    try:
        step_id = data.get("step_id")
        attrs = data.get("attrs")
        return LogEvent(
            id=_integer(data["id"]),
            job_id=_text_or_none(data.get("job_id")),
            step_id=None if step_id is None else _integer(step_id),
            external_job_id=_text_or_none(data.get("external_job_id")),
            level=Level.parse(str(data["level"])),
            message=str(data["message"]),
            attrs=attrs if isinstance(attrs, dict) else None,
            ts=parse_timestamp(str(data["ts"])),
            trace_id=_text_or_none(data.get("trace_id")),
            span_id=_text_or_none(data.get("span_id")),
        )
    except KeyError as missing:
        raise ValueError(f"an event needs {missing}") from None


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"not an ID: {value!r}")
    return int(value)


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def progress_to_dict(progress: Progress) -> dict[str, Any]:
    return asdict(progress)


def legacy_to_dict(legacy: LegacyFailoverJob) -> dict[str, Any]:
    return {
        "id": legacy.id,
        "job_id": legacy.job_id,
        "vm_id": legacy.vm_id,
        "job_type": legacy.job_type,
        "status": legacy.status,
        "source_vm_name": legacy.source_vm_name,
        "error_message": legacy.error_message,
        "created_at": iso(legacy.created_at),
        "updated_at": iso(legacy.updated_at),
        "completed_at": iso(legacy.completed_at),
    }


def summary_to_dict(summary: JobSummary) -> dict[str, Any]:
    return {
        "resolved_by": summary.resolved_by.value,
        "job": job_to_dict(summary.job),
        "steps": [step_to_dict(step) for step in summary.steps],
        "progress": progress_to_dict(summary.progress),
        "elapsed_seconds": summary.elapsed_seconds,
        "eta_seconds": summary.eta_seconds,
        "recent_events": [event_to_dict(event) for event in summary.recent_events],
        "children": [job_to_dict(child) for child in summary.children],
        "legacy": None if summary.legacy is None else legacy_to_dict(summary.legacy),
    }


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON (orjson); attrs a producer stored as odd types fall back to ``str``.

    What orjson refuses (a lone surrogate from a path or a header, an integer beyond
    64 bits) goes through Python's json instead, and is never a 500.
    """
    try:
        return orjson.dumps(value, default=str, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode(
            errors="replace"
        )
