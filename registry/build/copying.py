"""COPY and ADD: what the sources are, and the tree of changes they make, staged in a folder.

Sources are paths relative to the context (or to another stage's root, for `COPY --from`): globs as Go's
filepath.Match reads them, never leading outside (`../x` is refused), `.dockerignore`d paths invisible.
The destination is read as Docker reads it: relative to WORKDIR, a folder when it ends with `/`, when
there are several sources, when a source is a folder or when it already is a folder in the image; its
path is resolved in the image's root (a symlinked /var/run is followed there). The staged tree holds the
destination's parent folders (with the image's own metadata when they exist, root's 0755 when they do
not) and the copied entries: owner 0:0 for context files (or `--chown`'s), the source's own owners for
`COPY --from`, modes and times kept. ADD unpacks local tar archives (plain, gzip, bzip2, xz).
"""

from __future__ import annotations

import glob
import hashlib
import os
import posixpath
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from registry.build.archives import extract, is_tar
from registry.build.errors import BuildError
from registry.build.ignore import IgnoreRules
from registry.build.layers import hash_entry, walk
from registry.build.owners import Owners
from registry.unpack import PathEscape, resolve

_MAGIC = ("*", "?", "[")


@dataclass(frozen=True)
class Source:
    path: Path  # on this host
    relative: str  # to the context or stage root ("." for the root itself)
    name: str | None = None  # the file name at the destination, if not the path's (ADD URL)
    mode: int | None = None  # ADD of a URL: 0600, as Docker makes it
    mtime: int | None = None


@dataclass(frozen=True)
class CopyOptions:
    owner: tuple[int, int] | None = None  # --chown, resolved
    chmod: int | None = None
    keep_owner: bool = False  # COPY --from: the stage's owners stay
    extract: bool = False  # ADD: local archives are unpacked
    created_mtime: int = 0  # for the folders the copy creates


def _outside(pattern: str) -> BuildError:
    return BuildError(f"forbidden path outside the build context: {pattern}")


def _missing(pattern: str) -> BuildError:
    return BuildError(f"file not found in build context or excluded by .dockerignore: {pattern}")


def find_sources(root: Path, patterns: list[str], ignore: IgnoreRules | None) -> list[Source]:
    found: list[Source] = []
    for pattern in patterns:
        relative = posixpath.normpath(pattern.lstrip("/") or ".")
        if relative == ".." or relative.startswith("../"):
            raise _outside(pattern)
        if any(char in relative for char in _MAGIC):
            matches = sorted(glob.glob(relative, root_dir=root, include_hidden=True))
            matches = [match for match in matches if not (ignore and ignore.excluded(match))]
            if not matches:
                raise BuildError(f"no source files were specified: nothing matches {pattern}")
        else:
            matches = [relative]
        for match in matches:
            if match != "." and ignore and ignore.excluded(match):
                raise _missing(pattern)
            try:
                path = resolve(root, match) if match != "." else root
            except PathEscape:
                raise _outside(pattern) from None
            if not os.path.lexists(path):
                raise _missing(pattern)
            found.append(Source(path, match))
    return found


def checksum(sources: list[Source], ignore: IgnoreRules | None) -> str:
    """What the step cache keys COPY and ADD by: every source entry the copy would take."""
    hasher = hashlib.sha256()
    for source in sources:
        hasher.update(f"{source.relative}\0{source.name}\0{source.mode}\0{source.mtime}\n".encode())
        info = os.lstat(source.path)
        hash_entry(hasher, "", source.path, info)
        if not stat.S_ISDIR(info.st_mode):
            continue
        for name, child in walk(source.path):
            relative = name if source.relative == "." else f"{source.relative}/{name}"
            if not (ignore and ignore.excluded(relative)):
                hash_entry(hasher, name, source.path / name, child)
    return "sha256:" + hasher.hexdigest()


def stage_folder(path: str, lower: Path, staging: Path, created_mtime: int, owners: Owners) -> bool:
    """WORKDIR's folder (resolved in the image) staged with its parents; False if it exists already."""
    resolved = resolve(lower, path)
    if resolved.is_dir():
        return False
    relative = str(resolved.relative_to(lower))
    stager = _Stager(staging, lower, CopyOptions(created_mtime=created_mtime), None, owners)
    stager.make_parents(relative)
    stager.finish()
    return True


class _Stager:
    def __init__(
        self, staging: Path, lower: Path, options: CopyOptions, ignore: IgnoreRules | None, owners: Owners
    ) -> None:
        self.staging = staging
        self.owners = owners
        self.lower = lower
        self.options = options
        self.ignore = ignore
        self.directories: list[tuple[Path, os.stat_result | None]] = []  # metadata set last, deepest first

    def make_parents(self, relative: str) -> Path:
        """`relative` (a folder, resolved in the image) and its parents in the staging tree; the ones
        the image lacks are made 0755, owned as --chown says (as Docker's builders make them)."""
        parts = [part for part in relative.split("/") if part]
        for count in range(1, len(parts) + 1):
            sub = "/".join(parts[:count])
            here = self.staging / sub
            if here.is_dir():
                continue
            here.mkdir()
            below = self.lower / sub
            if below.is_dir() and not below.is_symlink():
                self.directories.append((here, os.lstat(below)))
                continue
            self.owners.chown(self.staging, here, *(self.options.owner or (0, 0)))
            os.chmod(here, 0o755)
            os.utime(here, (self.options.created_mtime, self.options.created_mtime))
        return self.staging / relative if relative else self.staging

    def _owner(self, info: os.stat_result) -> tuple[int, int]:
        if self.options.owner is not None:
            return self.options.owner
        return (info.st_uid, info.st_gid) if self.options.keep_owner else (0, 0)

    def _apply(
        self, target: Path, info: os.stat_result, mode: int | None = None, mtime: int | None = None
    ) -> None:
        self.owners.chown(self.staging, target, *self._owner(info))
        if not stat.S_ISLNK(info.st_mode):
            os.chmod(target, mode if mode is not None else self.options.chmod or stat.S_IMODE(info.st_mode))
        if mtime is not None:
            os.utime(target, (mtime, mtime), follow_symlinks=False)
        else:
            os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)

    def entry(
        self, source: Path, target: Path, relative: str, mode: int | None = None, mtime: int | None = None
    ) -> None:
        """Copy one entry (a folder's whole content, recursively); `relative` is for .dockerignore."""
        info = os.lstat(source)
        if stat.S_ISDIR(info.st_mode):
            if not target.is_dir():
                if os.path.lexists(target):
                    target.unlink()
                target.mkdir()
                self.directories.append((target, None))
            for name in sorted(os.listdir(source)):
                child = name if relative == "." else f"{relative}/{name}"
                if self.ignore and self.ignore.excluded(child):
                    continue
                self.entry(source / name, target / name, child)
            self._apply(target, info)
            return
        if os.path.lexists(target):
            shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
        if stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(source), target)
        elif stat.S_ISREG(info.st_mode):
            shutil.copyfile(source, target)
        else:
            return  # devices, pipes and sockets are not copied
        self._apply(target, info, mode, mtime)

    def finish(self) -> None:
        for directory, info in reversed(self.directories):
            if info is not None:
                self.owners.keep(directory, info)
                os.chmod(directory, stat.S_IMODE(info.st_mode))
                os.utime(directory, ns=(info.st_atime_ns, info.st_mtime_ns))


def stage_copy(
    sources: list[Source],
    dest: str,
    workdir: str,
    lower: Path,
    staging: Path,
    options: CopyOptions,
    owners: Owners,
    ignore: IgnoreRules | None = None,
    keyword: str = "COPY",
) -> None:
    """Stage in `staging` what COPY/ADD of `sources` to `dest` changes in the image rooted at `lower`."""
    absolute = posixpath.normpath(posixpath.join(workdir or "/", dest))
    directory_syntax = dest.endswith("/") or dest.endswith("/.") or dest == "."
    if len(sources) > 1 and not directory_syntax:
        raise BuildError(
            f"When using {keyword} with more than one source file, "
            "the destination must be a directory and end with a /"
        )
    try:
        resolved = resolve(lower, absolute)
    except PathEscape as error:
        raise BuildError(f"{keyword} destination {dest!r}: {error}") from None
    relative = str(resolved.relative_to(lower)) if resolved != lower else ""
    relative = "" if relative == "." else relative
    into_folder = (
        directory_syntax
        or (resolved.is_dir() and not resolved.is_symlink())
        or any(os.path.isdir(source.path) and not os.path.islink(source.path) for source in sources)
    )
    archives = [
        source for source in sources
        if options.extract and source.name is None and os.path.isfile(source.path) and is_tar(source.path)
    ]  # fmt: skip
    stager = _Stager(staging, lower, options, ignore, owners)
    if into_folder or archives:
        folder = stager.make_parents(relative)
        for source in sources:
            if source in archives:
                with open(source.path, "rb") as archive:
                    extract(archive, folder, source.relative)
            elif os.path.isdir(source.path) and not os.path.islink(source.path):
                stager.entry(source.path, folder, source.relative)
            else:
                name = source.name or posixpath.basename(source.relative)
                stager.entry(source.path, folder / name, source.relative, source.mode, source.mtime)
    else:
        parent, _, name = relative.rpartition("/")
        folder = stager.make_parents(parent)
        only = sources[0]
        stager.entry(only.path, folder / name, only.relative, only.mode, only.mtime)
    stager.finish()
