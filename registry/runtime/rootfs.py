"""A container's root filesystem: a writable layer over the unpacked image, and the mounts a process
expects (/proc, /dev, /sys, /etc/hosts, ...), then `pivot_root` into it.

The writable layer is an overlayfs mount whose lower layer is the cached unpacked image, shared by every
container of that image; where the kernel refuses overlayfs there (a filesystem it cannot stack on, no
privilege), the container gets a full copy instead. Everything here except `prepare` runs in the
container's own mount namespace, so none of these mounts is ever seen by the host, and they all vanish
with the container's last process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from registry.runtime import namespaces
from registry.runtime.linux import (
    CLONE_NEWNS,
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    mount,
    pivot_root,
    umount,
)
from registry.unpack import resolve

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
             "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}  # fmt: skip
# As Docker: files that leak host information or control the host are hidden, some trees read-only.
PROC_MASKED = ("kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug")
PROC_MASKED_DIRS = ("acpi", "asound", "scsi")
PROC_READ_ONLY = ("bus", "fs", "irq", "sys", "sysrq-trigger")
ETC_FILES = ("hosts", "hostname", "resolv.conf")


@dataclass(frozen=True)
class Volume:
    host: Path
    container: str
    read_only: bool

    @classmethod
    def parse(cls, spec: str) -> Volume:
        """`-v HOST:CONTAINER[:ro|rw]`, both absolute."""
        parts = spec.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            raise ValueError(f"invalid volume {spec!r}: use HOST:CONTAINER[:ro|rw]")
        if not parts[0].startswith("/") or not parts[1].startswith("/"):
            raise ValueError(f"invalid volume {spec!r}: both paths must be absolute")
        return cls(Path(parts[0]), parts[1], len(parts) == 3 and parts[2] == "ro")


def escape(path: Path) -> str:
    """overlayfs splits its options on `,` and lower directories on `:`."""
    return str(path).replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")


def overlay_options(lower: Path, directory: Path, userns: bool) -> str:
    upper, work = escape(directory / "upper"), escape(directory / "work")
    options = f"lowerdir={escape(lower)},upperdir={upper},workdir={work}"
    # In a user namespace, overlayfs keeps its whiteouts and opaque marks in user.* xattrs.
    return options + (",userxattr" if userns else "")


def prepare(directory: Path, lower: Path, userns: bool) -> str:
    """Make the container's folders and pick its storage: overlayfs if it works here, else a copy."""
    for name in ("upper", "work", "rootfs", "etc"):
        (directory / name).mkdir(mode=0o755, exist_ok=True)
    if overlay_works(directory, lower, userns):
        return "overlay"
    # cp keeps hard links, owners, modes, xattrs and sparse files, and reflinks where it can.
    subprocess.run(["cp", "-a", "--reflink=auto", f"{lower}/.", str(directory / "rootfs")], check=True)
    return "copy"


def write_etc_files(directory: Path, hostname: str, host_network: bool) -> None:
    etc = directory / "etc"
    (etc / "hostname").write_text(hostname + "\n")
    if host_network:
        shutil.copyfile("/etc/hosts", etc / "hosts")
    else:
        (etc / "hosts").write_text(
            f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n127.0.1.1\t{hostname}\n"
        )
    try:
        shutil.copyfile("/etc/resolv.conf", etc / "resolv.conf")
    except FileNotFoundError:
        (etc / "resolv.conf").write_text("")


def overlay_works(directory: Path, lower: Path, userns: bool) -> bool:
    """Try the overlay mount in a throwaway mount namespace: the only reliable test of kernel support."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            namespaces.create(CLONE_NEWNS, userns)
            mount(None, "/", None, MS_REC | MS_PRIVATE)
            mount_root(directory, lower, "overlay", userns)
            code = 0
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def mount_root(directory: Path, lower: Path, storage: str, userns: bool) -> Path:
    """Mount the writable root at `<directory>/rootfs` (pivot_root wants a mount point either way)."""
    rootfs = directory / "rootfs"
    if storage == "overlay":
        mount("overlay", rootfs, "overlay", 0, overlay_options(lower, directory, userns))
    else:
        mount(rootfs, rootfs, None, MS_BIND | MS_REC)
    return rootfs


def _directory_in(rootfs: Path, path: str) -> Path:
    target = resolve(rootfs, path)
    target.mkdir(parents=True, exist_ok=True)
    return target


def _file_in(rootfs: Path, path: str) -> Path:
    """A file to mount on, inside the root (a symlink there is followed inside the root, never out)."""
    target = resolve(rootfs, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.touch()
    return target


def _bind(source: Path | str, target: Path, read_only: bool = False) -> None:
    mount(source, target, None, MS_BIND | MS_REC)
    if read_only:
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC)


def mount_proc(rootfs: Path) -> None:
    proc = _directory_in(rootfs, "proc")
    mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name in PROC_MASKED:
        if (proc / name).exists():
            mount("/dev/null", proc / name, None, MS_BIND)
    for name in PROC_MASKED_DIRS:
        if (proc / name).is_dir():
            mount("tmpfs", proc / name, "tmpfs", MS_RDONLY, "size=0")
    for name in PROC_READ_ONLY:
        if (proc / name).exists():
            _bind(proc / name, proc / name, read_only=True)


def mount_dev(rootfs: Path) -> None:
    dev = _directory_in(rootfs, "dev")
    mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=755,size=65536k")
    for name in DEVICES:
        (dev / name).touch()
        mount(f"/dev/{name}", dev / name, None, MS_BIND)
    (dev / "pts").mkdir()
    mount("devpts", dev / "pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
    (dev / "shm").mkdir()
    mount("shm", dev / "shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k")
    for name, target in DEV_LINKS.items():
        os.symlink(target, dev / name)


def mount_sys(rootfs: Path) -> None:
    target = _directory_in(rootfs, "sys")
    try:
        mount("sysfs", target, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except PermissionError:  # a user namespace sharing the host's network may not mount a new sysfs
        _bind("/sys", target, read_only=True)


def enter(rootfs: Path) -> None:
    """Make `rootfs` the root: the old one is stacked under it by pivot_root and then detached."""
    os.chdir(rootfs)
    pivot_root(".", ".")
    umount(".", MNT_DETACH)
    os.chdir("/")


def setup(directory: Path, lower: Path, storage: str, userns: bool, volumes: Sequence[Volume]) -> None:
    """In the container's new mount namespace: build its root and move into it."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing below propagates back to the host
    rootfs = mount_root(directory, lower, storage, userns)
    mount_proc(rootfs)
    mount_dev(rootfs)
    mount_sys(rootfs)
    for name in ETC_FILES:
        _bind(directory / "etc" / name, _file_in(rootfs, f"etc/{name}"))
    for volume in volumes:
        inside = _directory_in if volume.host.is_dir() else _file_in
        _bind(volume.host, inside(rootfs, volume.container), volume.read_only)
    enter(rootfs)
