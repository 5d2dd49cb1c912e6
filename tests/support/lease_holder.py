"""Holds housekeeping leases in another process: ``python -m tests.support.lease_holder URL
TASK...``.

Prints ``held`` (every lease taken) or ``not held`` once it has tried, then keeps them until
its stdin closes (or it is killed).
"""

from __future__ import annotations

import contextlib
import sys

from joblog.storage.store import Store


def main(url: str, tasks: list[str]) -> None:
    store = Store(url, auto_migrate=False)
    try:
        with contextlib.ExitStack() as stack:
            held = [stack.enter_context(store.housekeeping.lease(task)) for task in tasks]  # type: ignore[arg-type]
            print("held" if all(held) else "not held", flush=True)
            sys.stdin.read()
    finally:
        store.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
