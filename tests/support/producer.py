"""A producer process for tests: ``python -m tests.support.producer MODE URL ...``.

Modes:
- ``crash URL N``: start a job, log N events, flush, print "flushed <job_id>", log more
  without flushing, and wait to be killed.
- ``threads URL THREADS EVENTS TAG``: run one job per thread, each logging EVENTS events;
  print a JSON line with the writer's stats and any error the application saw.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

import joblog


def crash(url: str, count: int) -> None:
    tracker = joblog.Tracker(url, heartbeat_interval=0.2, flush_interval=0.05)
    tracker.install_logging()
    log = logging.getLogger("producer")
    log.setLevel(logging.INFO)
    job = tracker.start_job("failover", "live", external_job_id=f"crash-{time.time_ns()}")
    step = job.start_step("final-sync")
    with job.activate(step):
        for i in range(count):
            log.info("flushed %d", i)
        tracker.flush()
        print(f"flushed {job.id}", flush=True)
        while True:
            log.info("after the flush")
            time.sleep(0.01)


def threads(url: str, thread_count: int, events: int, tag: str) -> None:
    tracker = joblog.Tracker(url, flush_interval=0.05)
    tracker.install_logging()
    log = logging.getLogger("producer")
    log.setLevel(logging.INFO)
    errors: list[str] = []

    def work(n: int) -> None:
        try:
            with tracker.job("failover", "live", external_job_id=f"{tag}-{n}") as job:
                for k in range(events):
                    if k % 100 == 0:
                        with job.step(f"chunk-{k // 100}"):
                            log.info("event %s-%d-%d", tag, n, k)
                    else:
                        log.info("event %s-%d-%d", tag, n, k)
        except Exception as error:  # reported to the test, which fails on any
            errors.append(repr(error))

    workers = [threading.Thread(target=work, args=(n,)) for n in range(thread_count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    tracker.close()
    stats = tracker.stats()
    print(
        json.dumps(
            {
                "errors": errors,
                "dropped": stats.dropped,
                "failed": stats.failed,
                "written": stats.written,
                "retries": stats.retries,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    mode, url, *rest = sys.argv[1:]
    if mode == "crash":
        crash(url, int(rest[0]))
    else:
        threads(url, int(rest[0]), int(rest[1]), rest[2])
