"""Round trips per status request, counted on the wire by a proxy in front of the database.

    python benchmarks/roundtrips.py --url postgresql+psycopg://postgres@127.0.0.1:5432/test

A TCP proxy between joblog and the server counts round trips: each time the client
speaks after the server last spoke (a request that waits for its answer) is one. The
script seeds one job (steps, events, an external ID), then calls ``Tracker.resolve``
by UUID and by external ID, as the status endpoint does, and prints round trips per
call after a warm-up. Only the public API is used, so the same script measures any
version of joblog (``PYTHONPATH=<checkout>/src``), e.g. before and after a change.
"""

from __future__ import annotations

import argparse
import logging
import socket
import threading
import uuid

import sqlalchemy as sa


class CountingProxy:
    """A one-port TCP proxy that counts request/answer turns over all connections."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.turns = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            server = socket.create_connection(self.target)
            # Per connection: True once the server has answered since the client last spoke.
            state = {"answered": True}
            threading.Thread(
                target=self._pump, args=(client, server, state, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(server, client, state, False), daemon=True
            ).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, state: dict[str, bool], upstream: bool
    ) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if upstream and state["answered"]:
                        self.turns += 1
                        state["answered"] = False
                    elif not upstream:
                        state["answered"] = True
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def reset(self) -> int:
        with self._lock:
            turns, self.turns = self.turns, 0
        return turns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="admin URL of a PostgreSQL or MariaDB server")
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()

    import joblog

    admin = sa.make_url(args.url)
    name = f"joblog_rt_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    postgres = admin.get_backend_name() == "postgresql"
    with engine.connect() as conn:
        conn.execute(
            sa.text(f'CREATE DATABASE "{name}"' if postgres else f"CREATE DATABASE `{name}`")
        )
    proxy = CountingProxy((admin.host or "127.0.0.1", admin.port or (5432 if postgres else 3306)))
    url = admin.set(database=name, host="127.0.0.1", port=proxy.port)
    try:
        tracker = joblog.Tracker(url.render_as_string(hide_password=False))
        tracker.install_logging()
        external = "unified-live-failover-pgtest2-1758553933"
        plan = ["validation", "snapshot", "vm-creation", "volume-switch", "power-on"]
        with tracker.job("failover", "live", external_job_id=external, steps=plan) as job:
            for step in plan[:3]:
                with job.step(step):
                    for k in range(50):
                        logging.getLogger("rt").info("line %d of %s", k, step)
            tracker.flush(30)
            results = {}
            for label, any_id in (("by UUID", job.id), ("by external ID", external)):
                for _ in range(20):  # warm the pools and statement caches
                    tracker.resolve(any_id)
                proxy.reset()
                for _ in range(args.calls):
                    tracker.resolve(any_id)
                results[label] = proxy.reset() / args.calls
        tracker.close()
        for label, per_call in results.items():
            print(
                f"{admin.get_backend_name()}  resolve {label}: {per_call:.2f} round trips per call"
            )
    finally:
        with engine.connect() as conn:
            if postgres:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        engine.dispose()


if __name__ == "__main__":
    main()
