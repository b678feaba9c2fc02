"""Layers from changed trees: what an overlay upper folder or a full copy says, written as a layer that,
applied by the real unpacker onto the image it came from, gives the changed tree back."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from registry.build.layers import BuiltLayer, store_changes, store_tree
from registry.build.owners import Owners
from registry.client.store import ImageStore
from registry.runtime.changes import copy_changes
from registry.unpack import unpack_layers
from tests.support.tools import unavailable


@pytest.fixture(autouse=True)
def _as_root() -> None:
    if os.geteuid() != 0:
        unavailable("whiteouts (mknod), trusted.* attributes and owners need root")


def _tree(root: Path) -> dict[str, tuple]:
    found = {}
    for directory, folders, files in os.walk(root):
        for name in [*folders, *files]:
            path = Path(directory) / name
            info = os.lstat(path)
            content = (
                path.read_bytes()
                if stat.S_ISREG(info.st_mode)
                else os.readlink(path)
                if path.is_symlink()
                else None
            )
            found[str(path.relative_to(root))] = (
                stat.S_IFMT(info.st_mode),
                stat.S_IMODE(info.st_mode),
                info.st_uid,
                content,
            )
    return found


def _image(root: Path) -> Path:
    """A small image root: folders, files, a symlink, a hard link."""
    (root / "a" / "deep").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "keep").write_text("keep\n")
    (root / "a" / "gone").write_text("gone\n")
    (root / "a" / "deep" / "x").write_text("x\n")
    (root / "b" / "y").write_text("y\n")
    os.symlink("a/keep", root / "link")
    os.link(root / "a" / "keep", root / "a" / "keep-too")
    return root


def _applied(store: ImageStore, lower: Path, layer: BuiltLayer, into: Path) -> Path:
    subprocess.run(["cp", "-a", f"{lower}/.", str(into)], check=True)
    unpack_layers([layer], [layer.diff_id], into)
    return into


def test_full_copy_changes_become_a_layer(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    lower = _image(tmp_path / "lower")
    changed = tmp_path / "changed"
    subprocess.run(["cp", "-a", str(lower), str(changed)], check=True)
    (changed / "a" / "gone").unlink()
    shutil.rmtree(changed / "b")
    (changed / "a" / "keep").write_text("changed\n")
    (changed / "a" / "new").write_text("new\n")
    os.chown(changed / "a" / "new", 65534, 65534)
    (changed / "a" / "deep").chmod(0o700)
    with store.lease():
        layer = store_changes(store, changed, copy_changes(changed, lower), None, Owners(rootless=False))
    assert layer is not None
    assert _tree(_applied(store, lower, layer, tmp_path / "applied")) == _tree(changed)


def test_overlay_upper_with_whiteouts_and_an_opaque_folder(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    lower = _image(tmp_path / "lower")
    upper = tmp_path / "upper"
    (upper / "a").mkdir(parents=True)
    os.mknod(upper / "a" / "gone", stat.S_IFCHR | 0o000, os.makedev(0, 0))  # overlayfs's whiteout
    (upper / "b").mkdir()
    os.setxattr(upper / "b", "trusted.overlay.opaque", b"y")  # b replaced: y is gone, z is new
    (upper / "b" / "z").write_text("z\n")
    expected = tmp_path / "expected"
    subprocess.run(["cp", "-a", str(lower), str(expected)], check=True)
    (expected / "a" / "gone").unlink()
    (expected / "b" / "y").unlink()
    (expected / "b" / "z").write_text("z\n")
    with store.lease():
        first = store_tree(store, upper, 1700000000, Owners(rootless=False))
        again = store_tree(store, upper, 1700000000, Owners(rootless=False))
        assert store_tree(store, _empty(tmp_path), None) is None  # a step that changed nothing
    assert first is not None and again is not None and first.digest == again.digest  # deterministic
    assert _tree(_applied(store, lower, first, tmp_path / "applied")) == _tree(expected)


def _empty(tmp_path: Path) -> Path:
    empty = tmp_path / "empty"
    empty.mkdir()
    return empty
