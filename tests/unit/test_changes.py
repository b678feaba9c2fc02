"""`diff` read from an overlayfs upper folder made by hand: whiteouts, opaque folders, copy-ups."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from registry.runtime.changes import RUNTIME_MOUNTS, copy_changes, overlay_changes, without_mount_points
from tests.support.tools import unavailable


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def test_whiteouts_opaque_folders_and_copy_ups(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        unavailable("whiteouts are character devices: mknod needs root")
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    _tree(lower, {"etc/motd": "hi", "var/cache/a": "1", "var/cache/b": "2", "bin/tool": "x"})
    _tree(upper, {"etc/motd": "changed", "var/cache/new": "3", "srv/added": "4"})
    os.mknod(upper / "bin", stat.S_IFCHR | 0o000, os.makedev(0, 0))  # the whole /bin deleted
    os.setxattr(upper / "var" / "cache", "trusted.overlay.opaque", b"y")
    assert overlay_changes(upper, lower) == [
        ("D", "/bin"),
        ("C", "/etc"),
        ("C", "/etc/motd"),
        ("A", "/srv"),
        ("A", "/srv/added"),
        ("C", "/var"),
        ("C", "/var/cache"),
        ("D", "/var/cache/a"),
        ("D", "/var/cache/b"),
        ("A", "/var/cache/new"),
    ]


def test_copy_changes_compare_entry_by_entry(tmp_path: Path) -> None:
    lower, root = tmp_path / "lower", tmp_path / "root"
    _tree(lower, {"etc/motd": "hi", "gone/file": "x", "same": "s"})
    _tree(root, {"etc/motd": "changed!", "new": "n", "same": "s"})
    os.utime(root / "same", ns=(os.stat(lower / "same").st_atime_ns, os.stat(lower / "same").st_mtime_ns))
    changes = dict((path, kind) for kind, path in copy_changes(root, lower))
    assert changes["/etc/motd"] == "C" and changes["/new"] == "A" and changes["/gone"] == "D"
    assert "/gone/file" not in changes and "/same" not in changes


def test_the_runtimes_mount_points_are_not_changes() -> None:
    changes = [("C", "/etc"), ("A", "/etc/hosts"), ("A", "/dev"), ("A", "/dev/null"), ("C", "/etc/motd")]
    assert without_mount_points(changes, RUNTIME_MOUNTS) == [("C", "/etc"), ("C", "/etc/motd")]
    assert without_mount_points(changes[:4], RUNTIME_MOUNTS) == []
