"""Events per second through the OTLP receiver, against the ingest API and the bare ingest path.

    python benchmarks/otlp_ingest.py --url sqlite:///tmp/otlp-bench.db --batches 50 --size 500

Three ways to store the same ``--batches`` x ``--size`` log events of one job, measured in
one run on the same database, against a real uvicorn server on a free port:

* control: ``ProducerWrites.ingest_events`` called directly (no HTTP, no decoding);
* ``POST /api/v1/events``: the JSON ingest API;
* ``POST /v1/logs``: OTLP protobuf, gzip (what the SDK exporters send), and OTLP JSON.

Each line prints events/s and the ratio to the control. Every batch is new (no duplicates).
"""

from __future__ import annotations

import argparse
import gzip
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import uvicorn
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from joblog.api.app import create_app
from joblog.api.settings import ApiSettings
from joblog.storage.producer import IncomingEvent

TOKEN = "bench-write-token-0123456789abc"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def otlp_body(job: str, size: int, batch: int) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    logs = request.resource_logs.add()
    logs.resource.attributes.append(
        KeyValue(key="joblog.external_job_id", value=AnyValue(string_value=job))
    )
    scope = logs.scope_logs.add()
    now = time.time_ns()
    scope.log_records.extend(
        LogRecord(
            time_unix_nano=now + n,
            severity_number=9,
            body=AnyValue(string_value=f"batch {batch} line {n}"),
            attributes=[KeyValue(key="n", value=AnyValue(int_value=n))],
        )
        for n in range(size)
    )
    return request


def otlp_json(request: ExportLogsServiceRequest) -> bytes:
    from google.protobuf import json_format

    return json.dumps(json_format.MessageToDict(request)).encode()


def measure(name: str, batches: int, size: int, send: Callable[[int], None]) -> float:
    start = time.perf_counter()
    for batch in range(batches):
        send(batch)
    rate = batches * size / (time.perf_counter() - start)
    print(f"{name:<28} {rate:>10.0f} events/s", flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--size", type=int, default=500)
    args = parser.parse_args()
    app = create_app(args.url, settings=ApiSettings(write_tokens=(TOKEN,)))
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    job = f"bench-{uuid.uuid4().hex[:8]}"
    size, batches = args.size, args.batches
    try:
        with httpx.Client(base_url=base, headers=AUTH, timeout=120) as http:
            body = {"job_type": "bench", "operation": "otlp", "external_job_id": job}
            http.post("/api/v1/jobs", json=body).raise_for_status()
            producer = app.state.producer

            def control(batch: int) -> None:
                now = datetime.now(UTC)
                producer.ingest_events(
                    f"control-{job}-{batch}",
                    [
                        IncomingEvent("INFO", f"batch {batch} line {n}", now, external_job_id=job)
                        for n in range(size)
                    ],
                )

            def events_api(batch: int) -> None:
                events = [
                    {"external_job_id": job, "level": "INFO", "message": f"batch {batch} line {n}"}
                    for n in range(size)
                ]
                key = f"api-{job}-{batch}"
                http.post("/api/v1/events", json={"batch_key": key, "events": events})

            def otlp_protobuf_gzip(batch: int) -> None:
                payload = gzip.compress(otlp_body(job, size, batch).SerializeToString())
                headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
                http.post("/v1/logs", content=payload, headers=headers).raise_for_status()

            def otlp_json_body(batch: int) -> None:
                payload = otlp_json(otlp_body(job, size, batch))
                headers = {"Content-Type": "application/json"}
                http.post("/v1/logs", content=payload, headers=headers).raise_for_status()

            base_rate = measure("control: ingest_events", batches, size, control)
            for name, send in (
                ("POST /api/v1/events (JSON)", events_api),
                ("POST /v1/logs protobuf+gzip", otlp_protobuf_gzip),
                ("POST /v1/logs OTLP JSON", otlp_json_body),
            ):
                rate = measure(name, batches, size, send)
                print(f"{'':<28} {rate / base_rate:>10.2f} x control", flush=True)
    finally:
        server.should_exit = True
        thread.join(10)


if __name__ == "__main__":
    main()
