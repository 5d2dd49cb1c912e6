"""Latency sampling and percentiles."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Latency", "percentile", "sample_interleaved", "sample_latency"]


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


@dataclass(frozen=True)
class Latency:
    """Latency of ``n`` calls in microseconds; ``hits`` calls found something."""

    n: int
    hits: int
    p50_us: float
    p99_us: float
    mean_us: float
    max_us: float

    @classmethod
    def of(cls, samples_ns: Sequence[int], hits: int) -> Latency:
        values = sorted(ns / 1000 for ns in samples_ns)
        return cls(
            n=len(values),
            hits=hits,
            p50_us=percentile(values, 0.50),
            p99_us=percentile(values, 0.99),
            mean_us=sum(values) / len(values) if values else float("nan"),
            max_us=values[-1] if values else float("nan"),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_latency(
    call: Callable[[str], bool],
    keys: Sequence[str],
    *,
    warmup: Sequence[str] = (),
    budget_s: float | None = None,
    min_samples: int = 5,
    on_sample: Callable[[], None] | None = None,
) -> Latency:
    """Time ``call(key)`` for each key (after ``warmup``); ``call`` says whether it found one.

    With ``budget_s``, stop once that much time is spent (after ``min_samples``): used for
    the strategies that scan the whole table.
    """
    for key in warmup:
        call(key)
    clock = time.perf_counter_ns
    samples: list[int] = []
    hits = 0
    deadline = None if budget_s is None else clock() + int(budget_s * 1e9)
    for key in keys:
        start = clock()
        found = call(key)
        end = clock()
        samples.append(end - start)
        hits += found
        if on_sample is not None:
            on_sample()
        if deadline is not None and end > deadline and len(samples) >= min_samples:
            break
    return Latency.of(samples, hits)


def sample_interleaved(
    calls: dict[str, Callable[[str], bool]], keys: Sequence[str], *, warmup: Sequence[str] = ()
) -> dict[str, Latency]:
    """Time every call on each key in turn, so that drift in the machine's speed during
    the run (other processes, checkpoints) hits all of them alike: for ratios."""
    for key in warmup:
        for call in calls.values():
            call(key)
    clock = time.perf_counter_ns
    samples: dict[str, list[int]] = {name: [] for name in calls}
    hits = dict.fromkeys(calls, 0)
    for key in keys:
        for name, call in calls.items():
            start = clock()
            found = call(key)
            samples[name].append(clock() - start)
            hits[name] += found
    return {name: Latency.of(samples[name], hits[name]) for name in calls}
