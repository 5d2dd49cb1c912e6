"""``joblog serve`` in processes of their own: N servers on one database, as deployed.

Used by ``joblog bench topology`` and by the tests that run three servers. Each server
binds a port the OS picks (``--port 0``) and is found by the address it prints.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Sequence
from types import TracebackType

__all__ = ["ServeProcess"]

_ADDRESS = re.compile(r"dashboard: (http://\S+?)/?\s")
_MAIN = "import sys; from joblog.cli import main; sys.argv[0] = 'joblog'; main()"


class ServeProcess:
    """One ``joblog serve`` process; ``url`` is where it listens once started."""

    def __init__(
        self,
        database_url: str,
        *,
        write_token: str,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.database_url = database_url
        self.write_token = write_token
        self.args = list(args)
        self.env = env or {}
        self.start_timeout = start_timeout
        self.url = ""
        self.process: subprocess.Popen[str] | None = None
        self._output: list[str] = []
        self._reader: threading.Thread | None = None
        self._found = threading.Event()

    def __enter__(self) -> ServeProcess:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.launch()
        self.wait_started()

    def launch(self) -> None:
        """Start the process without waiting for it (start several, then wait for each)."""
        command = [
            sys.executable,
            "-c",
            _MAIN,
            "serve",
            "--url",
            self.database_url,
            "--port",
            "0",
            "--log-level",
            "warning",
            "--workers",  # one process unless args say otherwise (click keeps the last)
            "1",
            *self.args,
        ]
        env = {**os.environ, "JOBLOG_WRITE_TOKENS": self.write_token, **self.env}
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self._found = threading.Event()
        self._reader = threading.Thread(target=self._read, args=(self._found,), daemon=True)
        self._reader.start()

    def wait_started(self) -> None:
        """Until the server listens (RuntimeError, with its output, if it does not)."""
        if not self._found.wait(self.start_timeout) or not self.url:
            self.stop()
            shown = "".join(self._output[-20:])
            raise RuntimeError(f"joblog serve did not start: {shown}")

    def _read(self, found: threading.Event) -> None:
        """Find the address in the output, then keep draining it (a full pipe blocks)."""
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self._output.append(line)
            del self._output[:-200]
            match = _ADDRESS.search(line)
            if match and not self.url:
                self.url = match.group(1)
                found.set()
        found.set()  # the process ended

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        return "".join(self._output)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(15)
        if self._reader is not None:
            self._reader.join(15)  # the output ended with the process
        if process.stdout is not None:
            process.stdout.close()
