"""The HTTP client ships through the journal: a SIGKILLed producer's synced lines reach a
live server exactly once, through the next Client on its journal or ``joblog drain
--server``."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from joblog.api.app import create_app
from joblog.api.settings import ApiSettings
from joblog.cli import main
from joblog.client import Client
from joblog.storage.store import Store
from tests.reliability.conftest import Record
from tests.support.api import LiveServer
from tests.support.db import events
from tests.support.faultproxy import FaultProxy

WRITE = "write-token-0123456789abcdef"
LINES = 3000

KILLED_CLIENT = """
import logging, os, signal, sys, time
from joblog.client import Client

base_url, token, journal_dir, lines = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
client = Client(base_url, token, durability="journal", journal_dir=journal_dir,
                flush_interval=0.05, retries=0)
log = logging.getLogger("killed.client")
log.setLevel(logging.INFO)
client.install_logging(log)
with client.job("backup", "killed", external_job_id="client-killed"):
    print("started", flush=True)
    sys.stdin.readline()  # the parent cuts the link (or not) before the lines
    for i in range(lines):
        log.info("copied block %d of disk %s", i, "disk-0", extra={"bytes": 65536})
    time.sleep(0.5)  # ten sync intervals: every line is on disk
    print("logged", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture
def server(database_url: str) -> Iterator[LiveServer]:
    settings = ApiSettings(write_tokens=(WRITE,), poll_interval=0.05)
    with LiveServer(create_app(database_url, settings=settings)) as live:
        yield live


def run_killed_client(base_url: str, journal_dir: Path, proxy: FaultProxy, *, cut: bool) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_CLIENT, base_url, WRITE, str(journal_dir), str(LINES)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    try:
        assert child.stdout.readline().strip() == "started"
        if cut:
            proxy.cut()
        else:
            proxy.delay = 0.1  # a slow link: the kill comes with part shipped, part not
        child.stdin.write("go\n")
        child.stdin.flush()
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -9, err
    assert "logged" in out


def stored_lines(url: str) -> Counter[str]:
    store = Store(url)
    try:
        return Counter(
            row["message"] for row in events(store) if row["message"].startswith("copied block")
        )
    finally:
        store.close()


def ship_with(shipper: str, server: LiveServer, journal_dir: Path, url: str) -> str:
    before = sum(stored_lines(url).values())
    if shipper == "next client":
        again = Client(server.url, WRITE, durability="journal", journal_dir=str(journal_dir))
        try:
            assert again.flush(60)
            shipped = sum(stored_lines(url).values()) - before  # stored when flush returns
        finally:
            again.close()
        return f"the next Client stored {shipped}"
    result = CliRunner().invoke(
        main, ["drain", "--server", server.url, "--token", WRITE, str(journal_dir)]
    )
    assert result.exit_code == 0, result.output
    return result.output.strip().split(": ", 1)[1]


@pytest.mark.parametrize("shipper", ["next client", "joblog drain --server"])
def test_a_killed_clients_synced_lines_reach_the_server_once(
    server: LiveServer,
    database_url: str,
    tmp_path: Path,
    shipper: str,
    reliability: Record,
) -> None:
    """The link to the server is cut before the lines are logged, so none can be shipped
    before the SIGKILL: every stored line came from the journal."""
    host, port = server.url.removeprefix("http://").split(":")
    proxy = FaultProxy(host, int(port))
    try:
        run_killed_client(f"http://127.0.0.1:{proxy.port}", tmp_path / "jd", proxy, cut=True)
    finally:
        proxy.close()
    assert stored_lines(database_url) == Counter()
    shipped = ship_with(shipper, server, tmp_path / "jd", database_url)
    lines = stored_lines(database_url)
    assert (len(lines), max(lines.values())) == (LINES, 1)
    if shipper == "joblog drain --server":
        assert not (tmp_path / "jd").exists()  # drained whole: removed
    reliability.injected = (
        f"Client(durability='journal') SIGKILLed after {LINES} lines, its link to the server "
        f"cut first; shipped by {shipper}"
    )
    reliability.measured = {"stored": LINES, "lost": 0, "duplicated": 0, "ship": shipped}


def test_a_client_killed_while_shipping_loses_and_repeats_nothing(
    server: LiveServer, database_url: str, tmp_path: Path, reliability: Record
) -> None:
    """The link stays up: the producer ships part of its journal itself before the kill,
    maybe with a batch in flight; the next Client ships the rest, each line once."""
    host, port = server.url.removeprefix("http://").split(":")
    proxy = FaultProxy(host, int(port))
    try:
        run_killed_client(f"http://127.0.0.1:{proxy.port}", tmp_path / "jd", proxy, cut=False)
    finally:
        proxy.close()
    before = sum(stored_lines(database_url).values())
    shipped = ship_with("next client", server, tmp_path / "jd", database_url)
    lines = stored_lines(database_url)
    assert (len(lines), max(lines.values())) == (LINES, 1)
    reliability.injected = (
        f"Client(durability='journal') SIGKILLed after {LINES} lines, its link slowed "
        "(100 ms a 64 KiB chunk)"
    )
    reliability.measured = {
        "stored before the kill": before,
        "ship": shipped,
        "stored": LINES,
        "duplicated": 0,
    }


def test_a_full_client_queue_spills_instead_of_dropping(
    server: LiveServer, database_url: str, tmp_path: Path
) -> None:
    import logging

    client = Client(
        server.url, WRITE, batch_size=10, max_queue=10, journal_dir=str(tmp_path / "spill")
    )
    log = logging.getLogger("spill.client")
    log.setLevel(logging.INFO)
    client.install_logging(log)
    with client.job("backup", "burst"):
        for i in range(2000):
            log.info("copied block %d", i)
    assert client.flush(60)
    stats = client.stats()
    client.close()
    assert stats.dropped == 0 and stats.spilled > 0
    assert sum(stored_lines(database_url).values()) == 2000
    assert not (tmp_path / "spill").exists()  # a spill journal shipped whole is removed
