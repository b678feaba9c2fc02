"""Creating a container's namespaces, and joining those of a running container (for `exec`)."""

from __future__ import annotations

import os
from pathlib import Path

from registry.runtime.linux import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    setns,
    unshare,
)

# The order `exec` joins them in: the user namespace first, as it owns the others; the mount namespace
# last, since after it /proc/PID paths of the host are no longer reachable.
JOINED = ("user", "ipc", "uts", "net", "pid", "mnt")


def container_flags(private_network: bool) -> int:
    return CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | (CLONE_NEWNET if private_network else 0)


def create(flags: int, userns: bool) -> None:
    """Unshare `flags` from the calling process; with `userns`, in a new user namespace where the
    caller's own user and group are root (the one mapping an unprivileged process may write)."""
    uid, gid = os.geteuid(), os.getegid()
    unshare(flags | (CLONE_NEWUSER if userns else 0))
    if userns:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")


def join(pid: int, names: tuple[str, ...] = JOINED) -> int:
    """Join the namespaces `names` of process `pid` (a PID namespace applies to children forked after
    this); returns a descriptor of its root directory, to chroot into once in its mount namespace."""
    root = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    descriptors = []
    for name in names:
        theirs = Path(f"/proc/{pid}/ns/{name}")
        if os.stat(theirs).st_ino != os.stat(f"/proc/self/ns/{name}").st_ino:  # shared ones are skipped
            descriptors.append(os.open(theirs, os.O_RDONLY | os.O_CLOEXEC))
    for descriptor in descriptors:
        setns(descriptor)
        os.close(descriptor)
    return root
