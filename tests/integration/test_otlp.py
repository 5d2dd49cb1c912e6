"""``POST /v1/logs`` against a live ``joblog serve`` app, fed by the official Python OTel SDK's
OTLP/HTTP log exporter (protobuf, gzip) and by OTLP JSON posted as the specification
writes it; hostile bodies; a request sent again is stored once, on all three backends."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from joblog.api.app import create_app
from joblog.api.settings import ApiSettings
from joblog.storage.schema import log_events
from tests.support.api import LiveServer
from tests.unit.test_otlp import pairs, record, request

WRITE = "otlp-write-token-0123456789ab"
READ = "otlp-read-token-0123456789abc"
AUTH = {"Authorization": f"Bearer {WRITE}"}
PROTOBUF = {**AUTH, "Content-Type": "application/x-protobuf"}
JSON = {**AUTH, "Content-Type": "application/json"}
tracer = TracerProvider().get_tracer("joblog-otlp-tests")


@pytest.fixture
def server(database_url: str) -> Iterator[LiveServer]:
    settings = ApiSettings(write_tokens=(WRITE,), read_tokens=(READ,))
    with LiveServer(create_app(database_url, settings=settings)) as live:
        yield live


@pytest.fixture
def local_server(tmp_path: Path) -> Iterator[LiveServer]:
    """For answers decided before the database is reached: SQLite is enough."""
    settings = ApiSettings(write_tokens=(WRITE,), read_tokens=(READ,))
    with LiveServer(create_app(f"sqlite:///{tmp_path / 'otlp.db'}", settings=settings)) as live:
        yield live


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60, headers=AUTH) as client:
        yield client


def start_job(http: httpx.Client, external_id: str, steps: Sequence[str] = ()) -> str:
    body = {"job_type": "failover", "operation": "unified", "external_job_id": external_id}
    response = http.post("/api/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    for name in steps:
        assert http.post(f"/api/v1/jobs/{external_id}/steps", json={"name": name}).is_success
    return str(response.json()["id"])


def logs(http: httpx.Client, any_id: str, **query: Any) -> list[dict[str, Any]]:
    response = http.get(f"/api/v1/jobs/{any_id}/logs", params={"limit": 1000, **query})
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def trace_events(http: httpx.Client, trace_id: str) -> list[dict[str, Any]]:
    response = http.get(f"/api/v1/traces/{trace_id}/events", params={"limit": 1000})
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


class RecordingExporter(OTLPLogExporter):
    """The SDK's exporter, keeping what each export returned."""

    results: list[LogRecordExportResult]

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        result = super().export(batch)
        self.results.append(result)
        return result


def sdk_provider(server: LiveServer, resource: dict[str, Any]) -> tuple[LoggerProvider, Any]:
    exporter = RecordingExporter(
        endpoint=f"{server.url}/v1/logs", headers=AUTH, compression=Compression.Gzip, timeout=30
    )
    exporter.results = []
    provider = LoggerProvider(resource=Resource.create(resource))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return provider, exporter


def post_pb(http: httpx.Client, message: ExportLogsServiceRequest, **kwargs: Any) -> httpx.Response:
    return http.post("/v1/logs", content=message.SerializeToString(), headers=PROTOBUF, **kwargs)


class TestSdkExporter:
    def test_records_join_the_job_and_step_their_resource_and_attributes_name(
        self, server: LiveServer, http: httpx.Client
    ) -> None:
        job_id = start_job(http, "gui-1", steps=["snapshot"])
        provider, exporter = sdk_provider(
            server, {"service.name": "failover-service", "joblog.external_job_id": "gui-1"}
        )
        logger = provider.get_logger("failover")
        with tracer.start_as_current_span("snapshot") as span:
            logger.emit(
                severity_number=SeverityNumber.WARN,
                body="snapshot slow",
                attributes={"joblog.step": 1, "vm": "vm42"},
            )
        logger.emit(severity_number=SeverityNumber.ERROR, body={"disks": [1, 2]})
        provider.shutdown()
        assert exporter.results == [LogRecordExportResult.SUCCESS] * 2
        first, second = logs(http, "gui-1")
        context = span.get_span_context()
        assert (first["job_id"], first["external_job_id"]) == (job_id, "gui-1")
        assert first["step_id"] is not None and second["step_id"] is None
        assert (first["level"], first["message"]) == ("WARN", "snapshot slow")
        assert (first["trace_id"], first["span_id"]) == (
            f"{context.trace_id:032x}",
            f"{context.span_id:016x}",
        )
        assert first["attrs"] == {
            "vm": "vm42",
            "service.name": "failover-service",
            "otel.scope": "failover",
        }
        assert (second["level"], json.loads(second["message"])) == ("ERROR", {"disks": [1, 2]})

    def test_records_naming_no_job_are_kept_and_found_by_trace(
        self, server: LiveServer, http: httpx.Client
    ) -> None:
        provider, exporter = sdk_provider(server, {"service.name": "edge"})
        with tracer.start_as_current_span("request") as span:
            provider.get_logger("edge").emit(body="no job here")
        provider.shutdown()
        assert exporter.results == [LogRecordExportResult.SUCCESS]
        (event,) = trace_events(http, f"{span.get_span_context().trace_id:032x}")
        assert (event["job_id"], event["external_job_id"], event["message"]) == (
            None,
            None,
            "no job here",
        )

    def test_without_a_write_token_the_exporter_fails(self, server: LiveServer) -> None:
        exporter = OTLPLogExporter(
            endpoint=f"{server.url}/v1/logs", headers={"Authorization": f"Bearer {READ}"}
        )
        provider = LoggerProvider()
        results: list[LogRecordExportResult] = []
        original = exporter.export
        exporter.export = lambda batch: results.append(original(batch)) or results[-1]  # type: ignore[method-assign]
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        provider.get_logger("x").emit(body="refused")
        provider.shutdown()
        assert results == [LogRecordExportResult.FAILURE]


class TestAnswers:
    def test_unknown_job_and_step_are_rejected_alone(self, http: httpx.Client) -> None:
        start_job(http, "gui-1", steps=["snapshot"])
        message = request(
            record("kept", attributes={"joblog.step": 1}),
            record(
                "no such step", attributes={"joblog.external_job_id": "gui-1", "joblog.step": 9}
            ),
            record("no such job", attributes={"joblog.job_id": "not-a-job"}),
            record("also kept"),
            resource={"joblog.external_job_id": "gui-1"},
        )
        response = post_pb(http, message)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-protobuf"
        partial = ExportLogsServiceResponse.FromString(response.content).partial_success
        assert partial.rejected_log_records == 2
        assert "no step 9" in partial.error_message
        assert "not-a-job" in partial.error_message
        assert [e["message"] for e in logs(http, "gui-1")] == ["kept", "also kept"]

    def test_a_request_sent_again_is_stored_once(self, http: httpx.Client) -> None:
        message = request(
            record("once"), record("twice?"), resource={"joblog.external_job_id": "e1"}
        )
        for _ in range(3):
            assert post_pb(http, message).status_code == 200
        assert [e["message"] for e in logs(http, "e1")] == ["once", "twice?"]

    def test_the_same_request_from_eight_threads_at_once_is_stored_once(
        self, server: LiveServer
    ) -> None:
        body = gzip.compress(
            request(
                *(record(f"line {n}") for n in range(50)), resource={"joblog.external_job_id": "e2"}
            ).SerializeToString()
        )
        barrier = threading.Barrier(8)
        statuses: list[int] = []

        def send() -> None:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                barrier.wait()
                response = client.post(
                    "/v1/logs", content=body, headers={**PROTOBUF, "Content-Encoding": "gzip"}
                )
                statuses.append(response.status_code)

        threads = [threading.Thread(target=send) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert statuses == [200] * 8
        with httpx.Client(base_url=server.url, timeout=60, headers=AUTH) as http:
            assert len(logs(http, "e2")) == 50

    def test_otlp_json_as_the_specification_writes_it(self, http: httpx.Client) -> None:
        document = {
            "resourceLogs": [
                {
                    "resource": {
                        "attributes": [
                            {"key": "service.name", "value": {"stringValue": "go-svc"}},
                            {"key": "joblog.external_job_id", "value": {"stringValue": "j1"}},
                        ]
                    },
                    "scopeLogs": [
                        {
                            "scope": {"name": "otelslog"},
                            "logRecords": [
                                {
                                    "timeUnixNano": "1769860800123456789",
                                    "severityNumber": 13,
                                    "severityText": "WARN",
                                    "body": {"stringValue": "disk \u0000 slow"},
                                    "attributes": [
                                        {"key": "disk", "value": {"intValue": "3"}},
                                        {"key": "nul\u0000key", "value": {"stringValue": "v"}},
                                    ],
                                    "traceId": "4BF92F3577B34DA6A3CE929D0E0E4736",
                                    "spanId": "00f067aa0ba902b7",
                                }
                            ],
                        }
                    ],
                }
            ]
        }
        response = http.post("/v1/logs", content=json.dumps(document), headers=JSON)
        assert response.status_code == 200, response.text
        assert response.json() == {}
        (event,) = logs(http, "j1")
        assert (event["level"], event["message"], event["ts"]) == (
            "WARN",
            "disk \ufffd slow",
            "2026-01-31T12:00:00.123456Z",
        )
        assert (event["trace_id"], event["span_id"]) == (
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "00f067aa0ba902b7",
        )
        assert event["attrs"]["disk"] == 3
        assert event["attrs"]["nul\ufffdkey"] == "v"

    def test_json_partial_success(self, http: httpx.Client) -> None:
        document = {
            "resourceLogs": [
                {
                    "scopeLogs": [
                        {
                            "logRecords": [
                                {
                                    "body": {"stringValue": "x"},
                                    "attributes": [
                                        {"key": "joblog.job_id", "value": {"stringValue": "nope"}}
                                    ],
                                }
                            ]
                        }
                    ]
                }
            ]
        }
        response = http.post("/v1/logs", json=document, headers=JSON)
        assert response.status_code == 200
        assert response.json()["partialSuccess"]["rejectedLogRecords"] == "1"

    @pytest.mark.slow
    def test_a_hundred_thousand_records_in_one_request(
        self, http: httpx.Client, database_url: str
    ) -> None:
        message = ExportLogsServiceRequest()
        logs_ = message.resource_logs.add()
        logs_.resource.attributes.extend(pairs({"joblog.external_job_id": "big"}))
        scope = logs_.scope_logs.add()
        scope.log_records.extend(LogRecord(time_unix_nano=n + 1) for n in range(100_000))
        body = gzip.compress(message.SerializeToString())
        headers = {**PROTOBUF, "Content-Encoding": "gzip"}
        for _ in range(2):  # sent again: stored once
            response = http.post("/v1/logs", content=body, headers=headers)
            assert response.status_code == 200, response.text
        first = http.get("/api/v1/jobs/big/logs", params={"limit": 1}).json()
        assert first["events"][0]["ts"] == "1970-01-01T00:00:00.000000Z"
        engine = sa.create_engine(database_url)
        try:
            with engine.connect() as conn:
                stored = conn.execute(sa.select(sa.func.count()).select_from(log_events)).scalar()
        finally:
            engine.dispose()
        assert stored == 100_000


class TestHostileBodies:
    @pytest.mark.parametrize(
        ("content", "headers", "status"),
        [
            (request(record("hi")).SerializeToString()[:-3], PROTOBUF, 400),
            (b"\xff\xfe garbage", PROTOBUF, 400),
            (b'{"resourceLogs": [', JSON, 400),
            (b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"xyz"}]}]}]}', JSON, 400),
            (b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"abcd"}]}]}]}', JSON, 400),
            (b'{"x": "\\ud800"}', JSON, 400),
            (b"[" * 50_000 + b"]" * 50_000, JSON, 400),
            (b"{}", {**AUTH, "Content-Type": "text/plain"}, 415),
            (b"{}", AUTH, 415),
            (b"{}", {**JSON, "Content-Encoding": "br"}, 415),
            (b"not gzip", {**JSON, "Content-Encoding": "gzip"}, 400),
            (gzip.compress(b"\x00" * 8_000_000), {**PROTOBUF, "Content-Encoding": "gzip"}, 413),
            (b"{}", {"Content-Type": "application/json"}, 401),
            (b"{}", {"Content-Type": "application/json", "Authorization": f"Bearer {READ}"}, 403),
        ],
    )
    def test_refused_clearly(
        self, local_server: LiveServer, content: bytes, headers: dict[str, str], status: int
    ) -> None:
        with httpx.Client(base_url=local_server.url, timeout=60) as client:
            response = client.post("/v1/logs", content=content, headers=headers)
        assert response.status_code == status, response.text
        if status == 400 and headers.get("Content-Type") == "application/json":
            assert response.json()["code"] == 3
        if status == 400 and headers.get("Content-Type") == "application/x-protobuf":
            from google.rpc.status_pb2 import Status

            assert Status.FromString(response.content).code == 3

    def test_over_the_body_limit_is_a_413(self, tmp_path: Path) -> None:
        settings = ApiSettings(write_tokens=(WRITE,), max_body_bytes=4096)
        url = f"sqlite:///{tmp_path / 'limit.db'}"
        with (
            LiveServer(create_app(url, settings=settings)) as live,
            httpx.Client(base_url=live.url, timeout=60) as client,
        ):
            big = request(record("x" * 10_000)).SerializeToString()
            assert client.post("/v1/logs", content=big, headers=PROTOBUF).status_code == 413
            inflating = gzip.compress(big)
            headers = {**PROTOBUF, "Content-Encoding": "gzip"}
            assert len(inflating) < 4096
            assert client.post("/v1/logs", content=inflating, headers=headers).status_code == 413

    def test_nul_in_job_ids_rejects_the_record_and_stores_the_rest(
        self, http: httpx.Client
    ) -> None:
        message = request(
            record("bad", attributes={"joblog.external_job_id": "a\x00b"}),
            record("good \x00", attributes={"joblog.external_job_id": "ok-1"}),
        )
        response = post_pb(http, message)
        partial = ExportLogsServiceResponse.FromString(response.content).partial_success
        assert partial.rejected_log_records == 1
        assert [e["message"] for e in logs(http, "ok-1")] == ["good \ufffd"]

    def test_the_latest_time_protobuf_can_carry_is_stored(self, http: httpx.Client) -> None:
        message = request(
            record("late", time_unix_nano=2**64 - 1), resource={"joblog.external_job_id": "t1"}
        )
        assert post_pb(http, message).status_code == 200
        assert logs(http, "t1")[0]["ts"].startswith("2554-07-21T23:34:33")
