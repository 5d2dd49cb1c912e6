"""Caller-side cost of one logging call inside a job, per way of plugging joblog in.

    python benchmarks/logging_sinks.py [--url sqlite:///bench-sinks.db] [--rounds 40]

Each kind is measured against its bare control in the same run, burst by burst (the
kinds alternate, so drift hits all alike; the writer finishes each burst before the
next): stdlib logging to a ``NullHandler`` is the control of the handler that
``install_logging`` adds and of the one ``logging.config.dictConfig`` builds from a URL;
loguru to a sink that does nothing is the control of ``joblog.loguru_sink``. The figure
is the ratio to the control. Only the public API is used.
"""

from __future__ import annotations

import argparse
import logging
import logging.config
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import joblog

BURST = 1000
MESSAGE = "copied block %d of disk %s"
LOGURU_MESSAGE = "copied block {} of disk {}"


def _logger(name: str) -> logging.Logger:
    log = logging.getLogger(name)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    for handler in list(log.handlers):
        log.removeHandler(handler)
    return log


def _burst(call: Callable[..., None], message: str) -> float:
    """Mean µs per call over one burst."""
    clock = time.perf_counter_ns
    start = clock()
    for n in range(BURST):
        call(message, n, "scsi0:0")
    return (clock() - start) / BURST / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="database URL (default: a new SQLite file)")
    parser.add_argument("--rounds", type=int, default=40, help="bursts of 1000 calls per kind")
    args = parser.parse_args()
    url = args.url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench-sinks.db'}"

    from loguru import logger

    logger.remove()
    null_log = _logger("bench.sinks.null")
    null_log.addHandler(logging.NullHandler())
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"joblog": {"class": "joblog.JobLogHandler", "url": url}},
            "loggers": {
                "bench.sinks.config": {"handlers": ["joblog"], "level": "DEBUG", "propagate": 0}
            },
        }
    )
    config_log = logging.getLogger("bench.sinks.config")
    tracker = joblog.Tracker.shared(url)
    installed_log = _logger("bench.sinks.installed")
    tracker.install_logging(installed_log)
    null_loguru = logger.bind(kind="null")
    joblog_loguru = logger.bind(kind="joblog")
    logger.add(lambda _message: None, filter=lambda r: r["extra"].get("kind") == "null")
    logger.add(joblog.loguru_sink(tracker), filter=lambda r: r["extra"].get("kind") == "joblog")

    kinds: dict[str, tuple[Callable[..., None], str]] = {
        "stdlib NullHandler (control)": (null_log.info, MESSAGE),
        "install_logging handler": (installed_log.info, MESSAGE),
        "dictConfig handler (url)": (config_log.info, MESSAGE),
        "loguru no-op sink (control)": (null_loguru.info, LOGURU_MESSAGE),
        "joblog.loguru_sink": (joblog_loguru.info, LOGURU_MESSAGE),
    }
    bursts: dict[str, list[float]] = {kind: [] for kind in kinds}
    with tracker.job("bench", "logging-sinks", external_job_id="bench-sinks"):
        for _round in range(args.rounds):
            for kind, (call, message) in kinds.items():
                bursts[kind].append(_burst(call, message))
                tracker.flush()
    tracker.flush()
    written = tracker.stats().written
    tracker.close()
    logger.remove()

    median = {kind: statistics.median(values) for kind, values in bursts.items()}
    controls = {
        "install_logging handler": "stdlib NullHandler (control)",
        "dictConfig handler (url)": "stdlib NullHandler (control)",
        "joblog.loguru_sink": "loguru no-op sink (control)",
    }
    print(f"{args.rounds * BURST} calls per kind, {written} events stored, {url}")
    print(f"{'kind':32} {'median µs/call':>15} {'× control':>10}")
    for kind, value in median.items():
        ratio = f"{value / median[controls[kind]]:.2f}" if kind in controls else ""
        print(f"{kind:32} {value:15.2f} {ratio:>10}")


if __name__ == "__main__":
    main()
