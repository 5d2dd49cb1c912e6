"""``joblog demo``: a database, the server and a simulated failover workload, in one command.

A newcomer runs it (``make demo``), opens the printed URL and watches failovers progress.
"""

from __future__ import annotations

import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

import click

from joblog.demo import Scenario, Workload, insert_legacy_rows
from joblog.exceptions import JobLogError
from joblog.tracker import Tracker
from joblog.web.server import BackgroundServer

__all__ = ["demo_command"]


def _stop_on_signals(stop: threading.Event) -> dict[int, Any]:
    """Ctrl-C or SIGTERM ends the demo cleanly; a second Ctrl-C stops at once.

    Returns the handlers it replaced (none off the main thread, where signals cannot be set).
    """

    def handle(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}


def _default_url() -> tuple[str, Path]:
    directory = Path(tempfile.mkdtemp(prefix="joblog-demo-"))
    return f"sqlite:///{directory / 'joblog.db'}", directory


@click.command("demo")
@click.option(
    "--url", default=None, help="Database URL (default: a new SQLite file in a temp dir)."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port; a taken port falls back to a free one.",
)
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Stop after N failovers.")
@click.option("--once", is_flag=True, help="Exit when the workload ends (instead of serving on).")
@click.option(
    "--speed",
    type=click.FloatRange(min=0.01, max=1000),
    default=1.0,
    show_default=True,
    help="Time factor: 2 runs the jobs twice as fast.",
)
@click.option("--concurrency", type=click.IntRange(1, 32), default=3, show_default=True)
@click.option("--seed", type=int, default=None, help="Random seed, for a repeatable workload.")
def demo_command(
    url: str | None,
    host: str,
    port: int,
    jobs: int | None,
    once: bool,
    speed: float,
    concurrency: int,
    seed: int | None,
) -> None:
    """Serve the dashboard on a database filled live by simulated failovers.

    Runs until Ctrl-C (or, with --once, until the workload ends).
    """
    from joblog.api.app import create_app

    if once and jobs is None:
        jobs = 3
    url = url or _default_url()[0]
    try:
        tracker = Tracker(url, unattributed="drop", heartbeat_interval=2.0)
    except JobLogError as exc:
        raise click.ClickException(str(exc)) from exc
    app = create_app(store=tracker.store)
    app.state.tracker = tracker
    stop = threading.Event()
    tracker.install_logging()
    legacy_ids = insert_legacy_rows(tracker)
    first = Scenario(vm="pgtest2", kind="live")
    workload = Workload(tracker, speed=speed, seed=seed, stop=stop)
    try:
        server = BackgroundServer(app, host, port).start()
    except (OSError, RuntimeError) as exc:
        tracker.close()
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc}") from exc
    base = server.url
    click.echo("joblog demo")
    click.echo(f"  dashboard:  {base}/")
    click.echo(f"  database:   {url}")
    click.echo(f"  watch:      {base}/jobs/{first.external_job_id}")
    click.echo(f"  legacy ID:  {base}/jobs/{legacy_ids[-1]}")
    click.echo(f"  API:        {base}/api/v1/jobs   docs: {base}/docs")
    click.echo("Press Ctrl-C to stop." if not once else f"Running {jobs} failover(s).")
    previous = _stop_on_signals(stop)
    try:
        workload.run(jobs=jobs, concurrency=concurrency, first=first)
        while not once and not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        click.echo("\nstopping: cancelling running jobs and storing what is queued…")
        stop.set()
        workload.wait(timeout=10)
        tracker.close()
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    click.echo("stopped.")
