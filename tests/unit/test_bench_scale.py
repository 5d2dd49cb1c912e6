"""``joblog bench scale``'s pieces that can be checked without a load: the report's
verdicts and the counting proxy (no timings asserted)."""

from __future__ import annotations

import socket
import threading
from typing import Any

from joblog.bench.report import render
from joblog.bench.report_scale import scale_targets
from joblog.bench.streams import CountingProxy


def _status(app: str, variant: str, rps: float, cpu: float, p99_us: float) -> dict[str, Any]:
    return {
        "backend": "postgresql",
        "app": app,
        "workers": 2,
        "variant": variant,
        "rps": rps,
        "p50_us": p99_us / 2,
        "p99_us": p99_us,
        "cpu_us_per_request": cpu,
        "errors": 0,
        "body_bytes": 4800,
        "requests": int(rps * 8),
    }


def _scale() -> dict[str, Any]:
    return {
        "date": "today",
        "status": [
            _status("joblog", "followed", 1600, 300, 40_000),
            _status("joblog", "followed+INM", 1000, 500, 60_000),
            _status("control", "fixed body", 2000, 250, 30_000),
        ],
        "idle_streams": [
            {
                "backend": "postgresql",
                "streams": 100,
                "round_trips_per_s": 0.2,
                "per_100_streams": 0.2,
                "before_per_100": 2200,
                "fewer": 11000,
                "seconds": 10,
            }
        ],
        "delivery": {
            "backend": "postgresql",
            "streams": 1000,
            "servers": 2,
            "jobs": 200,
            "deliveries": 19_000,
            "expected": 20_000,
            "p50_ms": 100,
            "p99_ms": 500,
            "max_ms": 900,
        },
        "old_job": [],
    }


class TestScaleReport:
    def test_verdicts_follow_the_goals(self) -> None:
        rows = {row[0]: row[2] for row in scale_targets(_scale())}
        followed = "postgresql --workers 2, followed"
        assert rows[f"{followed}: CPU per request ≤ 1.5x control"] == "**met**"
        assert rows[f"{followed}: ≥ 1,500 req/s, p99 < 50 ms"] == "**met**"
        inm = "postgresql --workers 2, followed+INM"
        assert rows[f"{inm}: CPU per request ≤ 1.5x control"] == "**MISSED**"
        assert rows[f"{inm}: ≥ 1,500 req/s, p99 < 50 ms"] == "**MISSED**"

    def test_lost_deliveries_miss_the_goal(self) -> None:
        rows = [row for row in scale_targets(_scale()) if "streams over" in row[0]]
        assert rows[0][2] == "**MISSED**"

    def test_the_section_is_rendered(self) -> None:
        text = render({"scale": _scale()}, None)
        assert "## Scale: pollers, streams, an old long job" in text
        assert "| postgresql | control | 2 | fixed body |" in text


class TestCountingProxy:
    def test_counts_what_the_client_sends_and_relays_both_ways(self) -> None:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)

        def echo() -> None:
            connection, _ = server.accept()
            with connection:
                while data := connection.recv(1024):
                    connection.sendall(data)

        thread = threading.Thread(target=echo, daemon=True)
        thread.start()
        try:
            with CountingProxy("127.0.0.1", server.getsockname()[1]) as proxy:
                with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as client:
                    for word in (b"one", b"two", b"three"):
                        client.sendall(word)
                        assert client.recv(1024) == word
                assert proxy.messages == 3
        finally:
            server.close()
