"""The capabilities a container's root keeps: Docker's default set, less CAP_MKNOD.

Root in a container without a user namespace is the host's root; what stops it from mounting the host's
disks, loading modules or changing the clock is that those capabilities are dropped from the bounding
set before exec (root's permitted set after exec is the bounding set). CAP_MKNOD is dropped too since no
device cgroup guards the nodes it could make.
"""

from __future__ import annotations

from pathlib import Path

from registry.runtime.linux import drop_bounding_capability

KEPT = {
    0,  # CAP_CHOWN
    1,  # CAP_DAC_OVERRIDE
    3,  # CAP_FOWNER
    4,  # CAP_FSETID
    5,  # CAP_KILL
    6,  # CAP_SETGID
    7,  # CAP_SETUID
    8,  # CAP_SETPCAP
    10,  # CAP_NET_BIND_SERVICE
    13,  # CAP_NET_RAW
    18,  # CAP_SYS_CHROOT
    29,  # CAP_AUDIT_WRITE
    31,  # CAP_SETFCAP
}


def last_capability() -> int:
    return int(Path("/proc/sys/kernel/cap_last_cap").read_text())


def drop_capabilities() -> None:
    for capability in range(last_capability() + 1):
        if capability not in KEPT:
            drop_bounding_capability(capability)
