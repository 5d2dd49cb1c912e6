"""One Tracker per database URL per process, for code that cannot pass a tracker around.

A handler that logging's configuration builds from a URL (``dictConfig``, ``fileConfig``)
and the code that runs jobs meet here: both ask :func:`shared_tracker` for the URL and get
the same Tracker, so that records logged inside ``with tracker.job(...)`` are that job's.
The first call makes the tracker with its options; later calls with no options, or the
same ones, get it back; a call with other options is a :class:`ConfigError` (two writers
for one database in one process would split the order of its rows). A closed shared
tracker is replaced by a new one on the next call. Each tracker flushes at interpreter
exit on its own (:meth:`JobOwner._flush_at_exit`).

After ``fork()`` the child's copies of the parent's trackers have no writer thread (their
queues are the parent's to store). The child forgets them, and every handler built from a
URL is re-bound to the child's own shared tracker, made on the child's first record or its
first :func:`shared_tracker` call, whichever comes first. This is what a pre-forking worker
pool (Celery's prefork, gunicorn) needs when logging was configured before the fork.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from joblog.exceptions import ConfigError

if TYPE_CHECKING:
    from joblog.stdlib import JobLogHandler
    from joblog.tracker import Tracker

__all__ = ["AFTER_FORK", "bind_handler", "shared_tracker"]

#: The owner of a handler whose tracker stayed in the parent process: no job is its.
AFTER_FORK = object()

_lock = threading.RLock()
_trackers: dict[str, tuple[Tracker, dict[str, Any]]] = {}
#: Handlers built from a URL, by URL: re-bound when that URL's shared tracker changes.
_handlers: dict[str, weakref.WeakSet[JobLogHandler]] = {}
_building = threading.local()


def shared_tracker(url: str, options: Mapping[str, Any] | None = None) -> Tracker:
    """This process's Tracker for ``url``, made with ``options`` on first use."""
    wanted = dict(options or {})
    with _lock:
        entry = _trackers.get(url)
        if entry is not None and not entry[0]._closed:
            tracker, made_with = entry
            if wanted and wanted != made_with:
                raise ConfigError(
                    f"the shared tracker for {url!r} was made with other options "
                    f"({made_with or 'none'}); pass the same options, or none"
                )
            return tracker
        from joblog.tracker import Tracker

        tracker = Tracker(url, **wanted)
        _trackers[url] = (tracker, wanted)
        for handler in list(_handlers.get(url, ())):
            _point(handler, tracker)
        return tracker


def bind_handler(handler: JobLogHandler, url: str, options: Mapping[str, Any]) -> None:
    """Point ``handler`` at the shared tracker for ``url`` and keep it pointed there."""
    tracker = shared_tracker(url, options)
    with _lock:
        _handlers.setdefault(url, weakref.WeakSet()).add(handler)
        _point(handler, tracker)


def _point(handler: JobLogHandler, tracker: Tracker) -> None:
    handler._put = tracker.writer.put_event
    handler._owner = tracker
    handler._writer_thread_id = tracker.writer.thread_id


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.RLock()  # another thread may have held it at the fork
    for tracker, _options in _trackers.values():
        tracker._abandon()
    options = {url: made_with for url, (_tracker, made_with) in _trackers.items()}
    _trackers.clear()
    for url, handlers in _handlers.items():
        for handler in list(handlers):
            handler._owner = AFTER_FORK
            handler._writer_thread_id = None
            handler._put = _first_put(url, options.get(url, {}))


def _first_put(url: str, options: dict[str, Any]) -> Any:
    """A handler's ``put`` until the child has its own tracker: the first record makes it."""

    def put(item: Any) -> None:
        if getattr(_building, "active", False):
            return  # a record logged while the tracker is being made (its migrations)
        _building.active = True
        try:
            tracker = shared_tracker(url, options)
        except Exception as error:  # a logging call must not raise; the next record retries
            sys.stderr.write(f"joblog: no tracker for {url!r} in this process: {error!r}\n")
            return
        finally:
            _building.active = False
        tracker.writer.put_event(item)

    return put


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
