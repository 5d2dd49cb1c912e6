"""A TCP proxy between joblog and a database server that tests can break on purpose.

``cut()`` resets every open connection and refuses new ones until ``restore()``;
``delay`` adds latency to every chunk forwarded; ``reset_after_bytes(n)`` resets every
connection once n more bytes went to the server (in the middle of a batch);
``lose_reply_after(marker)`` forwards the next request containing ``marker`` (e.g. the
COMMIT) and then resets instead of passing on the server's reply, so the client cannot
know whether the commit happened. The real servers are never touched.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.delay = 0.0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._cut = threading.Event()
        self._closed = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.accepted = 0
        self._reset_budget: int | None = None
        self._reply_marker: bytes | None = None
        self._lose_next_reply = False
        self.faults_fired = 0
        threading.Thread(target=self._accept, daemon=True, name="faultproxy").start()

    def cut(self) -> None:
        """Reset every open connection and refuse new ones."""
        self._cut.set()
        with self._lock:
            sockets = list(self._sockets)
            self._sockets.clear()
        for sock in sockets:
            _reset(sock)

    def restore(self) -> None:
        self._cut.clear()

    def reset_after_bytes(self, count: int) -> None:
        """Reset every connection once ``count`` more bytes were sent to the server."""
        with self._lock:
            self._reset_budget = count

    def lose_reply_after(self, marker: bytes) -> None:
        """Let the next request containing ``marker`` through, then lose its reply."""
        with self._lock:
            self._reply_marker = marker

    def _reset_all(self) -> None:
        with self._lock:
            sockets = list(self._sockets)
            self._sockets.clear()
            self.faults_fired += 1
        for sock in sockets:
            _reset(sock)

    def close(self) -> None:
        self._closed.set()
        self.cut()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            self.accepted += 1
            with self._lock:
                self._sockets.update((client, upstream))
            for src, dst, to_server in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, to_server), daemon=True).start()

    def _fault_before(self, data: bytes, to_server: bool) -> bool:
        """True when this chunk must not be forwarded: the connections get reset."""
        with self._lock:
            if to_server and self._reset_budget is not None:
                self._reset_budget -= len(data)
                if self._reset_budget <= 0:
                    self._reset_budget = None
                    fire = True
                else:
                    fire = False
            elif not to_server and self._lose_next_reply:
                self._lose_next_reply = False
                fire = True
            else:
                fire = False
            if to_server and self._reply_marker is not None and self._reply_marker in data:
                self._reply_marker = None
                self._lose_next_reply = True
        if fire:
            self._reset_all()
        return fire

    def _pump(self, src: socket.socket, dst: socket.socket, to_server: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data or self._cut.is_set():
                    break
                if self.delay:
                    time.sleep(self.delay)
                if self._fault_before(data, to_server):
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                _reset(sock)
                with self._lock:
                    self._sockets.discard(sock)


def _reset(sock: socket.socket) -> None:
    """Close with RST, as a dropped link or a killed server looks to the client."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # close() alone does not end a recv() blocked in another thread (the kernel keeps the
    # socket open until it returns); shutdown() wakes it, so the peer really sees the end.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
