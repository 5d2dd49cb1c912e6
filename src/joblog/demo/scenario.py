"""One simulated failover: which VM, live or test, and where (if anywhere) it fails."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["OWNERS", "VM_NAMES", "FailoverKind", "Scenario", "external_id"]

VM_NAMES = ("pgtest2", "web-01", "web-02", "erp-app-03", "mail-gw", "fileserver-02", "ad-dc01")
OWNERS = ("gui:alice@ops", "gui:bob@ops", "scheduler:nightly-dr-test")
FailoverKind = Literal["live", "test"]


def external_id(kind: str, vm: str, unix_time: int) -> str:
    """The ID the GUI builds: ``unified-live-failover-pgtest2-1758553933``."""
    return f"unified-{kind}-failover-{vm}-{unix_time}"


@dataclass
class Scenario:
    """One simulated failover: which VM, live or test, and where (if anywhere) it fails."""

    vm: str
    kind: FailoverKind = "live"
    fail_at: str | None = None
    disks: int = 2
    unix_time: int = field(default_factory=lambda: int(time.time()))
    seed: int = 0

    @property
    def external_job_id(self) -> str:
        return external_id(self.kind, self.vm, self.unix_time)
