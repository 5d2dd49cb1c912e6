"""``joblog bench scale``: serving many pollers and streams, and an old long job.

Three parts, each its own module, run in one command and saved as one section
(``benchmarks/.data/scale.json``, rendered into RESULTS.md):

* ``status``  (:mod:`joblog.bench.serving`): the status endpoint at 64 pollers on
  PostgreSQL and SQLite, with and without ``If-None-Match``, with 1 and 2 workers,
  beside a bare control app on the same uvicorn;
* ``streams`` (:mod:`joblog.bench.streams`): database round trips of idle streams on
  PostgreSQL and MariaDB; delivery latency to 1,000 streams over 2 servers (PostgreSQL);
* ``resolve`` (:mod:`joblog.bench.oldjob`): resolve() and a stream poll of an old long
  job under many newer events, on all three backends, with the plans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from joblog.bench.backends import BenchDatabase
from joblog.bench.oldjob import OldJobConfig, run_old_job
from joblog.bench.progress import Reporter
from joblog.bench.serving import StatusConfig, run_status
from joblog.bench.streams import StreamConfig, run_delivery, run_idle_streams

__all__ = ["PARTS", "ScaleConfig", "run_scale"]

PARTS = ("status", "streams", "resolve")


@dataclass
class ScaleConfig:
    parts: tuple[str, ...] = PARTS
    status: StatusConfig = field(default_factory=StatusConfig)
    streams: StreamConfig = field(default_factory=StreamConfig)
    old_job: OldJobConfig = field(default_factory=OldJobConfig)

    @classmethod
    def quick(cls, parts: tuple[str, ...] = PARTS) -> ScaleConfig:
        """Small sizes and short runs: a smoke test of the whole command."""
        return cls(
            parts=parts,
            status=StatusConfig(events=20_000, duration_s=2.0),
            streams=StreamConfig(
                idle_streams=20, idle_s=3.0, delivery_streams=100, delivery_jobs=20, delivery_s=3.0
            ),
            old_job=OldJobConfig(old_events=2_000, newer_events=20_000, samples=200),
        )


def run_scale(
    dbs: dict[str, BenchDatabase], config: ScaleConfig, reporter: Reporter
) -> dict[str, Any]:
    """``dbs`` by backend name (each part takes the backends it needs)."""
    data: dict[str, Any] = {}
    if "status" in config.parts:
        chosen = [dbs[b] for b in ("postgresql", "sqlite") if b in dbs]
        data["status"] = run_status(chosen, config.status, reporter)
    if "streams" in config.parts:
        servers = [dbs[b] for b in ("postgresql", "mariadb") if b in dbs]
        data["idle_streams"] = run_idle_streams(servers, config.streams, reporter)
        if "postgresql" in dbs:
            data["delivery"] = run_delivery(dbs["postgresql"], config.streams, reporter)
    if "resolve" in config.parts:
        chosen = [dbs[b] for b in ("sqlite", "postgresql", "mariadb") if b in dbs]
        data["old_job"] = run_old_job(chosen, config.old_job, reporter)
    status, old = config.status, config.old_job
    data["description"] = (
        f"status: {status.events:,} log events, {status.pollers} wrk connections, "
        f"{status.duration_s:g} s per run; idle streams: {config.streams.idle_streams} "
        f"streams counted {config.streams.idle_s:g} s; delivery: "
        f"{config.streams.delivery_streams} streams over {config.streams.delivery_servers} "
        f"servers on {config.streams.delivery_jobs} jobs; old job: {old.old_events:,} "
        f"events, then {old.newer_events:,} newer."
    )
    return data
