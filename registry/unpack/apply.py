"""Applying one layer's tar stream onto a root filesystem: entries, whiteouts and opaque directories.

Every path is resolved inside the root at the moment it is used (see `paths.resolve`), because earlier
entries of the same hostile layer may have turned any directory into a symlink. Directory modes and
times are applied once the layer is done, so a read-only directory does not stop its own children from
being written and the children do not disturb its mtime.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from registry.unpack.errors import PathEscape, UnpackError
from registry.unpack.headers import BadHeader, check
from registry.unpack.limits import MAX_HEADER_BYTES, Budget, Limits
from registry.unpack.paths import normalize, resolve
from registry.unpack.streams import CHUNK, CORRUPT

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
XATTR_PREFIX = "SCHILY.xattr."
# overlayfs reads these on its lower layers (opaque, redirect, metacopy...): an unpacked image is one, so a
# layer must not be able to set them and steer the overlay.
OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")
# Filesystems (or a missing capability) that refuse an attribute: xattrs are kept only where possible.
XATTR_UNSUPPORTED = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES, errno.EINVAL}
METADATA_HEADERS = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE)


@dataclass(frozen=True)
class Options:
    limits: Limits = field(default_factory=Limits)
    # Device nodes in an image can open the host's disks; they are refused unless asked for.
    allow_devices: bool = False
    # Only root can give files away; others keep every file as their own (ownership is not mapped).
    same_owner: bool = field(default_factory=lambda: os.geteuid() == 0)


class HeaderTooLarge(tarfile.HeaderError):
    pass


class BoundedTarInfo(tarfile.TarInfo):
    """Refuses an oversized PAX or long-name header before tarfile reads all of it into memory."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in METADATA_HEADERS and self.size > MAX_HEADER_BYTES:
            raise HeaderTooLarge(f"a {self.size}-byte metadata header (the limit is {MAX_HEADER_BYTES})")
        return super()._proc_member(tarfile_)  # type: ignore[misc]


def remove(path: str | Path) -> None:
    """Delete whatever is at `path` (a directory with its contents), never following a symlink."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


class LayerApplier:
    """Applies one layer. `written` holds the host paths this layer created (and their parents): the
    OCI spec says whiteouts hide only lower layers' files, never those of their own layer."""

    def __init__(self, root: Path, layer: str, options: Options, budget: Budget) -> None:
        self.root = root
        self.layer = layer
        self.options = options
        self.budget = budget
        self.written: set[str] = set()
        # Deferred modes and times: entry name -> (the host path it was created at, member).
        self.directories: dict[str, tuple[str, tarfile.TarInfo]] = {}

    def apply(self, stream: tarfile.TarFile) -> None:
        while (member := stream.next()) is not None:
            # tarfile keeps every member it has read; in a stream nothing needs them again.
            stream.members.clear()
            self.budget.count_entry(self.layer, member.name)
            try:
                check(member)
                self.entry(stream, member)
            except (PathEscape, BadHeader) as error:
                raise UnpackError(self.layer, str(error), member.name) from None
            except CORRUPT as error:
                raise UnpackError(self.layer, f"corrupt layer: {error}", member.name) from error
            except OSError as error:
                raise UnpackError(self.layer, f"cannot apply: {error}", member.name) from error
        self.finish_directories()

    def entry(self, stream: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = normalize(member.name)
        if not name:
            return  # the root directory itself: its mode and owner are the runtime's business
        parent, _, base = name.rpartition("/")
        if base.startswith(WHITEOUT):
            self.whiteout(parent, base, member)
            return
        directory = resolve(self.root, parent)
        os.makedirs(directory, mode=0o755, exist_ok=True)
        path = directory / base
        if member.isdir():
            self.directory(name, path, member)
        else:
            remove(path)
            self.create(stream, member, path)
        self.mark_written(path)

    def mark_written(self, path: Path) -> None:
        key = str(path)
        root = str(self.root)
        while key != root and key not in self.written:
            self.written.add(key)
            key = os.path.dirname(key)

    def create(self, stream: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
        if member.isreg():
            self.regular(stream, member, path)
        elif member.issym():
            os.symlink(member.linkname, path)
            if self.options.same_owner:
                os.chown(path, member.uid, member.gid, follow_symlinks=False)
            self.set_xattrs(path, member, follow_symlinks=False)
            os.utime(path, ns=(mtime_ns(member),) * 2, follow_symlinks=False)
        elif member.islnk():
            self.hard_link(member, path)
        elif member.ischr() or member.isblk() or member.isfifo():
            self.special(member, path)
        else:
            raise UnpackError(self.layer, f"unsupported tar entry type {member.type!r}", member.name)

    def regular(self, stream: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
        self.budget.check_entry_size(self.layer, member.name, member.size)
        if member.issparse():
            # Holes are expanded on write, so a sparse member's real size is charged on top of its data.
            self.budget.charge_bytes(self.layer, member.size)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(path, flags, 0o600), "wb") as out:
            source = stream.extractfile(member)
            assert source is not None  # a regular member always has data
            shutil.copyfileobj(source, out, CHUNK)
            out.flush()
            self.set_metadata(out.fileno(), member)

    def hard_link(self, member: tarfile.TarInfo, path: Path) -> None:
        target = resolve(self.root, normalize(member.linkname), follow_final=False)
        try:
            mode = os.lstat(target).st_mode
        except FileNotFoundError:
            raise UnpackError(
                self.layer, f"hard link to {member.linkname!r}, which does not exist", member.name
            ) from None
        if stat.S_ISDIR(mode):
            raise UnpackError(self.layer, f"hard link to the directory {member.linkname!r}", member.name)
        os.link(target, path, follow_symlinks=False)

    def special(self, member: tarfile.TarInfo, path: Path) -> None:
        if member.isfifo():
            os.mkfifo(path, 0o600)
        elif not self.options.allow_devices:
            raise UnpackError(self.layer, "device nodes are not allowed in layers", member.name)
        else:
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(path, 0o600 | kind, os.makedev(member.devmajor, member.devminor))
        if self.options.same_owner:
            os.chown(path, member.uid, member.gid, follow_symlinks=False)
        os.chmod(path, member.mode)
        self.set_xattrs(path, member, follow_symlinks=False)
        os.utime(path, ns=(mtime_ns(member),) * 2, follow_symlinks=False)

    def directory(self, name: str, path: Path, member: tarfile.TarInfo) -> None:
        try:
            existing = os.lstat(path).st_mode
        except FileNotFoundError:
            existing = 0
        if not stat.S_ISDIR(existing):
            remove(path)
            os.mkdir(path, 0o700)
        if self.options.same_owner:
            os.chown(path, member.uid, member.gid, follow_symlinks=False)
        self.set_xattrs(path, member, follow_symlinks=False)
        self.directories[name] = (str(path), member)

    def finish_directories(self) -> None:
        """Apply the deferred directory modes and times, deepest first, to directories still in place."""
        deepest_first = sorted(self.directories.items(), key=lambda item: item[1][0], reverse=True)
        for name, (created, member) in deepest_first:
            # A later entry may have replaced the directory, or a parent of it by a symlink: then the
            # name no longer leads to where the directory was made, and it is gone.
            try:
                if str(resolve(self.root, name, follow_final=False)) != created:
                    continue
                fd = os.open(created, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except (PathEscape, OSError):  # gone, or now a symlink or a file
                continue
            try:
                os.chmod(fd, member.mode)
                os.utime(fd, ns=(mtime_ns(member),) * 2)
            finally:
                os.close(fd)

    def set_metadata(self, fd: int, member: tarfile.TarInfo) -> None:
        if self.options.same_owner:
            os.fchown(fd, member.uid, member.gid)
        os.fchmod(fd, member.mode)  # after chown, which clears set-id bits
        self.set_xattrs(fd, member)
        os.utime(fd, ns=(mtime_ns(member),) * 2)

    def set_xattrs(self, target: int | Path, member: tarfile.TarInfo, follow_symlinks: bool = True) -> None:
        for key, value in member.pax_headers.items():
            name = key.removeprefix(XATTR_PREFIX)
            if name == key or name.startswith(OVERLAY_XATTRS):
                continue
            try:
                os.setxattr(
                    target,
                    name,
                    value.encode("utf-8", "surrogateescape"),
                    follow_symlinks=follow_symlinks,
                )
            except OSError as error:
                if error.errno not in XATTR_UNSUPPORTED:
                    raise

    def whiteout(self, parent: str, base: str, member: tarfile.TarInfo) -> None:
        directory = resolve(self.root, parent)
        if base == OPAQUE:
            self.clear_lower(str(directory))
            return
        if base.startswith(WHITEOUT + WHITEOUT):
            return  # other aufs metadata (.wh..wh.plnk, ...): no meaning outside aufs
        hidden = base.removeprefix(WHITEOUT)
        if hidden in ("", ".", ".."):
            raise UnpackError(self.layer, "whiteout of an invalid name", member.name)
        victim = directory / hidden
        if str(victim) not in self.written:
            remove(victim)

    def clear_lower(self, directory: str) -> None:
        """An opaque directory: remove what lower layers put in it, keep what this layer wrote."""
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.path not in self.written:
                remove(entry.path)
            elif entry.is_dir(follow_symlinks=False):
                self.clear_lower(entry.path)


def mtime_ns(member: tarfile.TarInfo) -> int:
    return int(member.mtime * 1_000_000_000)
