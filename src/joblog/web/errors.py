"""Raw error text to a sentence a person understands.

The dashboard shows the sentence and keeps the raw text one click away. The rules are
plain data (a case-insensitive pattern and a sentence) so that the browser applies the
very same list when a job fails while someone watches it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from joblog.model import Step, StepStatus

__all__ = ["ERROR_RULES", "failed_step_name", "readable_error"]

#: (pattern, sentence), first match wins. Patterns use only syntax Python and JavaScript
#: regular expressions share, and are matched case-insensitively.
ERROR_RULES: tuple[tuple[str, str], ...] = (
    (
        r"^abandoned\b",
        "The program running it stopped reporting (it crashed or was killed), "
        "so the job was marked failed.",
    ),
    (
        r"timeout|timed out|deadline exceeded|took too long",
        "The step took too long and was stopped.",
    ),
    (
        r"connection ?refused|could not connect|unreachable|name or service not known|"
        r"no route to host|connection reset|service unavailable|\b50[234]\b",
        "A service could not be reached.",
    ),
    (
        r"permission|forbidden|unauthori[sz]ed|access denied|not allowed|\b40[13]\b",
        "Access was refused: a permission or credential is missing.",
    ),
    (
        r"quota|no space left|disk full|insufficient capacity|out of memory",
        "There was not enough capacity (space, quota or memory) to continue.",
    ),
    (
        r"in[- ]use|already attached|locked by|busy",
        "A resource was still in use by something else.",
    ),
    (
        r"not found|no such|does not exist|\b404\b",
        "Something the job needed could not be found.",
    ),
    (
        r"checksum|mismatch|corrupt|validation failed|invalid",
        "A check failed: the data was not what the job expected.",
    ),
    (
        r"cancel",
        "The job was cancelled before it finished.",
    ),
)

_COMPILED = tuple((re.compile(pattern, re.IGNORECASE), text) for pattern, text in ERROR_RULES)


def failed_step_name(steps: Iterable[Step]) -> str | None:
    """The first required step that failed, else the first failed step at all."""
    failed = [s for s in steps if s.status is StepStatus.FAILED]
    required = [s for s in failed if not s.allow_failure]
    chosen = required or failed
    return chosen[0].name if chosen else None


def readable_error(raw: str | None, step_name: str | None) -> str:
    """One or two sentences for a failed job: where it failed, and why in plain words."""
    where = f"The job failed during step {step_name}." if step_name else "The job failed."
    for pattern, sentence in _COMPILED:
        if raw and pattern.search(raw):
            return f"{where} {sentence}"
    return where
