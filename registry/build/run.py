"""RUN: the command in a container of the bundled runtime, on the image as built so far; the container's
writable layer becomes the step's layer.

The container is an ordinary one (`registry ps` shows it while it runs), removed when the step ends.
Its overlayfs upper folder holds exactly what the command changed, plus the mount points the runtime
made for /proc, /dev, /sys and /etc/hosts, hostname and resolv.conf when the image lacked them: those
are dropped (Docker keeps them out of its layers too), as are folders that were only copied up (no
change but their time), so a command that changes nothing adds no layer. Where the kernel refused
overlayfs the container ran on a full copy, compared with the image entry by entry (runtime.changes).
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

from registry.build.errors import BuildError
from registry.build.layers import BuiltLayer, store_changes, store_tree
from registry.build.owners import Owners
from registry.client.store import ImageStore
from registry.runtime.changes import RUNTIME_MOUNTS, copy_changes, is_opaque, without_mount_points
from registry.runtime.containers import ImageToRun, RunOptions, Runtime
from registry.runtime.launch import StartError
from registry.runtime.spec import Process

_MOUNT_POINTS = tuple(point.lstrip("/") for point in RUNTIME_MOUNTS)
_METADATA = ("st_mode", "st_uid", "st_gid")


def _same_folder(upper: os.stat_result, lower: Path) -> bool:
    try:
        below = os.lstat(lower)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return all(getattr(upper, field) == getattr(below, field) for field in _METADATA)


def _prune(upper: Path, lower: Path) -> None:
    """Leave in `upper` only what the command changed (see the module docstring)."""
    for point in _MOUNT_POINTS:
        path = upper / point
        if os.path.lexists(path) and not os.path.lexists(lower / point):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    for directory, folders, files in os.walk(upper, topdown=False):
        here = Path(directory)
        if here == upper or files or any(os.path.lexists(here / name) for name in folders):
            continue
        info = os.lstat(here)
        relative = here.relative_to(upper)
        if stat.S_ISDIR(info.st_mode) and not is_opaque(str(here)) and _same_folder(info, lower / relative):
            here.rmdir()


def run_command(
    runtime: Runtime,
    store: ImageStore,
    image: ImageToRun,
    process: Process,
    network: str,
    epoch: int | None,
    owners: Owners,
) -> BuiltLayer | None:
    """Run `process` on `image`; the layer of what it changed (None when nothing). A failure raises."""
    sys.stdout.flush()  # the command writes to the same descriptor: keep the order
    container = runtime.create(image, process, RunOptions(network=network))
    try:
        try:
            code = runtime.run(container)
        except StartError as error:
            raise BuildError(f"The command {process.args!r} could not start: {error}") from None
        if code != 0:
            raise BuildError(f"The command {process.args!r} returned a non-zero code: {code}")
        directory, lower = runtime.store.directory(container), Path(container.lower)
        if container.storage == "overlay":
            _prune(directory / "upper", lower)
            return store_tree(store, directory / "upper", epoch, owners)
        changes = without_mount_points(copy_changes(directory / "rootfs", lower), RUNTIME_MOUNTS)
        return store_changes(store, directory / "rootfs", changes, epoch, owners)
    finally:
        runtime.remove(container, force=True)
