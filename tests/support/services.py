"""Services the test harness starts itself: a PostgreSQL primary with a streaming hot
standby, and PgBouncer in transaction pooling mode.

Both run as the ``postgres`` user when the tests run as root (PostgreSQL and PgBouncer
refuse root), on free local ports, with their files under a temporary directory that is
removed when they stop. The PostgreSQL programs are found with ``pg_config --bindir``, or
in Debian's layout (``/usr/lib/postgresql/<version>/bin``, newest first).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

__all__ = ["HotStandbyPair", "PgBouncer", "ServiceUnavailable", "free_port", "free_ports"]


class ServiceUnavailable(RuntimeError):
    """The service cannot be started here; the message says why."""


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free right now (held together while they are picked)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _service_user() -> dict[str, Any]:
    """subprocess arguments that drop root to ``postgres`` (nothing when not root)."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ServiceUnavailable("running as root and there is no postgres user") from None
    return {"user": "postgres", "group": "postgres"}


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def pg_bindir() -> Path:
    """Where initdb, pg_ctl and pg_basebackup are."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            candidates.append(Path(found))

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in path.parent.name.split(".") if part.isdigit())

    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    candidates += debian
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "pg_basebackup")):
            return bindir
    raise ServiceUnavailable("PostgreSQL's server programs (initdb, pg_ctl) are not installed")


def _run(command: list[str], **kwargs: Any) -> None:
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120, **kwargs)
    except subprocess.CalledProcessError as error:
        raise ServiceUnavailable(
            f"{Path(command[0]).name} failed: {(error.stderr or error.stdout).strip()[-500:]}"
        ) from error
    except (OSError, subprocess.SubprocessError) as error:
        raise ServiceUnavailable(f"{Path(command[0]).name} failed: {error}") from error


def _wait_for(url: str, ready: str = "SELECT 1", timeout: float = 60.0) -> None:
    """Until ``ready`` returns true on ``url``."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    engine = sa.create_engine(url, connect_args={"connect_timeout": 2}, poolclass=sa.NullPool)
    try:
        while time.monotonic() < deadline:
            try:
                with engine.connect() as conn:
                    if conn.execute(sa.text(ready)).scalar():
                        return
            except Exception as error:
                last = error
            time.sleep(0.1)
    finally:
        engine.dispose()
    raise ServiceUnavailable(f"{url} not ready within {timeout:g}s: {last}")


class HotStandbyPair:
    """A primary and its hot standby (streaming replication), made for this test session.

    Use as a context manager; ``url(database, standby=...)`` names a database on either.
    ``pause_replay()`` / ``resume_replay()`` freeze the standby's view: a lag the tests
    control exactly (the standby keeps receiving the primary's WAL meanwhile).
    """

    def __init__(self) -> None:
        self.bindir = pg_bindir()
        self.primary_port, self.standby_port = free_ports(2)
        self.root = Path(tempfile.mkdtemp(prefix="joblog-standby-"))
        self._started: list[Path] = []

    def url(self, database: str = "postgres", *, standby: bool = False) -> str:
        port = self.standby_port if standby else self.primary_port
        return f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}"

    def __enter__(self) -> HotStandbyPair:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self) -> None:
        user = _service_user()
        _own(self.root)
        primary, standby = self.root / "primary", self.root / "standby"
        _run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(primary),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            **user,
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.root}'",
            "max_connections": "60",
            "shared_buffers": "'32MB'",
            "fsync": "off",
            "full_page_writes": "off",
            "wal_level": "replica",
            "max_wal_senders": "4",
            "wal_keep_size": "'64MB'",
            "hot_standby": "on",
        }
        with (primary / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self._pg_ctl(primary, self.primary_port, "primary.log", **user)
        _wait_for(self.url())
        _run(
            [
                str(self.bindir / "pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.primary_port),
                "-U",
                "postgres",
                "-D",
                str(standby),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
            **user,
        )
        self._pg_ctl(standby, self.standby_port, "standby.log", **user)
        _wait_for(self.url(standby=True), "SELECT pg_is_in_recovery()")

    def _pg_ctl(self, datadir: Path, port: int, log: str, **user: Any) -> None:
        _run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(datadir),
                "-l",
                str(self.root / log),
                "-o",
                f"-p {port}",
                "-w",
                "-t",
                "60",
                "start",
            ],
            **user,
        )
        self._started.append(datadir)

    def stop(self) -> None:
        user = _service_user() if self._started else {}
        for datadir in reversed(self._started):
            with contextlib.suppress(ServiceUnavailable):
                _run(
                    [str(self.bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "stop"],
                    **user,
                )
        self._started.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- what the tests do with it ----------------------------------------------------------

    def create_database(self, name: str) -> None:
        """A database on the primary, once the standby has it too."""
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        _wait_for(self.url(name, standby=True))

    def drop_database(self, name: str) -> None:
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            engine.dispose()

    def _on_standby(self, statement: str) -> Any:
        engine = sa.create_engine(self.url(standby=True), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text(statement)).scalar()
        finally:
            engine.dispose()

    def pause_replay(self) -> None:
        self._on_standby("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self._on_standby("SELECT pg_wal_replay_resume()")

    def wait_replayed(self, timeout: float = 60.0) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                target = conn.execute(sa.text("SELECT pg_current_wal_insert_lsn()")).scalar()
        finally:
            engine.dispose()
        _wait_for(
            self.url(standby=True),
            f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn",
            timeout,
        )


class PgBouncer:
    """Debian's PgBouncer in front of a PostgreSQL server, transaction pooling mode.

    Every database of the server is reachable through it under its own name (the ``*``
    fallback entry), as the ``postgres`` user without a password.
    """

    def __init__(self, target: tuple[str, int], *, pool_mode: str = "transaction") -> None:
        binary = shutil.which("pgbouncer") or next(
            (path for path in ("/usr/sbin/pgbouncer",) if os.path.isfile(path)), None
        )
        if binary is None:
            raise ServiceUnavailable("pgbouncer is not installed (Debian package pgbouncer)")
        self.binary = binary
        self.target = target
        self.pool_mode = pool_mode
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="joblog-pgbouncer-"))
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def __enter__(self) -> PgBouncer:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self) -> None:
        user = _service_user()
        _own(self.root)
        (self.root / "userlist.txt").write_text('"postgres" ""\n')
        host, port = self.target
        config = self.root / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host={host} port={port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.root / 'userlist.txt'}\n"
            f"pool_mode = {self.pool_mode}\n"
            "max_client_conn = 500\n"
            "default_pool_size = 12\n"
            "ignore_startup_parameters = extra_float_digits\n"
            f"logfile = {self.root / 'pgbouncer.log'}\n"
        )
        for path in self.root.iterdir():
            _own(path)
        try:
            self._process = subprocess.Popen(
                [self.binary, str(config)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                **user,
            )
        except OSError as error:
            raise ServiceUnavailable(f"pgbouncer did not start: {error}") from error
        _wait_for(self.url("postgres"), timeout=30)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)  # PgBouncer's "shut down now"
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        self._process = None
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""
