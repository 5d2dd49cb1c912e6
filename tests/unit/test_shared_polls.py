"""SharedPolls: streams of one job at one cursor share a read, but never one that began
before the change that woke them (a fake source; no database)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from joblog.api.stream import SharedPolls
from joblog.exceptions import StorageUnavailable


class FakeSource:
    """What SharedPolls needs of a stream's source: a key and a blocking poll."""

    def __init__(self, key: Any = ("j", "job-1"), fail: bool = False) -> None:
        self.key = key
        self.fail = fail
        self.calls = 0
        self.release = threading.Event()

    def poll(self, known: str | None, after_id: int, limit: int) -> Any:
        self.calls += 1
        self.release.wait(10)
        if self.fail:
            raise StorageUnavailable("database away")
        return ("poll", self.calls)


async def _together(shared: SharedPolls, source: FakeSource, not_before: list[float]) -> list[Any]:
    tasks = [
        asyncio.ensure_future(shared.poll(source, "t", 5, 100, when))  # type: ignore[arg-type]
        for when in not_before
    ]
    await asyncio.sleep(0.2)  # the first read is under way
    source.release.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


class TestSharedPolls:
    def test_streams_woken_together_share_one_read(self) -> None:
        shared, source = SharedPolls(), FakeSource()
        woken = time.monotonic()
        results = asyncio.run(_together(shared, source, [woken] * 5))
        assert source.calls == 1
        assert results == [("poll", 1)] * 5
        assert (shared.reads, shared.joined) == (1, 4)

    def test_a_read_begun_before_the_wake_is_not_joined(self) -> None:
        shared, source = SharedPolls(), FakeSource()

        async def run() -> list[Any]:
            first = asyncio.ensure_future(shared.poll(source, "t", 5, 100, 0.0))  # type: ignore[arg-type]
            await asyncio.sleep(0.2)
            later = asyncio.ensure_future(
                shared.poll(source, "t", 5, 100, time.monotonic())  # type: ignore[arg-type]
            )
            await asyncio.sleep(0.2)
            source.release.set()
            return list(await asyncio.gather(first, later))

        asyncio.run(run())
        assert source.calls == 2

    def test_a_failed_read_fails_those_who_joined_it(self) -> None:
        shared, source = SharedPolls(), FakeSource(fail=True)
        results = asyncio.run(_together(shared, source, [time.monotonic()] * 3))
        assert all(isinstance(result, StorageUnavailable) for result in results)
        assert source.calls == 1

    def test_legacy_rows_are_never_shared(self) -> None:
        shared, source = SharedPolls(), FakeSource(key=None)
        asyncio.run(_together(shared, source, [time.monotonic()] * 3))
        assert source.calls == 3

    @pytest.mark.parametrize("cursor", [4, 6])
    def test_another_cursor_reads_on_its_own(self, cursor: int) -> None:
        shared, source = SharedPolls(), FakeSource()

        async def run() -> None:
            woken = time.monotonic()
            tasks = [
                asyncio.ensure_future(shared.poll(source, "t", 5, 100, woken)),  # type: ignore[arg-type]
                asyncio.ensure_future(shared.poll(source, "t", cursor, 100, woken)),  # type: ignore[arg-type]
            ]
            await asyncio.sleep(0.2)
            source.release.set()
            await asyncio.gather(*tasks)

        asyncio.run(run())
        assert source.calls == 2
