"""The bodies of the demo's simulated steps: log lines and attrs like a real failover's.

Split from :mod:`joblog.demo` to keep each module small; only the demo uses it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Protocol

from joblog.demo.scenario import Scenario
from joblog.handles import JobHandle, StepHandle


class Workload(Protocol):
    """What the steps need of the workload running them."""

    on_step: Callable[[JobHandle, str], None] | None

    def pause(self, seconds: float) -> None: ...


__all__ = [
    "ATTACH_STEPS",
    "FAILOVER_STEPS",
    "LIVE_ONLY",
    "ROLLBACK_STEPS",
    "FailoverSteps",
    "RollbackSteps",
]

#: (step, weight): the weight is also the step's base duration in seconds at speed 1.
FAILOVER_STEPS: tuple[tuple[str, float], ...] = (
    ("validation", 1.5),
    ("source-vm-power-off", 2.0),
    ("final-sync", 5.0),
    ("volume-mode-switch", 1.5),
    ("snapshot", 3.0),
    ("driver-injection", 3.0),
    ("vm-creation", 3.0),
    ("volume-attachment", 3.0),
    ("vm-startup-and-validation", 4.0),
    ("status-update", 1.0),
)
ROLLBACK_STEPS: tuple[tuple[str, float], ...] = (
    ("power-off-test-vm", 2.0),
    ("detach-volumes", 2.0),
    ("delete-test-vm", 2.0),
    ("revert-volume-mode", 1.5),
    ("delete-snapshots", 2.0),
    ("status-update", 1.0),
)
ATTACH_STEPS: tuple[tuple[str, float], ...] = (
    ("detach-from-replicator", 1.0),
    ("attach-to-vm", 1.0),
    ("verify-device", 0.8),
)
LIVE_ONLY = ("source-vm-power-off", "final-sync")

log = logging.getLogger("joblog.demo.failover")
attach_log = logging.getLogger("joblog.demo.volumes")
GIB = 1024**3


def _hex(rng: random.Random, length: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(length))


class _Steps:
    """Shared plumbing: run named steps in order, pacing each by its weight."""

    plan: tuple[tuple[str, float], ...] = ()

    def __init__(
        self, workload: Workload, job: JobHandle, scenario: Scenario, rng: random.Random
    ) -> None:
        self.workload = workload
        self.job = job
        self.scenario = scenario
        self.rng = rng
        self.vm = scenario.vm
        self.volumes = [f"vol-{_hex(rng, 8)}" for _ in range(scenario.disks)]
        self.sizes = [rng.choice((40, 80, 120, 250, 500)) * GIB for _ in self.volumes]
        self.instance_id = f"i-{_hex(rng, 10)}"

    def seconds(self, name: str) -> float:
        return dict(self.plan)[name]

    def wait(self, name: str, share: float) -> None:
        """Pause for ``share`` of step ``name``'s base duration, with some jitter."""
        self.workload.pause(self.seconds(name) * share * self.rng.uniform(0.75, 1.25))

    def run_step(self, name: str, body: Callable[[StepHandle], None]) -> None:
        with self.job.step(name) as step:
            if self.workload.on_step is not None:
                self.workload.on_step(self.job, name)
            body(step)
            if self.scenario.fail_at == name:
                raise self.failure(name)

    def failure(self, name: str) -> Exception:
        return RuntimeError(f"{name} failed: unexpected response from the hypervisor")


class FailoverSteps(_Steps):
    """validation → … → status-update; test failovers skip the live-only steps."""

    plan = FAILOVER_STEPS

    def run(self) -> None:
        bodies: dict[str, Callable[[StepHandle], None]] = {
            "validation": self.validation,
            "source-vm-power-off": self.power_off,
            "final-sync": self.final_sync,
            "volume-mode-switch": self.volume_mode_switch,
            "snapshot": self.snapshot,
            "driver-injection": self.driver_injection,
            "vm-creation": self.vm_creation,
            "volume-attachment": self.volume_attachment,
            "vm-startup-and-validation": self.startup,
            "status-update": self.status_update,
        }
        for name, _weight in self.plan:
            if self.scenario.kind == "test" and name in ("source-vm-power-off", "final-sync"):
                self.job.skip_step(name, "test failover: the source VM keeps running")
                log.info("Skipping %s: test failover leaves the source VM running", name)
                continue
            self.run_step(name, bodies[name])

    def failure(self, name: str) -> Exception:
        vol = self.volumes[0]
        errors: dict[str, Exception] = {
            "validation": ValueError(
                f"validation failed: target network 'prod-vlan-204' not found in zone "
                f"zone-1 for VM {self.vm}"
            ),
            "source-vm-power-off": TimeoutError(
                f"guest shutdown of {self.vm} did not finish within 120s (VMware Tools not "
                "responding)"
            ),
            "final-sync": ConnectionRefusedError(
                "[Errno 111] Connection refused: sync agent at 10.0.4.17:9081"
            ),
            "volume-mode-switch": RuntimeError(
                f"volume {vol} is in-use by replication session rs-{_hex(self.rng, 6)}"
            ),
            "snapshot": TimeoutError(
                f"snapshot snap-{_hex(self.rng, 8)} of volume {vol} did not complete within "
                "300s (state: creating, 62%)"
            ),
            "driver-injection": RuntimeError(
                "virt-customize exited with status 1: libguestfs: error: mount: "
                "/dev/sda1: wrong fs type"
            ),
            "vm-creation": ConnectionRefusedError(
                "[Errno 111] Connection refused: cloudstack-mgmt-01.example.internal:8080"
            ),
            "volume-attachment": RuntimeError(
                f"volume {vol} is already attached to instance i-{_hex(self.rng, 10)}"
            ),
            "vm-startup-and-validation": TimeoutError(
                f"guest agent on {self.instance_id} did not report ready within 600s"
            ),
        }
        return errors.get(name) or super().failure(name)

    def validation(self, step: StepHandle) -> None:
        log.info(
            "Validating failover prerequisites for %s",
            self.vm,
            extra={"vm_name": self.vm, "target_zone": "zone-1", "target_cluster": "ossea-cl-02"},
        )
        self.wait("validation", 0.5)
        log.debug(
            "Network mapping resolved",
            extra={"source_networks": ["VM Network", "Backup"], "target": ["prod-vlan-204"]},
        )
        self.wait("validation", 0.5)
        log.info(
            "Validation passed: %d disk(s), 2 NIC(s), %d GiB total",
            len(self.volumes),
            sum(self.sizes) // GIB,
            extra={"volume_ids": self.volumes},
        )

    def power_off(self, step: StepHandle) -> None:
        log.info(
            "Requesting graceful shutdown of source VM %s",
            self.vm,
            extra={"vcenter": "vcenter-dc1.example.internal", "vm_name": self.vm},
        )
        self.wait("source-vm-power-off", 1.0)
        log.info("Source VM %s powered off", self.vm, extra={"power_state": "poweredOff"})

    def final_sync(self, step: StepHandle) -> None:
        total = int(sum(self.sizes) * self.rng.uniform(0.002, 0.02))
        log.info(
            "Starting final incremental sync of %d changed blocks",
            total // (64 * 1024),
            extra={"bytes_total": total, "block_size": 65536},
        )
        for part in range(1, 5):
            self.wait("final-sync", 0.25)
            step.progress(part * 25)
            log.debug(
                "Synced %d%%",
                part * 25,
                extra={"bytes_transferred": total * part // 4, "bytes_total": total},
            )
        log.info(
            "Final sync complete: %.1f MiB transferred",
            total / 1024**2,
            extra={
                "bytes_transferred": total,
                "throughput_mib_s": round(self.rng.uniform(80, 240), 1),
            },
        )

    def volume_mode_switch(self, step: StepHandle) -> None:
        for vol in self.volumes:
            log.info(
                "Switching volume %s from replication to failover mode",
                vol,
                extra={"volume_id": vol, "from_mode": "replication", "to_mode": "failover"},
            )
            self.wait("volume-mode-switch", 1 / len(self.volumes))

    def snapshot(self, step: StepHandle) -> None:
        for index, vol in enumerate(self.volumes, start=1):
            snap = f"snap-{_hex(self.rng, 8)}"
            log.info(
                "Creating snapshot %s of volume %s",
                snap,
                vol,
                extra={"volume_id": vol, "snapshot_id": snap, "size_bytes": self.sizes[index - 1]},
            )
            self.wait("snapshot", 1 / len(self.volumes))
            step.progress(100 * index / len(self.volumes))
        log.info("Rollback point ready: %d snapshot(s)", len(self.volumes))

    def driver_injection(self, step: StepHandle) -> None:
        log.info(
            "Injecting virtio drivers into boot volume %s",
            self.volumes[0],
            extra={"drivers": ["virtio_blk", "virtio_net", "virtio_scsi"], "guest_os": "linux"},
        )
        self.wait("driver-injection", 0.6)
        if self.rng.random() < 0.5:
            log.warning(
                "initramfs regeneration took longer than expected",
                extra={"seconds": round(self.rng.uniform(20, 60), 1), "kernel": "5.15.0-105"},
            )
        self.wait("driver-injection", 0.4)
        log.info("Drivers injected", extra={"volume_id": self.volumes[0]})

    def vm_creation(self, step: StepHandle) -> None:
        log.info(
            "Creating VM %s in cluster ossea-cl-02",
            self.vm,
            extra={"service_offering": "4vCPU-16GB", "template": "blank-uefi"},
        )
        self.wait("vm-creation", 1.0)
        log.info("VM created as %s", self.instance_id, extra={"instance_id": self.instance_id})

    def volume_attachment(self, step: StepHandle) -> None:
        for index, vol in enumerate(self.volumes):
            with self.job.child(
                "volume-attachment",
                "attach-volume",
                external_job_id=f"attach-{vol}-{self.scenario.unix_time}",
                context_id=vol,
                steps=[name for name, _weight in ATTACH_STEPS],
                metadata={"volume_id": vol, "instance_id": self.instance_id},
            ) as child:
                device = f"/dev/vd{'abcdefgh'[index]}"
                for name, weight in ATTACH_STEPS:
                    with child.step(name):
                        attach_log.info(
                            "%s: %s",
                            name.replace("-", " "),
                            vol,
                            extra={
                                "volume_id": vol,
                                "instance_id": self.instance_id,
                                "device": device,
                            },
                        )
                        self.workload.pause(weight * self.rng.uniform(0.7, 1.2))
                        if name == "attach-to-vm" and self.scenario.fail_at == "volume-attachment":
                            raise self.failure("volume-attachment")
        log.info("%d volume(s) attached to %s", len(self.volumes), self.instance_id)

    def startup(self, step: StepHandle) -> None:
        log.info("Powering on %s", self.instance_id, extra={"instance_id": self.instance_id})
        self.wait("vm-startup-and-validation", 0.4)
        log.info("Waiting for the guest agent", extra={"timeout_seconds": 600})
        self.wait("vm-startup-and-validation", 0.4)
        ip = f"10.20.{self.rng.randrange(1, 9)}.{self.rng.randrange(10, 250)}"
        log.info(
            "Health checks passed",
            extra={"ip_address": ip, "checks": {"ping": "ok", "ssh": "ok", "services": "ok"}},
        )
        self.wait("vm-startup-and-validation", 0.2)

    def status_update(self, step: StepHandle) -> None:
        self.wait("status-update", 1.0)
        log.info(
            "Failover %s completed; GUI status updated",
            self.scenario.external_job_id,
            extra={"failover_jobs.status": "completed"},
        )


class RollbackSteps(_Steps):
    """Undo a test failover: stop and delete the test VM, revert volumes, drop snapshots."""

    plan = ROLLBACK_STEPS

    def run(self) -> None:
        for name, _weight in self.plan:
            self.run_step(name, self.generic)

    def generic(self, step: StepHandle) -> None:
        messages = {
            "power-off-test-vm": "Powering off test VM %s",
            "detach-volumes": "Detaching %s volume(s) from the test VM",
            "delete-test-vm": "Deleting test VM %s",
            "revert-volume-mode": "Returning volumes of %s to replication mode",
            "delete-snapshots": "Deleting test snapshots of %s",
            "status-update": "Rollback of %s recorded",
        }
        name = step.name
        subject = str(len(self.volumes)) if name == "detach-volumes" else self.vm
        log.info(messages[name], subject, extra={"vm_name": self.vm, "volume_ids": self.volumes})
        self.wait(name, 1.0)
