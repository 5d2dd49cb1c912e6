"""The ``scale`` section of RESULTS.md (``joblog bench scale``): targets and tables."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["scale_sections", "scale_targets"]

STATUS_RPS = 1500
STATUS_P99_MS = 50
CONTROL_RPS_RATIO = 0.67
CPU_RATIO = 1.5
FEWER = 50
DELIVERY_P50_MS = 250
DELIVERY_P99_MS = 1000
RESOLVE_P99_MS = 5


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**MISSED**"


def _ms(micros: float | None) -> str:
    return "-" if micros is None else f"{micros / 1000:.1f} ms"


def _control(status: list[dict[str, Any]], backend: str, workers: int) -> dict[str, Any] | None:
    return next(
        (
            r
            for r in status
            if r["backend"] == backend and r["workers"] == workers and r["app"] == "control"
        ),
        None,
    )


def scale_targets(scale: dict[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    status = scale.get("status", [])
    for r in status:
        if r["app"] != "joblog" or r["variant"] == "random":
            continue
        control = _control(status, r["backend"], r["workers"])
        if control is None:
            continue
        where = f"{r['backend']} --workers {r['workers']}, {r['variant']}"
        cpu = r["cpu_us_per_request"] / control["cpu_us_per_request"]
        rows.append(
            [
                f"{where}: CPU per request ≤ {CPU_RATIO}x control",
                f"{r['cpu_us_per_request']:.0f} µs vs {control['cpu_us_per_request']:.0f} µs "
                f"({cpu:.2f}x)",
                _verdict(cpu <= CPU_RATIO),
            ]
        )
        ratio = r["rps"] / control["rps"]
        rows.append(
            [
                f"{where}: req/s ≥ {CONTROL_RPS_RATIO}x control",
                f"{r['rps']:,.0f} vs {control['rps']:,.0f} ({ratio:.2f}x)",
                _verdict(ratio >= CONTROL_RPS_RATIO),
            ]
        )
        if r["backend"] == "postgresql" and r["workers"] == 2:
            rows.append(
                [
                    f"{where}: ≥ {STATUS_RPS:,} req/s, p99 < {STATUS_P99_MS} ms",
                    f"{r['rps']:,.0f} req/s, p99 {_ms(r['p99_us'])}",
                    _verdict(r["rps"] >= STATUS_RPS and r["p99_us"] < STATUS_P99_MS * 1000),
                ]
            )
    for r in scale.get("idle_streams", []):
        rows.append(
            [
                f"{r['backend']}: idle streams ≥ {FEWER}x fewer round trips than before",
                f"{r['per_100_streams']:.2f} per 100 streams/s vs {r['before_per_100']:,} "
                f"({r['fewer']:,.0f}x)",
                _verdict(r["fewer"] >= FEWER),
            ]
        )
    delivery = scale.get("delivery")
    if delivery and delivery.get("p50_ms") is not None:
        rows.append(
            [
                f"{delivery['streams']:,} streams over {delivery['servers']} servers: "
                f"p50 ≤ {DELIVERY_P50_MS} ms, p99 ≤ {DELIVERY_P99_MS} ms",
                f"p50 {delivery['p50_ms']:.0f} ms, p99 {delivery['p99_ms']:.0f} ms "
                f"({delivery['deliveries']:,} of {delivery['expected']:,} delivered)",
                _verdict(
                    delivery["p50_ms"] <= DELIVERY_P50_MS
                    and delivery["p99_ms"] <= DELIVERY_P99_MS
                    and delivery["deliveries"] >= delivery["expected"]
                ),
            ]
        )
    for r in scale.get("old_job", []):
        p99 = r["resolve_old"]["p99_us"]
        rows.append(
            [
                f"{r['backend']}: resolve() of an old long job p99 < {RESOLVE_P99_MS} ms "
                f"({r['newer_events']:,} newer events)",
                _ms(p99),
                _verdict(p99 < RESOLVE_P99_MS * 1000),
            ]
        )
    return rows


def scale_sections(scale: dict[str, Any]) -> list[str]:
    out = [
        "## Scale: pollers, streams, an old long job",
        "",
        f"Run: {scale['date']}. {scale.get('description', '')} Command: `joblog bench scale`.",
        "",
    ]
    status = scale.get("status", [])
    if status:
        out += [
            "Status endpoint (`GET /api/v1/jobs/<external id>`, wrk). `followed`: 64 jobs "
            "polled at random, as 64 GUIs each watching one; `+INM`: with the job's current "
            "ETag (304); `random`: 5,000 jobs (mostly summaries built afresh). The control "
            "is a bare FastAPI route returning a fixed body of the same size on the same "
            "uvicorn. CPU: the server processes' user+system time per request.",
            "",
        ]
        rows = [
            [
                r["backend"],
                r["app"],
                str(r["workers"]),
                r["variant"],
                f"{r['rps']:,.0f}",
                _ms(r["p50_us"]),
                _ms(r["p99_us"]),
                f"{r['cpu_us_per_request']:.0f} µs",
                f"{r['errors']:,}",
            ]
            for r in status
        ]
        out += _table(
            ["backend", "app", "workers", "load", "req/s", "p50", "p99", "CPU/request", "errors"],
            rows,
        )
    idle = scale.get("idle_streams", [])
    if idle:
        out += [
            "Idle streams: database round trips (client messages through a counting proxy) "
            "while streams are open on jobs nobody writes to; before: issue 13's measurement.",
            "",
        ]
        out += _table(
            ["backend", "streams", "round trips/s", "per 100 streams", "before", "fewer"],
            [
                [
                    r["backend"],
                    str(r["streams"]),
                    f"{r['round_trips_per_s']:.2f}",
                    f"{r['per_100_streams']:.2f}",
                    f"{r['before_per_100']:,}",
                    f"{r['fewer']:,.0f}x",
                ]
                for r in idle
            ],
        )
    delivery = scale.get("delivery")
    if delivery:
        out += _table(
            ["delivery", "streams", "servers", "jobs", "delivered", "p50", "p99", "max"],
            [
                [
                    delivery["backend"],
                    f"{delivery['streams']:,}",
                    str(delivery["servers"]),
                    str(delivery["jobs"]),
                    f"{delivery['deliveries']:,} / {delivery['expected']:,}",
                    f"{delivery['p50_ms']:.0f} ms" if delivery["p50_ms"] is not None else "-",
                    f"{delivery['p99_ms']:.0f} ms" if delivery["p99_ms"] is not None else "-",
                    f"{delivery['max_ms']:.0f} ms" if delivery["max_ms"] is not None else "-",
                ]
            ],
        )
    old = scale.get("old_job", [])
    if old:
        out += [
            "An old long job: its events first, then the newer events of ordinary jobs. "
            "resolve() of it and of random ordinary jobs; a stream poll of it (its state row "
            "and the events after its newest).",
            "",
        ]
        out += _table(
            [
                "backend",
                "old / newer events",
                "resolve() old p50 / p99",
                "others p50 / p99",
                "stream poll p50 / p99",
            ],
            [
                [
                    r["backend"],
                    f"{r['old_events']:,} / {r['newer_events']:,}",
                    f"{_ms(r['resolve_old']['p50_us'])} / {_ms(r['resolve_old']['p99_us'])}",
                    f"{_ms(r['resolve_others']['p50_us'])} / {_ms(r['resolve_others']['p99_us'])}",
                    f"{_ms(r['stream_poll_old']['p50_us'])} / "
                    f"{_ms(r['stream_poll_old']['p99_us'])}",
                ]
                for r in old
            ],
        )
        for r in old:
            out += [f"<details><summary>{r['backend']}: plans</summary>", "", "```"]
            for name, plan in r["plans"].items():
                out += [f"-- {name}", *plan]
            out += ["```", "", "</details>", ""]
    return out
