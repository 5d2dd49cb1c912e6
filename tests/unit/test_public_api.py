"""The public surface: __all__ lists exactly the public names."""

from __future__ import annotations

import joblog


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name in dir(joblog)  # dir(): names loaded on first use (Tracker) included
        if not name.startswith("_") and not isinstance(getattr(joblog, name), type(joblog))
    }
    public.discard("annotations")
    assert set(joblog.__all__) == public


def test_every_exception_derives_from_the_root() -> None:
    for name in joblog.__all__:
        value = getattr(joblog, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, joblog.JobLogError), name


def test_default_messages_come_from_docstrings() -> None:
    assert str(joblog.StorageUnavailable()) == "The database cannot be reached."
