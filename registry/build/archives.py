"""Tar archives a build unpacks: a context streamed in or fetched, and the local archives ADD expands.

Both are unpacked as Docker unpacks them, modes, owners and times kept (set-user-ID and group-writable
bits included, which Python's own `tar` filter would clear), while entries leading outside the folder
(absolute names, `..`, through a symlink) are refused. Compression (gzip, bzip2, xz, zstd) is read the
way `registry import` reads it.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import BinaryIO

from registry.build.errors import BuildError
from registry.client.importer import decompressed


def is_tar(path: Path) -> bool:
    """Whether `path` holds a tar archive, plain or compressed (what ADD unpacks)."""
    with open(path, "rb") as raw:
        head = decompressed(raw).read(tarfile.BLOCKSIZE)
    if len(head) < tarfile.BLOCKSIZE:
        return False
    try:
        tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _contained(member: tarfile.TarInfo, destination: str) -> tarfile.TarInfo:
    checked = tarfile.tar_filter(member, destination)  # refuses escapes, but also clears mode bits...
    return checked.replace(mode=member.mode, deep=False)  # ...which Docker keeps


def extract(stream: BinaryIO, folder: Path, name: str) -> None:
    """Unpack the (possibly compressed) tar in `stream` into `folder`; `name` is for errors."""
    try:
        with tarfile.open(fileobj=decompressed(stream), mode="r|") as archive:  # type: ignore[call-overload]
            archive.extractall(folder, filter=_contained)
    except tarfile.TarError as error:
        raise BuildError(f"cannot unpack {name}: {error}") from None
