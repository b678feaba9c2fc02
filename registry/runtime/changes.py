"""`diff`: what a container changed in its filesystem, as `docker diff` prints it (A added, C changed,
D deleted), read from its writable layer without touching the running container.

With overlayfs the writable layer is the upper folder: an entry there is an addition, or a change when
the image has the same path; a character device 0:0 is a whiteout (the path was deleted); a folder
marked opaque replaced the image's folder, whose old entries are then deleted. A container on a full copy
(no overlayfs) is compared with the image entry by entry, as Docker's naive differ does.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


def is_whiteout(info: os.stat_result) -> bool:
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def is_opaque(path: str) -> bool:
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def _walk(root: Path, relative: str = "") -> Iterator[tuple[str, os.stat_result]]:
    """(container path, lstat) of every entry under root, parents before children."""
    try:
        names = sorted(os.listdir(root / relative.lstrip("/")))
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in names:
        path = f"{relative}/{name}"
        info = os.lstat(root / path.lstrip("/"))
        yield path, info
        if stat.S_ISDIR(info.st_mode):
            yield from _walk(root, path)


def _exists(root: Path, path: str) -> bool:
    return os.path.lexists(root / path.lstrip("/"))


# What the runtime mounts over in every container (registry.runtime.rootfs.setup): the mount points
# it creates are its own, not the container's changes, as Docker keeps them in a layer of their own.
RUNTIME_MOUNTS = ("/proc", "/dev", "/sys", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf")


def without_mount_points(changes: list[tuple[str, str]], mounts: tuple[str, ...]) -> list[tuple[str, str]]:
    """`changes` minus the mount points and what lies under them, and minus a folder that is listed
    only because a mount point was made in it (no other change lies below it)."""

    def under(path: str, folder: str) -> bool:
        return path == folder or path.startswith(folder + "/")

    kept = [(kind, path) for kind, path in changes if not any(under(path, mount) for mount in mounts)]
    return [
        (kind, path)
        for kind, path in kept
        if not (
            any(mount.startswith(path + "/") for mount in mounts)
            and not any(other != path and under(other, path) for _, other in kept)
        )
    ]


def overlay_changes(upper: Path, lower: Path) -> list[tuple[str, str]]:
    changes: dict[str, str] = {}
    for path, info in _walk(upper):
        if is_whiteout(info):
            changes[path] = "D"
            continue
        changes[path] = "C" if _exists(lower, path) else "A"
        if stat.S_ISDIR(info.st_mode) and is_opaque(str(upper / path.lstrip("/"))):
            for old, _ in _walk(lower, path):
                if not _exists(upper, old):
                    changes[old] = "D"
    return _pruned(changes)


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    keys = ("st_mode", "st_uid", "st_gid", "st_size", "st_mtime_ns")
    return all(getattr(a, key) == getattr(b, key) for key in keys)


def copy_changes(root: Path, lower: Path) -> list[tuple[str, str]]:
    changes: dict[str, str] = {}
    for path, info in _walk(root):
        try:
            before = os.lstat(lower / path.lstrip("/"))
        except FileNotFoundError:
            changes[path] = "A"
            continue
        if not _same(info, before) or (
            stat.S_ISLNK(info.st_mode) and os.readlink(root / path[1:]) != os.readlink(lower / path[1:])
        ):
            changes[path] = "C"
    for path, _ in _walk(lower):
        if not _exists(root, path):
            changes[path] = "D"
    return _pruned(changes)


def _pruned(changes: dict[str, str]) -> list[tuple[str, str]]:
    """Sorted by path; below a deleted folder only the folder is listed, as Docker lists it."""
    gone = sorted(path for path, kind in changes.items() if kind == "D")
    result = []
    for path in sorted(changes):
        if any(path.startswith(folder + "/") for folder in gone):
            continue
        result.append((changes[path], path))
    return result
