"""A folder of changes becomes a layer in the local store, the same bytes every time for the same tree.

The folder is either a RUN container's overlayfs upper layer (where a deleted path is a 0/0 character
device and a replaced folder carries the `overlay.opaque` extended attribute) or a tree COPY/ADD staged.
Entries are written in sorted order with numeric owners and no user or group names, times clamped to
SOURCE_DATE_EPOCH when it is set, hard links kept as links, deletions as `.wh.` whiteouts and replaced
folders as `.wh..wh..opq`, the OCI layer conventions. The tar is then gzipped as `registry import` does
(fixed header, level 6), so equal trees give equal diff_ids and equal blob digests.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from registry.build.owners import Owners
from registry.client.importer import write_layer
from registry.client.media import OCI_LAYER_GZIP
from registry.client.store import ImageStore
from registry.runtime.changes import is_opaque, is_whiteout
from registry.unpack.apply import OPAQUE, WHITEOUT

_READ: Final = 1 << 20


@dataclass(frozen=True)
class BuiltLayer:
    """A layer blob in the local store; shaped like the store's LayerRef, so runtime and unpack take it."""

    digest: str
    diff_id: str
    size: int
    path: Path
    media_type: str = OCI_LAYER_GZIP


def walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(path relative to `root`, its lstat) of everything below `root`, parents first, names sorted."""
    for name in sorted(os.listdir(root)):
        path = root / name
        info = os.lstat(path)
        yield name, info
        if stat.S_ISDIR(info.st_mode):
            for child, child_info in walk(path):
                yield f"{name}/{child}", child_info


class _TreeTar:
    """Writes one tree's entries into a tar stream, as the module docstring says."""

    def __init__(self, root: Path, archive: tarfile.TarFile, epoch: int | None, owners: Owners) -> None:
        self.root = root
        self.archive = archive
        self.epoch = epoch
        self.owners = owners
        self.links: dict[tuple[int, int], str] = {}

    def _header(self, name: str, info: os.stat_result) -> tarfile.TarInfo:
        header = tarfile.TarInfo(name)
        header.mode = stat.S_IMODE(info.st_mode)
        header.uid, header.gid = self.owners.of(name, info)
        header.uname = header.gname = ""
        mtime = int(info.st_mtime)
        header.mtime = min(mtime, self.epoch) if self.epoch is not None else mtime
        return header

    def add(self, name: str, info: os.stat_result | None) -> None:
        """One entry; `info` None (or an overlay whiteout) for a deleted path."""
        path = self.root / name
        parent, _, base = name.rpartition("/")
        if info is None or is_whiteout(info):
            self.archive.addfile(tarfile.TarInfo(f"{parent}/{WHITEOUT}{base}" if parent else WHITEOUT + base))
            return
        header = self._header(name, info)
        mode = info.st_mode
        if stat.S_ISDIR(mode):
            header.type = tarfile.DIRTYPE
            self.archive.addfile(header)
            if is_opaque(str(path)):
                marker = tarfile.TarInfo(f"{name}/{OPAQUE}")
                marker.mtime = header.mtime
                self.archive.addfile(marker)
        elif stat.S_ISLNK(mode):
            header.type = tarfile.SYMTYPE
            header.linkname = os.readlink(path)
            self.archive.addfile(header)
        elif stat.S_ISREG(mode):
            key = (info.st_dev, info.st_ino)
            if info.st_nlink > 1 and key in self.links:
                header.type = tarfile.LNKTYPE
                header.linkname = self.links[key]
                self.archive.addfile(header)
                return
            self.links[key] = name
            header.size = info.st_size
            with open(path, "rb") as content:
                self.archive.addfile(header, content)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            header.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            header.devmajor, header.devminor = os.major(info.st_rdev), os.minor(info.st_rdev)
            self.archive.addfile(header)
        elif stat.S_ISFIFO(mode):
            header.type = tarfile.FIFOTYPE
            self.archive.addfile(header)
        # sockets are left out, as Docker leaves them out


def hash_entry(hasher: Any, name: str, path: Path, info: os.stat_result) -> None:
    """Feed one entry to a step-cache checksum: name, mode, owners, link target and content, not times
    (as Docker's checksums), so touching a file without changing it keeps the cache."""
    hasher.update(f"{name}\0{info.st_mode:o}\0{info.st_uid}:{info.st_gid}\0".encode())
    if stat.S_ISLNK(info.st_mode):
        hasher.update(os.readlink(path).encode())
    elif stat.S_ISREG(info.st_mode):
        with open(path, "rb") as content:
            while chunk := content.read(_READ):
                hasher.update(chunk)
    hasher.update(b"\n")


def store_tree(
    store: ImageStore, root: Path, epoch: int | None, owners: Owners | None = None
) -> BuiltLayer | None:
    """The layer of the changes under `root` (an overlay upper folder, or a staged tree), put in the
    store (under the caller's lease); None when `root` is empty: a step that changed nothing adds no
    layer."""
    return store_entries(store, root, list(walk(root)), epoch, owners)


def store_changes(
    store: ImageStore, root: Path, changes: list[tuple[str, str]], epoch: int | None, owners: Owners
) -> BuiltLayer | None:
    """The layer of `changes` (runtime.changes' (A|C|D, /path) list) of the full tree at `root`."""
    entries = [
        (path.lstrip("/"), None if kind == "D" else os.lstat(root / path.lstrip("/")))
        for kind, path in changes
    ]
    return store_entries(store, root, entries, epoch, owners)


def store_entries(
    store: ImageStore,
    root: Path,
    entries: list[tuple[str, os.stat_result | None]],
    epoch: int | None,
    owners: Owners | None = None,
) -> BuiltLayer | None:
    if not entries:
        return None
    tar_path = store.temporary_file()
    blob_path = store.temporary_file()
    try:
        with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as archive:
            writer = _TreeTar(root, archive, epoch, owners or Owners())
            for name, info in entries:
                writer.add(name, info)
        with open(tar_path, "rb") as source, open(blob_path, "wb") as target:
            diff_id, digest, size = write_layer(source, target)
        path = store.commit_blob(blob_path, digest, verified=True)
        return BuiltLayer(digest, diff_id, size, path)
    finally:
        tar_path.unlink(missing_ok=True)
        blob_path.unlink(missing_ok=True)
