"""OTLP/HTTP logs: request bodies decoded, and log records mapped onto joblog events.

Pure: no database, no HTTP. :func:`decode` turns a body (protobuf, or the OTLP JSON
mapping: hex trace and span IDs, 64-bit integers as strings, lowerCamelCase keys, unknown
fields ignored) into an ``ExportLogsServiceRequest``; :func:`map_records` turns its log
records into :class:`~joblog.storage.producer.IncomingEvent` rows for the ingest path, or
into rejections that name their reason.

How a record becomes an event:

* its job: the attributes ``joblog.job_id`` (the internal UUID), ``joblog.external_job_id``
  and ``joblog.step`` (the step's ``seq``: 1, 2, ...), on the record or, when the record
  has none, on its resource. A record naming no job is stored with NULL job IDs, as the
  logging handler stores a record logged outside a job (reachable by its trace ID);
* ``level`` from ``severityNumber`` (TRACE and DEBUG: DEBUG, INFO, WARN, ERROR and FATAL:
  ERROR), else ``severityText``, else INFO; ``message`` the body (text as is, anything
  else as JSON), cut like every message; ``ts`` ``timeUnixNano``, else
  ``observedTimeUnixNano``, else the time of arrival;
* ``trace_id`` / ``span_id`` as lowercase hex (all-zero IDs are absent, as W3C says);
* ``attrs`` the record's attributes (``joblog.*`` left out: they are columns), with
  ``service.name`` from the resource, the scope's name as ``otel.scope``, and
  ``severity_text`` and ``event_name`` when set.

A body that does not decode, or a trace or span ID of the wrong length, makes the
whole request undecodable (what the OpenTelemetry Collector answers too); a record whose
``joblog.*`` values cannot be stored is rejected alone.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from joblog._storable import clean_message
from joblog.api.write_schemas import column_text, json_object_text
from joblog.model import Level
from joblog.storage.producer import IncomingEvent

__all__ = [
    "EXTERNAL_JOB_ID",
    "JOB_ID",
    "STEP",
    "BodyTooLarge",
    "Encoding",
    "Mapped",
    "Undecodable",
    "UnsupportedEncoding",
    "decode",
    "decompress",
    "encode_response",
    "encode_status",
    "map_records",
]

JOB_ID = "joblog.job_id"
EXTERNAL_JOB_ID = "joblog.external_job_id"
STEP = "joblog.step"
_JOBLOG_KEYS = frozenset({JOB_ID, EXTERNAL_JOB_ID, STEP})

#: The body's encoding, from its Content-Type.
Encoding = Literal["protobuf", "json"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_SEQ = 2**31 - 1
#: severityNumber ranges (the OpenTelemetry logs data model) -> joblog's levels.
_SEVERITY = (
    (range(1, 9), Level.DEBUG),  # TRACE, DEBUG
    (range(9, 13), Level.INFO),
    (range(13, 17), Level.WARN),
    (range(17, 25), Level.ERROR),  # ERROR, FATAL
)
#: At most this many distinct reasons are spelled out in a partial success message.
_REASONS_SHOWN = 5


class Undecodable(ValueError):
    """The body is not an OTLP logs request in the declared encoding (HTTP 400)."""


class UnsupportedEncoding(Undecodable):
    """A ``Content-Encoding`` other than gzip, deflate or none (HTTP 415)."""


class BodyTooLarge(ValueError):
    """The body decompresses to more than the server takes (HTTP 413)."""


class _Rejected(ValueError):
    """One log record cannot be stored (it counts in ``partial_success``)."""


# -- bodies ----------------------------------------------------------------------------------


def decompress(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body after its ``Content-Encoding`` (gzip, deflate or none), at most ``limit``
    bytes: a small body that inflates past it is refused, never held in memory whole."""
    coding = (content_encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding in ("gzip", "x-gzip"):
        window = 16 + zlib.MAX_WBITS
    elif coding == "deflate":
        window = zlib.MAX_WBITS
    else:
        raise UnsupportedEncoding(f"unsupported Content-Encoding {coding[:40]!r}: use gzip")
    parts: list[bytes] = []
    size = 0
    rest = body
    while rest:  # a gzip body may hold several members, one after the other
        inflater = zlib.decompressobj(window)
        try:
            part = inflater.decompress(rest, limit + 1 - size)
        except zlib.error as error:
            raise Undecodable(f"the body is not valid {coding}: {error}") from None
        size += len(part)
        if size > limit:
            raise BodyTooLarge(f"the body inflates to more than {limit} bytes")
        if not inflater.eof:
            raise Undecodable(f"the {coding} body is cut short")
        parts.append(part)
        rest = inflater.unused_data
    return b"".join(parts)


def decode(body: bytes, encoding: Encoding) -> ExportLogsServiceRequest:
    """The request in ``body``; :class:`Undecodable` when it is not one."""
    request = ExportLogsServiceRequest()
    if encoding == "protobuf":
        try:
            request.ParseFromString(body)
        except (DecodeError, RecursionError, ValueError) as error:
            raise Undecodable(f"not an OTLP protobuf logs request: {error}") from None
        return request
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise Undecodable(f"not JSON: {error}") from None
    if not isinstance(document, dict):
        raise Undecodable("the body must be a JSON object (ExportLogsServiceRequest)")
    _hex_ids_to_base64(document)
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as error:
        raise Undecodable(f"not an OTLP JSON logs request: {str(error)[:300]}") from None
    return request


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """OTLP JSON writes trace and span IDs in hex where protobuf's JSON mapping expects
    base64: rewrite them in place, so that the standard parser reads the rest."""
    for r, scope_logs in _each(document, "resourceLogs", "resource_logs"):
        for s, records in _each(scope_logs, "scopeLogs", "scope_logs"):
            for n, record in _each(records, "logRecords", "log_records"):
                for names in (("traceId", "trace_id"), ("spanId", "span_id")):
                    for name in names:
                        value = record.get(name)
                        if isinstance(value, str):
                            try:
                                raw = bytes.fromhex(value)
                            except ValueError:
                                where = f"resourceLogs[{r}].scopeLogs[{s}].logRecords[{n}]"
                                raise Undecodable(f"{where}.{names[0]} is not hex") from None
                            record[name] = base64.b64encode(raw).decode("ascii")


def _each(parent: Any, *names: str) -> Iterator[tuple[int, dict[str, Any]]]:
    if not isinstance(parent, dict):
        return
    for name in names:
        children = parent.get(name)
        if isinstance(children, list):
            for index, child in enumerate(children):
                if isinstance(child, dict):
                    yield index, child


# -- records -> events -----------------------------------------------------------------------


@dataclass(slots=True)
class Mapped:
    """The events of a request's storable records, and why the others were rejected."""

    events: list[IncomingEvent] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def reject(self, reasons: Iterable[str]) -> None:
        self.rejected.extend(reasons)


def map_records(request: ExportLogsServiceRequest, now: datetime) -> Mapped:
    """Every log record of ``request`` as an event, or a rejection; ``now`` is the time of
    records that carry none."""
    mapped = Mapped()
    for r, resource_logs in enumerate(request.resource_logs):
        resource = _attributes(resource_logs.resource.attributes)
        service = resource.get("service.name")
        try:  # the resource's job, worked out once for all its records
            job: _Job | str = _job_of(resource, resource)
        except _Rejected as reason:
            job = str(reason)
        for s, scope_logs in enumerate(resource_logs.scope_logs):
            scope = scope_logs.scope.name
            for n, record in enumerate(scope_logs.log_records):
                try:
                    event = _event(record, resource, job, service, scope, now, (r, s, n))
                except _Rejected as reason:
                    mapped.rejected.append(str(reason))
                else:
                    mapped.events.append(event)
    return mapped


#: (job_id, external_job_id, step seq) a record names.
_Job = tuple[str | None, str | None, int | None]


def _job_of(named: dict[str, Any], step_from: dict[str, Any]) -> _Job:
    job_id = _identifier(named, JOB_ID)
    external_job_id = _identifier(named, EXTERNAL_JOB_ID)
    step_seq = _step(step_from)
    if step_seq is not None and job_id is None and external_job_id is None:
        raise _Rejected(f"{STEP} needs {JOB_ID} or {EXTERNAL_JOB_ID}")
    return job_id, external_job_id, step_seq


def _event(
    record: LogRecord,
    resource: dict[str, Any],
    resource_job: _Job | str,
    service: Any,
    scope: str,
    now: datetime,
    where: tuple[int, int, int],
) -> IncomingEvent:
    attributes = _attributes(record.attributes) if record.attributes else {}
    # A job the record names wins over its resource's (the whole service's job); a step
    # on the record alone is a step of the resource's job.
    if JOB_ID in attributes or EXTERNAL_JOB_ID in attributes:
        job = _job_of(attributes, attributes)
    elif STEP in attributes:
        job = _job_of(resource, attributes)
    elif isinstance(resource_job, str):
        raise _Rejected(resource_job)
    else:
        job = resource_job
    job_id, external_job_id, step_seq = job
    trace_id = _hex_id(record.trace_id, 16, where, "traceId")
    span_id = _hex_id(record.span_id, 8, where, "spanId")
    if span_id is not None and trace_id is None:
        raise _Rejected("a spanId needs its traceId")
    attrs = {key: value for key, value in attributes.items() if key not in _JOBLOG_KEYS}
    if service is not None and "service.name" not in attrs:
        attrs["service.name"] = service
    for key, value in (
        ("otel.scope", scope),
        ("severity_text", record.severity_text),
        ("event_name", record.event_name),
    ):
        if value and key not in attrs:
            attrs[key] = value
    try:
        attrs_text = json_object_text(attrs, "attributes") if attrs else None
    except ValueError as error:
        raise _Rejected(str(error)) from None
    return IncomingEvent(
        level=_level(record).value,
        message=_message(record.body),
        ts=_timestamp(record, now),
        job_id=job_id,
        external_job_id=external_job_id,
        step_seq=step_seq,
        attrs=attrs_text,
        trace_id=trace_id,
        span_id=span_id,
    )


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None if kind is None else getattr(value, kind)


def _identifier(named: dict[str, Any], key: str) -> str | None:
    value = named.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not 1 <= len(value) <= 255:
        raise _Rejected(f"{key} must be a string of 1 to 255 characters")
    try:
        return column_text(value)
    except ValueError as error:
        raise _Rejected(f"{key} {error}") from None


def _step(named: dict[str, Any]) -> int | None:
    value = named.get(STEP)
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_SEQ:
        raise _Rejected(f"{STEP} must be a step's seq: an integer from 1 to {_MAX_SEQ}")
    return value


def _hex_id(raw: bytes, size: int, where: tuple[int, int, int], name: str) -> str | None:
    if not raw:
        return None
    if len(raw) != size:
        r, s, n = where
        place = f"resourceLogs[{r}].scopeLogs[{s}].logRecords[{n}].{name}"
        raise Undecodable(f"{place} must be {size} bytes, not {len(raw)}")
    return None if not any(raw) else binascii.hexlify(raw).decode("ascii")


def _level(record: LogRecord) -> Level:
    number = int(record.severity_number)
    for numbers, level in _SEVERITY:
        if number in numbers:
            return level
    try:
        return Level.parse(record.severity_text) if record.severity_text else Level.INFO
    except ValueError:
        return Level.INFO


def _message(body: AnyValue) -> str:
    value = _value(body)
    if value is None:
        return ""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, default=str)
    return clean_message(value)


def _timestamp(record: LogRecord, now: datetime) -> datetime:
    nanos = record.time_unix_nano or record.observed_time_unix_nano
    if not nanos:
        return now
    return _EPOCH + timedelta(microseconds=nanos // 1000)


# -- answers ---------------------------------------------------------------------------------


def encode_response(rejected: list[str], encoding: Encoding) -> bytes:
    """An ``ExportLogsServiceResponse``: empty, or ``partial_success`` with the number of
    rejected records and their reasons (each distinct reason once, with its count)."""
    response = ExportLogsServiceResponse()
    if rejected:
        response.partial_success.CopyFrom(
            ExportLogsPartialSuccess(
                rejected_log_records=len(rejected), error_message=_summary(rejected)
            )
        )
    if encoding == "protobuf":
        return response.SerializeToString()
    return orjson.dumps(json_format.MessageToDict(response))


def _summary(rejected: list[str]) -> str:
    counts: dict[str, int] = {}
    for reason in rejected:
        counts[reason] = counts.get(reason, 0) + 1
    parts = [f"{reason} ({count})" for reason, count in list(counts.items())[:_REASONS_SHOWN]]
    if len(counts) > _REASONS_SHOWN:
        parts.append(f"and {len(counts) - _REASONS_SHOWN} other reasons")
    return f"{len(rejected)} log records rejected: " + "; ".join(parts)


#: gRPC status codes, as google.rpc.Status carries them.
INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE = 3, 8, 14


def encode_status(code: int, message: str, encoding: Encoding) -> bytes:
    """A ``google.rpc.Status`` (``code``, ``message``): the body of an OTLP error answer."""
    if encoding == "json":
        return orjson.dumps({"code": code, "message": message})
    text = message.encode("utf-8", "replace")
    # Two fields: 1 (int32, varint) and 2 (string, length-delimited).
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)
