"""`export`: a container's filesystem as a tar archive, as its processes see it minus runtime mounts."""

from __future__ import annotations

import os
import sys
import tarfile
from pathlib import Path
from typing import BinaryIO

from registry.runtime import namespaces, rootfs
from registry.runtime.linux import CLONE_NEWNS, MS_PRIVATE, MS_REC, clone_mount, mount
from registry.runtime.state import Container, ContainerError


def export_filesystem(container: Container, directory: Path, out: BinaryIO) -> None:
    """Write the container's filesystem (its image and its changes, no runtime mounts) as a tar.

    The work happens in a forked child: it may join the container's mount namespace or make one.
    """
    out.flush()
    child = os.fork()
    if child == 0:
        code = 1
        try:
            os.chdir(container_root(container, directory))
            write_tar(Path("."), out)
            out.flush()
            code = 0
        except BaseException as error:  # a forked child must not return to the caller
            print(f"registry: export: {error}", file=sys.stderr)
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise ContainerError(f"could not export container {container.name}")


def container_root(container: Container, directory: Path) -> Path | int:
    """In a forked child: the container's root filesystem, as a path or a directory descriptor.

    A running container's overlay is taken from its own mount namespace (mounting the same upper
    layer twice is undefined behaviour), cloned without what is mounted on it; a stopped one is
    mounted again in a mount namespace of our own.
    """
    if container.storage == "copy":
        return directory / "rootfs"
    if container.running:
        assert container.pid is not None
        root = namespaces.join(container.pid, ("user", "mnt"))
        return clone_mount(root)
    namespaces.create(CLONE_NEWNS, container.userns)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    return rootfs.mount_root(directory, Path(container.lower), container.storage, container.userns)


def write_tar(root: Path, out: BinaryIO) -> None:
    """A tar of everything under `root`, with numeric owners only (host names mean nothing inside)."""

    def numeric(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uname = info.gname = ""
        return info

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(os.listdir(root)):
            archive.add(root / name, arcname=name, filter=numeric)
