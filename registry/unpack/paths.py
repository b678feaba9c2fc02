"""Resolving paths inside a root directory the way the kernel would inside a chroot, refusing escapes.

Layers are hostile input: an entry `a/b` where a previous entry made `a` a symlink to `../../etc` must
not write to the host's /etc. So every component is looked up with lstat, symlinks are expanded relative
to the root (an absolute target starts over at the root, as it would inside the container), and any `..`
that would climb above the root is refused rather than clamped: no legitimate image needs it.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections import deque
from pathlib import Path

from registry.unpack.errors import PathEscape

MAX_SYMLINKS = 40  # as the kernel's ELOOP limit


def normalize(name: str) -> str:
    """A tar entry name (or hard-link target) as a clean path relative to the root; '' is the root.

    Absolute names and names climbing out with `..` are refused: a layer's paths are relative to the
    root of the image, and an entry that says otherwise is an attack or a broken tool.
    """
    if name.startswith("/"):
        raise PathEscape(f"absolute path {name!r}")
    clean = posixpath.normpath(name)
    if clean == ".." or clean.startswith("../"):
        raise PathEscape(f"path {name!r} leads outside the root")
    return "" if clean == "." else clean


def resolve(root: Path, path: str, follow_final: bool = True) -> Path:
    """The host path that `path` (relative to `root`) names inside `root`, with symlinks resolved there.

    Components that do not exist are kept literally (they can then be created safely: nothing under a
    missing directory can be a symlink). With `follow_final=False` the last component is not expanded,
    so a symlink there can itself be replaced or removed.
    """
    pending = deque(part for part in path.split("/") if part not in ("", "."))
    resolved: list[str] = []
    links = 0
    via = ""
    while pending:
        part = pending.popleft()
        if part == "..":
            if not resolved:
                raise PathEscape(f"{path!r} leads outside the root{via}")
            resolved.pop()
            continue
        if not pending and not follow_final:
            resolved.append(part)
            break
        candidate = root.joinpath(*resolved, part)
        try:
            mode = os.lstat(candidate).st_mode
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if not stat.S_ISLNK(mode):
            resolved.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise PathEscape(f"too many levels of symbolic links in {path!r}")
        target = os.readlink(candidate)
        via = f" through the symlink {'/'.join([*resolved, part])!r} -> {target!r}"
        if target.startswith("/"):
            resolved.clear()
        pending.extendleft(reversed([p for p in target.split("/") if p not in ("", ".")]))
    return root.joinpath(*resolved)
