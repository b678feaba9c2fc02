"""`cp`: files between the host and a container, running or stopped, as `docker cp` copies them.

The container's root is reached as `export` reaches it, in a forked child (it may join the container's
mount namespace, where the host's paths are gone), so bytes cross between child and parent as a tar
stream through a pipe: out of the container, the child writes and the caller extracts; into it, the
caller writes and the child extracts. Paths inside the container resolve there, symlinks included,
and never lead out of its root. Extraction takes tarfile's `data` filter: no device files, no links
out of the target, no absolute names.

Where a copy lands follows Docker: onto an existing folder, the source goes inside it under its own
name; otherwise it is written at the destination path itself, whose parent must exist. A source ending
in `/.` copies a folder's contents rather than the folder.
"""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from registry.runtime.export import container_root
from registry.runtime.state import Container, ContainerError
from registry.unpack import resolve


class CopyError(ContainerError):
    """A path that cannot be copied (missing source, missing destination parent, ...)."""


def _numeric(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uname = info.gname = ""
    return info


def write_source(source: Path, out: BinaryIO) -> None:
    """A tar of `source`, a file or folder, under its own name."""
    if not os.path.lexists(source):
        raise CopyError(f"no such file or directory: {source}")
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        archive.add(source, arcname=source.name or ".", filter=_numeric)


def _merge(source: Path, target: Path) -> None:
    """Move `source` to `target`; folders merge into folders, anything else replaces what was there."""
    if source.is_dir() and not source.is_symlink() and target.is_dir() and not target.is_symlink():
        for name in os.listdir(source):
            _merge(source / name, target / name)
        return
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    os.replace(source, target)


def extract_to(stream: BinaryIO, destination: Path, contents: bool = False) -> None:
    """Extract a tar made by `write_source` where Docker puts it (see the module's docstring); with
    `contents`, what its folder holds goes into `destination` (made when missing)."""
    parent = destination if destination.is_dir() else destination.parent
    if not parent.is_dir():
        raise CopyError(f"destination folder {destination.parent} does not exist")
    with tempfile.TemporaryDirectory(dir=parent, prefix=".cp-") as scratch:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            archive.extractall(scratch, filter="data")
        (name,) = os.listdir(scratch)
        top = Path(scratch) / name
        if contents and top.is_dir():
            destination.mkdir(exist_ok=True)
            for entry in os.listdir(top):
                _merge(top / entry, destination / entry)
        elif destination.is_dir():
            _merge(top, destination / name)
        else:
            os.replace(top, destination)


def _inside(path: str) -> Path:
    """`path` of the container, resolved there, relative to the container's root (the current folder
    of the child doing the copy)."""
    return resolve(Path("."), path)


def names_contents(path: str) -> bool:
    """`folder/.` means the folder's contents (a Path would drop the `.`)."""
    return path.endswith("/.")


def _fork(container: Container, directory: Path, work: Callable[[], None]) -> int:
    """A child in the container's root (its current folder) doing `work`; its PID."""
    child = os.fork()
    if child == 0:
        code = 1
        try:
            os.chdir(container_root(container, directory))
            work()
            code = 0
        except CopyError as error:
            print(f"registry: {error}", file=sys.stderr)
        except BaseException as error:  # a forked child must not return to the caller
            print(f"registry: cp: {error}", file=sys.stderr)
        finally:
            os._exit(code)
    return child


def _wait(container: Container, child: int) -> None:
    _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise CopyError(f"could not copy with container {container.name}")


def copy_out(container: Container, directory: Path, path: str, destination: Path | None) -> None:
    """`path` of the container to `destination` on the host, or as a tar to standard output (None)."""
    read_end, write_end = os.pipe()

    def produce() -> None:
        os.close(read_end)
        with open(write_end, "wb") as out:
            write_source(_inside(path), out)

    child = _fork(container, directory, produce)
    os.close(write_end)
    failure: CopyError | None = None
    with open(read_end, "rb") as stream:
        try:
            if destination is None:
                shutil.copyfileobj(stream, sys.stdout.buffer)
            else:
                extract_to(stream, destination, names_contents(path))
        except tarfile.ReadError:
            pass  # the child failed before writing anything: it said why
        except CopyError as error:
            failure = error
    _wait(container, child)
    if failure is not None:
        raise failure


def copy_in(container: Container, directory: Path, source: str | None, path: str) -> None:
    """`source` on the host (or a tar on standard input, None) to `path` in the container."""
    if source is not None and not os.path.lexists(source):
        raise CopyError(f"no such file or directory: {source}")
    read_end, write_end = os.pipe()

    def consume() -> None:
        os.close(write_end)
        with open(read_end, "rb") as stream:
            extract_to(stream, _inside(path), source is not None and names_contents(source))

    child = _fork(container, directory, consume)
    os.close(read_end)
    with open(write_end, "wb") as out:
        try:
            if source is None:
                shutil.copyfileobj(sys.stdin.buffer, out)
            else:
                write_source(Path(source), out)
        except BrokenPipeError:
            pass  # the child stopped reading: it says why
    _wait(container, child)
