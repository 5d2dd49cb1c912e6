"""The database driver's work in a process of its own: ``Tracker(writer="process")``.

The batch writer keeps everything that decides what is stored (order, batches, batch
keys, retries, splitting, the journal, the dead-letter file) in the caller's process;
only :meth:`Sink.apply_batch` runs in a child process, which holds the database
connection. The writer thread pickles a batch of ready rows into a pipe and waits for
the answer with the GIL released, so the caller's thread runs meanwhile and the driver's
own Python work (PyMySQL's escaping, psycopg's COPY rows, sqlite3's parameter binding)
runs on the other core.

The child is started with ``spawn`` (never a fork of a process with threads), exits when
its pipe closes (the parent died or closed it), and is started again if it died: the
batch it was given is then retried under the same key, so it is stored once. An
in-memory SQLite database exists in one process only, so it cannot be used this way.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from joblog._ops import Op
from joblog.exceptions import ConfigError, StorageError, StorageUnavailable

__all__ = ["ProcessSink"]

#: Seconds to wait for a new child to open its database.
START_TIMEOUT_S = 60.0


class ProcessSink:
    """A :class:`~joblog._ops.Sink` whose ``apply_batch`` runs in a child process that
    owns a :class:`~joblog.storage.store.Store` on ``url``."""

    def __init__(self, url: str, *, private_memory: bool = False) -> None:
        if private_memory:
            raise ConfigError("writer='process' needs a database another process can open")
        self._url = url
        self._lock = threading.Lock()
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._pipe: Connection | None = None
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=serve, args=(child, self._url), name="joblog-writer-process", daemon=True
        )
        process.start()
        child.close()
        if not parent.poll(START_TIMEOUT_S):
            process.kill()
            raise StorageUnavailable("the writer process did not start")
        status, detail = parent.recv()
        if status != "ready":
            process.join(5)
            raise StorageUnavailable(f"the writer process could not open the database: {detail}")
        self._process, self._pipe = process, parent

    @property
    def pid(self) -> int | None:
        return None if self._process is None else int(self._process.pid)

    def apply_batch(self, ops: Sequence[Op], batch_key: str | None = None) -> bool:
        with self._lock:
            try:
                if self._pipe is None:
                    self.restarts += 1
                    self._start()
                assert self._pipe is not None
                self._pipe.send((list(ops), batch_key))
                status, detail = self._pipe.recv()
            except (OSError, EOFError, StorageUnavailable) as error:
                self._discard()
                raise StorageUnavailable(f"the writer process is gone: {error!r}") from error
        if status == "ok":
            return bool(detail)
        name, message, transient = detail
        raise StorageError(f"{name}: {message}", transient=bool(transient))

    def _discard(self) -> None:
        """Forget a child that failed; the next batch starts a new one."""
        pipe, process = self._pipe, self._process
        self._pipe = self._process = None
        if pipe is not None:
            pipe.close()
        if process is not None:
            process.kill()
            process.join(5)

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            pipe, process = self._pipe, self._process
            self._pipe = self._process = None
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.send(None)
                pipe.close()
            if process is not None:
                process.join(timeout)
                if process.is_alive():
                    process.kill()
                    process.join(5)


def serve(pipe: Connection, url: str) -> None:
    """The child: apply each batch it is sent and answer ("ok", stored) or ("error",
    (class name, message, transient)); stop at None or when the pipe closes."""
    from joblog.storage.store import Store

    try:
        store = Store(url, auto_migrate=False)
    except Exception as error:
        pipe.send(("error", repr(error)))
        return
    pipe.send(("ready", None))
    try:
        while True:
            try:
                message = pipe.recv()
            except (EOFError, OSError):
                return
            if message is None:
                return
            ops, batch_key = message
            try:
                stored = store.apply_batch(ops, batch_key)
            except StorageError as error:
                pipe.send(("error", (type(error).__name__, str(error), error.transient)))
            except Exception as error:  # apply_batch wraps driver errors; anything else
                pipe.send(("error", (type(error).__name__, repr(error), False)))
            else:
                pipe.send(("ok", stored))
    finally:
        store.close()
