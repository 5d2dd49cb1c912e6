"""How far a job is, from its planned steps: one rule for in-process and remote producers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from joblog.model import PlannedStep, StepStatus

__all__ = ["FINISHED_STEP_STATUSES", "planned_percent"]

#: Statuses after which a step counts as done for progress.
FINISHED_STEP_STATUSES = frozenset({StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.SKIPPED})


def planned_percent(
    planned: Sequence[PlannedStep], steps: Iterable[tuple[str, StepStatus, float]]
) -> float:
    """Percent of the planned weight done.

    ``steps`` holds (name, status, fraction done 0..1) of every started step; a finished
    step counts whole, a running one by its fraction, steps outside the plan not at all.
    Counting over the plan, not over the steps started so far, keeps the percent from
    jumping back when a new step starts.
    """
    weights = {p.name: p.weight for p in planned}
    total = sum(weights.values())
    if not total:
        return 0.0
    done: dict[str, float] = {}
    for name, status, fraction in steps:
        if name in weights:
            share = 1.0 if status in FINISHED_STEP_STATUSES else min(max(fraction, 0.0), 1.0)
            done[name] = max(done.get(name, 0.0), share)
    return 100 * sum(weights[name] * share for name, share in done.items()) / total
