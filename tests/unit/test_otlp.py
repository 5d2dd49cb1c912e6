"""OTLP log records -> joblog events, and bodies -> requests: pure, no database.

The field names and encodings follow opentelemetry-proto (``logs/v1/logs.proto``,
``collector/logs/v1/logs_service.proto``) and the OTLP specification's JSON mapping.
"""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from joblog.api import otlp

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
TRACE = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
SPAN = bytes.fromhex("00f067aa0ba902b7")


def value(python: Any) -> AnyValue:
    if isinstance(python, bool):
        return AnyValue(bool_value=python)
    if isinstance(python, int):
        return AnyValue(int_value=python)
    if isinstance(python, float):
        return AnyValue(double_value=python)
    if isinstance(python, bytes):
        return AnyValue(bytes_value=python)
    if isinstance(python, list):
        out = AnyValue()
        out.array_value.values.extend(value(item) for item in python)
        return out
    if isinstance(python, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(pairs(python))
        return out
    return AnyValue(string_value=python)


def pairs(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=value(item)) for key, item in attributes.items()]


def request(
    *records: LogRecord, resource: dict[str, Any] | None = None, scope: str = "app"
) -> ExportLogsServiceRequest:
    built = ExportLogsServiceRequest()
    logs = built.resource_logs.add()
    logs.resource.attributes.extend(pairs(resource or {}))
    scope_logs = logs.scope_logs.add()
    scope_logs.scope.name = scope
    scope_logs.log_records.extend(records)
    return built


def record(body: Any = "hello", **fields: Any) -> LogRecord:
    attributes = fields.pop("attributes", {})
    made = LogRecord(body=value(body), **fields)
    made.attributes.extend(pairs(attributes))
    return made


def one(*records: LogRecord, **kwargs: Any) -> otlp.Mapped:
    return otlp.map_records(request(*records, **kwargs), NOW)


class TestJobReference:
    def test_resource_names_the_job_of_every_record(self) -> None:
        mapped = one(record(), record(), resource={"joblog.external_job_id": "gui-1"})
        assert [e.external_job_id for e in mapped.events] == ["gui-1", "gui-1"]

    def test_record_attributes_win_over_the_resource(self) -> None:
        mapped = one(
            record(attributes={"joblog.job_id": "uuid-2"}),
            resource={"joblog.external_job_id": "gui-1"},
        )
        event = mapped.events[0]
        assert (event.job_id, event.external_job_id) == ("uuid-2", None)

    def test_a_step_on_the_record_belongs_to_the_resources_job(self) -> None:
        mapped = one(
            record(attributes={"joblog.step": 2}), resource={"joblog.external_job_id": "gui-1"}
        )
        assert (mapped.events[0].external_job_id, mapped.events[0].step_seq) == ("gui-1", 2)

    def test_a_step_as_decimal_text(self) -> None:
        mapped = one(record(attributes={"joblog.job_id": "u", "joblog.step": "3"}))
        assert mapped.events[0].step_seq == 3

    def test_a_record_naming_no_job_has_null_ids(self) -> None:
        event = one(record()).events[0]
        assert (event.job_id, event.external_job_id, event.step_seq) == (None, None, None)

    @pytest.mark.parametrize(
        "attributes",
        [
            {"joblog.external_job_id": "a\x00b"},
            {"joblog.external_job_id": "x" * 256},
            {"joblog.external_job_id": ""},
            {"joblog.external_job_id": ["a"]},
            {"joblog.job_id": True},
            {"joblog.job_id": "u", "joblog.step": 0},
            {"joblog.job_id": "u", "joblog.step": 2**31},
            {"joblog.job_id": "u", "joblog.step": "two"},
            {"joblog.job_id": "u", "joblog.step": 1.5},
            {"joblog.step": 1},
        ],
    )
    def test_unstorable_joblog_values_reject_the_record_alone(
        self, attributes: dict[str, Any]
    ) -> None:
        mapped = one(record(attributes=attributes), record("kept"))
        assert [e.message for e in mapped.events] == ["kept"]
        assert len(mapped.rejected) == 1
        assert "joblog." in mapped.rejected[0]


class TestEventFields:
    @pytest.mark.parametrize(
        ("number", "text", "level"),
        [
            (1, "", "DEBUG"),
            (5, "", "DEBUG"),
            (9, "", "INFO"),
            (13, "", "WARN"),
            (17, "", "ERROR"),
            (21, "", "ERROR"),
            (0, "warning", "WARN"),
            (0, "notice", "INFO"),
            (0, "", "INFO"),
            (99, "error", "ERROR"),
        ],
    )
    def test_level_from_severity(self, number: int, text: str, level: str) -> None:
        mapped = one(record(severity_number=number, severity_text=text))  # type: ignore[arg-type]
        assert mapped.events[0].level == level

    def test_structured_body_is_json_text(self) -> None:
        event = one(record({"vm": "vm42", "disks": [1, 2]})).events[0]
        assert json.loads(event.message) == {"vm": "vm42", "disks": [1, 2]}

    def test_nul_in_body_and_attributes_becomes_replacement(self) -> None:
        event = one(record("a\x00b", attributes={"k\x00": "v\x00"})).events[0]
        assert event.message == "a\ufffdb"
        assert event.attrs is not None
        assert "\x00" not in event.attrs
        assert json.loads(event.attrs)["k\ufffd"] == "v\ufffd"

    def test_long_body_is_cut_with_a_marker(self) -> None:
        event = one(record("x" * 20_000)).events[0]
        assert "[truncated 4000 characters]" in event.message

    def test_time_in_microseconds_then_observed_then_now(self) -> None:
        nanos = 1_769_860_800_123_456_789
        timed = one(
            record(time_unix_nano=nanos),
            record(observed_time_unix_nano=nanos),
            record(),
        ).events
        expected = datetime(2026, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)
        assert [e.ts for e in timed] == [expected, expected, NOW]

    def test_the_largest_time_is_a_storable_date(self) -> None:
        event = one(record(time_unix_nano=2**64 - 1)).events[0]
        assert event.ts.year == 2554

    def test_trace_and_span_ids_as_lowercase_hex(self) -> None:
        event = one(record(trace_id=TRACE, span_id=SPAN)).events[0]
        assert (event.trace_id, event.span_id) == (TRACE.hex(), SPAN.hex())

    def test_all_zero_ids_are_absent(self) -> None:
        event = one(record(trace_id=bytes(16), span_id=bytes(8))).events[0]
        assert (event.trace_id, event.span_id) == (None, None)

    def test_a_span_without_its_trace_is_rejected(self) -> None:
        assert one(record(span_id=SPAN)).rejected == ["a spanId needs its traceId"]

    @pytest.mark.parametrize("field", ["trace_id", "span_id"])
    def test_ids_of_the_wrong_length_make_the_request_undecodable(self, field: str) -> None:
        with pytest.raises(otlp.Undecodable, match="must be"):
            one(record(**{field: b"\x01\x02\x03"}))

    def test_attrs_keep_attributes_service_scope_and_severity_text(self) -> None:
        event = one(
            record(
                attributes={"vm": "vm42", "n": 3, "ok": True, "raw": b"\x01", "joblog.job_id": "u"},
                severity_text="Warning",
            ),
            resource={"service.name": "failover-service", "host.name": "h1"},
            scope="failover",
        ).events[0]
        assert event.attrs is not None
        assert json.loads(event.attrs) == {
            "vm": "vm42",
            "n": 3,
            "ok": True,
            "raw": "AQ==",
            "service.name": "failover-service",
            "otel.scope": "failover",
            "severity_text": "Warning",
        }

    def test_oversized_attributes_reject_the_record(self) -> None:
        mapped = one(record(attributes={"big": "x" * 70_000}))
        assert mapped.events == []
        assert "64" in mapped.rejected[0] or "bytes" in mapped.rejected[0]


class TestDecode:
    def test_protobuf(self) -> None:
        body = request(record("hi", trace_id=TRACE)).SerializeToString()
        decoded = otlp.decode(body, "protobuf")
        assert decoded.resource_logs[0].scope_logs[0].log_records[0].trace_id == TRACE

    def test_json_with_hex_ids_and_string_nanos(self) -> None:
        body = json.dumps(
            {
                "resourceLogs": [
                    {
                        "scopeLogs": [
                            {
                                "logRecords": [
                                    {
                                        "timeUnixNano": "1769860800123456789",
                                        "traceId": TRACE.hex().upper(),
                                        "spanId": SPAN.hex(),
                                        "body": {"stringValue": "hi"},
                                        "unknownField": 1,
                                    }
                                ]
                            }
                        ]
                    }
                ]
            }
        ).encode()
        decoded = otlp.decode(body, "json")
        log = decoded.resource_logs[0].scope_logs[0].log_records[0]
        assert (log.trace_id, log.span_id, log.time_unix_nano) == (TRACE, SPAN, 1769860800123456789)

    @pytest.mark.parametrize(
        "body",
        [
            b"",
            b"[]",
            b"not json",
            b'{"resourceLogs": 5}',
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}',
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "-1"}]}]}]}',
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "1e30"}]}]}]}',
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": '
            b'"18446744073709551616"}]}]}]}',
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": '
            b'"\\ud800"}}]}]}]}',
            b'{"a": "\xff"}',
            b"[" * 100_000 + b"]" * 100_000,
        ],
    )
    def test_undecodable_json(self, body: bytes) -> None:
        with pytest.raises(otlp.Undecodable):
            otlp.decode(body, "json")

    def test_deeply_nested_json_values(self) -> None:
        nested: dict[str, Any] = {"stringValue": "leaf"}
        for _ in range(200):
            nested = {"arrayValue": {"values": [nested]}}
        document = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": nested}]}]}]}
        with pytest.raises(otlp.Undecodable):
            otlp.decode(json.dumps(document).encode(), "json")

    @pytest.mark.parametrize("cut", [1, 5, 20])
    def test_truncated_protobuf(self, cut: int) -> None:
        body = request(record("hello " * 10, attributes={"vm": "vm42"})).SerializeToString()
        with pytest.raises(otlp.Undecodable):
            otlp.decode(body[:-cut], "protobuf")

    def test_invalid_utf8_in_a_protobuf_string(self) -> None:
        body = (
            request(record("PLACEHOLDER")).SerializeToString().replace(b"PLACEHOLDER", b"\xff" * 11)
        )
        with pytest.raises(otlp.Undecodable):
            otlp.decode(body, "protobuf")


class TestDecompress:
    def test_gzip_and_deflate(self) -> None:
        assert otlp.decompress(gzip.compress(b"abc"), "gzip", 100) == b"abc"
        assert otlp.decompress(zlib.compress(b"abc"), "deflate", 100) == b"abc"
        assert otlp.decompress(b"abc", None, 100) == b"abc"

    def test_several_gzip_members(self) -> None:
        body = gzip.compress(b"ab") + gzip.compress(b"cd")
        assert otlp.decompress(body, "gzip", 100) == b"abcd"

    def test_a_bomb_stops_at_the_limit(self) -> None:
        with pytest.raises(otlp.BodyTooLarge):
            otlp.decompress(gzip.compress(b"\x00" * 10_000_000), "gzip", 1_000_000)

    @pytest.mark.parametrize("body", [b"not gzip", gzip.compress(b"abc" * 100)[:-10]])
    def test_invalid_or_cut_gzip(self, body: bytes) -> None:
        with pytest.raises(otlp.Undecodable):
            otlp.decompress(body, "gzip", 100_000)

    def test_unknown_encoding(self) -> None:
        with pytest.raises(otlp.UnsupportedEncoding):
            otlp.decompress(b"abc", "br", 100)


class TestAnswers:
    def test_full_success_is_an_empty_response(self) -> None:
        assert otlp.encode_response([], "protobuf") == b""
        assert otlp.encode_response([], "json") == b"{}"

    def test_partial_success_counts_and_names_the_reasons(self) -> None:
        body = otlp.encode_response(["no job 'x'", "no job 'x'", "bad step"], "protobuf")
        response = ExportLogsServiceResponse.FromString(body)
        assert response.partial_success.rejected_log_records == 3
        assert "no job 'x' (2)" in response.partial_success.error_message
        as_json = json.loads(otlp.encode_response(["bad"], "json"))
        assert as_json["partialSuccess"]["rejectedLogRecords"] == "1"

    def test_status_as_protobuf(self) -> None:
        from google.rpc.status_pb2 import Status  # shipped with the OTLP exporter

        status = Status.FromString(otlp.encode_status(3, "bad body é" * 20, "protobuf"))
        assert (status.code, status.message) == (3, "bad body é" * 20)
