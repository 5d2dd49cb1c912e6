"""A simulated failover workload for ``joblog demo`` and the browser tests.

Live and test failovers of made-up VMs run through the real steps of the system the seed
describes, with compressed durations, realistic log messages and attrs, a volume-attachment
child job per disk, rollbacks of test failovers and the occasional failure. Everything goes
through a real :class:`joblog.Tracker` and plain ``logging`` calls.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from joblog.demo.legacy import insert_failover_job
from joblog.demo.scenario import OWNERS, VM_NAMES, FailoverKind, Scenario, external_id
from joblog.demo.steps import (
    ATTACH_STEPS,
    FAILOVER_STEPS,
    LIVE_ONLY,
    ROLLBACK_STEPS,
    FailoverSteps,
    RollbackSteps,
)
from joblog.handles import JobCancelled, JobHandle
from joblog.model import JobStatus
from joblog.tracker import Tracker

__all__ = [
    "ATTACH_STEPS",
    "FAILOVER_STEPS",
    "ROLLBACK_STEPS",
    "Scenario",
    "Workload",
    "external_id",
    "insert_failover_job",
    "insert_legacy_rows",
]

log = logging.getLogger("joblog.demo.failover")


class Workload:
    """Runs simulated jobs on ``tracker``; ``speed`` 10 runs ten times faster than speed 1.

    ``on_step(job, step_name)`` is called once each step has started (tests pause there);
    ``stop`` ends the workload: running jobs are cancelled at their next pause.
    """

    def __init__(
        self,
        tracker: Tracker,
        *,
        speed: float = 1.0,
        seed: int | None = None,
        failure_rate: float = 0.2,
        stop: threading.Event | None = None,
        on_step: Callable[[JobHandle, str], None] | None = None,
    ) -> None:
        if not speed > 0:
            raise ValueError("speed must be positive")
        self.tracker = tracker
        self.speed = speed
        self.rng = random.Random(seed)
        self.failure_rate = failure_rate
        self.stop = stop if stop is not None else threading.Event()
        self.on_step = on_step
        self._rng_lock = threading.Lock()
        # The demo's loggers emit everything; the tracker's handler decides what is stored.
        demo_logger = logging.getLogger("joblog.demo")
        if demo_logger.level == logging.NOTSET:
            demo_logger.setLevel(logging.DEBUG)
        self.threads: list[threading.Thread] = []

    # -- pacing ----------------------------------------------------------------------------

    def pause(self, seconds: float) -> None:
        """Sleep ``seconds / speed``; a stopped workload cancels the job instead."""
        if self.stop.wait(max(seconds, 0.0) / self.speed):
            raise JobCancelled("the demo was stopped")

    def _paced(self, step_seconds: float, parts: int) -> list[float]:
        with self._rng_lock:
            jitter = [self.rng.uniform(0.7, 1.3) for _ in range(parts)]
        return [step_seconds * j / parts for j in jitter]

    # -- scenarios -------------------------------------------------------------------------

    def next_scenario(self) -> Scenario:
        with self._rng_lock:
            rng = self.rng
            kind: FailoverKind = "live" if rng.random() < 0.5 else "test"
            fail_at = None
            if rng.random() < self.failure_rate:
                candidates = [s for s, _w in FAILOVER_STEPS if kind == "live" or s not in LIVE_ONLY]
                fail_at = rng.choice(candidates[:-1])
            return Scenario(
                vm=rng.choice(VM_NAMES),
                kind=kind,
                fail_at=fail_at,
                disks=rng.choice((1, 2, 2, 3)),
                unix_time=int(time.time()),
                seed=rng.randrange(1 << 30),
            )

    def run(
        self, jobs: int | None = None, concurrency: int = 3, first: Scenario | None = None
    ) -> None:
        """Run ``jobs`` failovers (forever when None), ``concurrency`` at a time.

        ``first`` is the first worker's first scenario (the demo prints its ID). Successful
        test failovers are followed by their rollback (not counted in ``jobs``).
        """
        budget = threading.Semaphore(jobs) if jobs is not None else None

        def worker(index: int) -> None:
            self.stop.wait(index * 3.0 / self.speed)  # stagger so jobs are at different stages
            scenario = first if index == 0 else None
            while not self.stop.is_set():
                if budget is not None and not budget.acquire(blocking=False):
                    return
                self.run_scenario(scenario or self.next_scenario())
                scenario = None
                self.stop.wait(self._between())

        self.threads = [
            threading.Thread(target=worker, args=(i,), name=f"demo-worker-{i}", daemon=True)
            for i in range(max(1, concurrency))
        ]
        for thread in self.threads:
            thread.start()
        self.wait()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the workers of :meth:`run`; False if some still run after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self.threads:
            while thread.is_alive():
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                thread.join(0.2)
        return True

    def _between(self) -> float:
        with self._rng_lock:
            return self.rng.uniform(1.0, 4.0) / self.speed

    def run_scenario(self, scenario: Scenario) -> JobStatus:
        """A failover, then for a successful test failover its rollback."""
        status = self.failover(scenario)
        if status is JobStatus.COMPLETED and scenario.kind == "test" and not self.stop.is_set():
            self.stop.wait(self._between())
            self.rollback(scenario)
        return status

    # -- jobs ------------------------------------------------------------------------------

    def failover(self, scenario: Scenario) -> JobStatus:
        """Run one failover job to its end; returns how it ended (failures are not raised)."""
        rng = random.Random(scenario.seed)
        steps = [(name, weight) for name, weight in FAILOVER_STEPS]
        job_handle: JobHandle | None = None
        try:
            with self.tracker.job(
                "failover",
                f"{scenario.kind}-failover",
                external_job_id=scenario.external_job_id,
                context_id=f"vm-{rng.randrange(1000, 9999)}",
                owner=rng.choice(OWNERS),
                steps=steps,
                metadata={"vm_name": scenario.vm, "failover_type": scenario.kind},
            ) as job:
                job_handle = job
                log.info(
                    "Failover job started: %s",
                    scenario.external_job_id,
                    extra={"vm_name": scenario.vm, "failover_type": scenario.kind},
                )
                FailoverSteps(self, job, scenario, rng).run()
        except JobCancelled:
            pass
        except Exception:  # the job recorded its failure; the demo goes on
            pass
        return job_handle.status if job_handle is not None else JobStatus.FAILED

    def rollback(self, scenario: Scenario) -> JobStatus:
        """Clean up after a test failover: ``rollback-test-failover-<vm>-<unix time>``."""
        rng = random.Random(scenario.seed + 1)
        job_handle: JobHandle | None = None
        try:
            with self.tracker.job(
                "cleanup",
                "rollback-test-failover",
                external_job_id=f"rollback-test-failover-{scenario.vm}-{int(time.time())}",
                context_id=scenario.vm,
                owner="gui:alice@ops",
                steps=list(ROLLBACK_STEPS),
                metadata={"vm_name": scenario.vm, "test_failover": scenario.external_job_id},
            ) as job:
                job_handle = job
                log.info("Rollback of test failover %s started", scenario.external_job_id)
                RollbackSteps(self, job, scenario, rng).run()
        except Exception:
            pass
        return job_handle.status if job_handle is not None else JobStatus.FAILED


def insert_legacy_rows(tracker: Tracker, now: datetime | None = None) -> list[str]:
    """A few rows in the older system's failover_jobs table; returns their job IDs."""
    now = now or datetime.now(UTC)
    base = int(now.timestamp())
    rows = [
        ("fileserver-02", "live", "completed", None, 3 * 3600),
        ("ad-dc01", "test", "failed", "snapshot quota exceeded for account ops (limit 50)", 7200),
        ("erp-app-03", "live", "creating_vm", None, 300),
    ]
    ids = []
    for vm, kind, status, error, age in rows:
        job_id = external_id(kind, vm, base - age)
        created = now - timedelta(seconds=age)
        finished = created + timedelta(minutes=14) if status in ("completed", "failed") else None
        insert_failover_job(
            tracker.store,
            job_id=job_id,
            job_type=kind,
            status=status,
            vm_id=f"vm-{sum(map(ord, vm)) * 7 % 9000 + 1000}",
            source_vm_name=vm,
            error_message=error,
            created_at=created,
            updated_at=finished or now,
            completed_at=finished,
        )
        ids.append(job_id)
    return ids
