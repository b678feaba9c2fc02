"""The unpacker on well-formed layers: every entry type, compressions, metadata, layer order, whiteouts,
digest checks and the cache of unpacked roots."""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest

from registry.unpack import Options, RootfsCache, UnpackError, chain_id, unpack_layers
from tests.unpack.layers import Blob, Blobs, directory, entry, hardlink, symlink, tar_bytes

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="ownership and device nodes need root")


@pytest.fixture
def blobs(tmp_path: Path) -> Blobs:
    return Blobs(tmp_path / "blobs")


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    path = tmp_path / "rootfs"
    path.mkdir()
    return path


def unpack(rootfs: Path, *layers: Blob, **options: Any) -> None:
    unpack_layers(layers, [layer.diff_id for layer in layers], rootfs, Options(**options))


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_entry_types_in_every_compression(blobs: Blobs, rootfs: Path, compression: str) -> None:
    layer = blobs.add(
        [
            directory("etc/"),
            entry("etc/motd", data=b"hello\n", mode=0o640),
            entry("usr/bin/tool", data=b"#!/bin/sh\n", mode=0o4755),  # no parent entries: made anyway
            symlink("bin", "usr/bin"),
            hardlink("usr/bin/alias", "usr/bin/tool"),
            entry("run/pipe", tarfile.FIFOTYPE, mode=0o600),
        ],
        compression,
    )
    unpack(rootfs, layer)

    assert (rootfs / "etc/motd").read_bytes() == b"hello\n"
    assert stat.S_IMODE((rootfs / "etc/motd").stat().st_mode) == 0o640
    assert stat.S_IMODE((rootfs / "usr/bin/tool").stat().st_mode) == 0o4755
    assert os.readlink(rootfs / "bin") == "usr/bin"
    assert (rootfs / "usr/bin/alias").stat().st_ino == (rootfs / "usr/bin/tool").stat().st_ino
    assert stat.S_ISFIFO((rootfs / "run/pipe").lstat().st_mode)
    assert (rootfs / "etc/motd").stat().st_mtime == 946684800
    assert (rootfs / "etc").stat().st_mtime == 946684800


@ROOT_ONLY
def test_ownership_and_xattrs_are_kept(blobs: Blobs, rootfs: Path) -> None:
    layer = blobs.add(
        [
            directory("home/", uid=1000, gid=1000),
            entry("home/notes", data=b"x", uid=1000, gid=100, xattrs={"user.origin": "layer"}),
            symlink("home/link", "notes"),
        ]
    )
    unpack(rootfs, layer)
    info = (rootfs / "home/notes").stat()
    assert (info.st_uid, info.st_gid) == (1000, 100)
    assert (rootfs / "home").stat().st_uid == 1000
    assert os.getxattr(rootfs / "home/notes", "user.origin") == b"layer"


@ROOT_ONLY
def test_overlay_xattrs_are_not_applied(blobs: Blobs, rootfs: Path) -> None:
    """The unpacked image becomes an overlayfs lower layer: a layer must not mark its own whiteouts."""
    xattrs = {"trusted.overlay.opaque": "y", "user.overlay.redirect": "/etc", "user.kept": "1"}
    unpack(rootfs, blobs.add([directory("dir/", xattrs=xattrs)]))
    assert os.listxattr(rootfs / "dir") == ["user.kept"]


@ROOT_ONLY
def test_device_nodes_only_when_allowed(blobs: Blobs, rootfs: Path) -> None:
    layer = blobs.add([entry("dev/null", tarfile.CHRTYPE, mode=0o666, device=(1, 3))])
    with pytest.raises(UnpackError, match="device nodes are not allowed") as refused:
        unpack(rootfs, layer)
    assert refused.value.layer == layer.digest and refused.value.entry == "dev/null"

    unpack(rootfs, layer, allow_devices=True)
    assert (rootfs / "dev/null").lstat().st_rdev == os.makedev(1, 3)


def test_read_only_directories_still_receive_their_children(blobs: Blobs, rootfs: Path) -> None:
    layer = blobs.add([directory("locked/", mode=0o555), entry("locked/inside", data=b"ok")])
    unpack(rootfs, layer)
    assert (rootfs / "locked/inside").read_bytes() == b"ok"
    assert stat.S_IMODE((rootfs / "locked").stat().st_mode) == 0o555


def test_later_layers_replace_files_and_directories(blobs: Blobs, rootfs: Path) -> None:
    first = blobs.add(
        [
            entry("was-file", data=b"file"),
            directory("was-dir/"),
            entry("was-dir/child", data=b"child"),
            entry("kept", data=b"old"),
        ]
    )
    second = blobs.add(
        [directory("was-file/"), entry("was-file/now", data=b"dir"), entry("was-dir", data=b"now a file")]
    )
    unpack(rootfs, first, second)
    assert (rootfs / "was-file/now").read_bytes() == b"dir"
    assert (rootfs / "was-dir").read_bytes() == b"now a file"
    assert (rootfs / "kept").read_bytes() == b"old"


def test_symlinked_parents_are_followed_inside_the_root(blobs: Blobs, rootfs: Path) -> None:
    """Debian's merged /usr: `lib -> usr/lib`, and later layers write through `lib/`."""
    base = blobs.add([directory("usr/lib/"), symlink("lib", "usr/lib"), symlink("abs", "/usr")])
    top = blobs.add([entry("lib/libc.so", data=b"elf"), entry("abs/share/doc", data=b"doc")])
    unpack(rootfs, base, top)
    assert (rootfs / "usr/lib/libc.so").read_bytes() == b"elf"
    assert (rootfs / "usr/share/doc").read_bytes() == b"doc"
    assert (rootfs / "lib").is_symlink()


def test_whiteouts_hide_lower_layers_only(blobs: Blobs, rootfs: Path) -> None:
    lower = blobs.add(
        [
            entry("gone", data=b"x"),
            directory("gone-dir/"),
            entry("gone-dir/deep", data=b"x"),
            directory("opaque/"),
            entry("opaque/old", data=b"x"),
            directory("opaque/sub/"),
            entry("opaque/sub/old", data=b"x"),
        ]
    )
    upper = blobs.add(
        [
            entry(".wh.gone"),
            entry(".wh.gone-dir"),
            entry("opaque/new", data=b"new"),  # written before the marker, in the same layer: kept
            entry("opaque/.wh..wh..opq"),
            entry("opaque/sub/newer", data=b"new"),
            entry("fresh", data=b"same layer"),
            entry(".wh.fresh"),  # a whiteout never hides its own layer's files
        ]
    )
    unpack(rootfs, lower, upper)
    assert sorted(p.name for p in rootfs.iterdir()) == ["fresh", "opaque"]
    assert sorted(str(p.relative_to(rootfs)) for p in (rootfs / "opaque").rglob("*")) == [
        "opaque/new",
        "opaque/sub",
        "opaque/sub/newer",
    ]


def test_diff_id_and_blob_digest_are_verified(blobs: Blobs, rootfs: Path) -> None:
    layer = blobs.add([entry("file", data=b"x")])
    with pytest.raises(UnpackError, match="diff_id mismatch") as mismatch:
        unpack_layers([layer], ["sha256:" + "0" * 64], rootfs)
    assert mismatch.value.layer == layer.digest

    layer.path.write_bytes(layer.path.read_bytes()[:-8] + b"\0" * 8)  # a corrupt gzip trailer
    with pytest.raises(UnpackError, match=layer.digest):
        unpack(rootfs, layer)


def test_non_layer_media_types_are_refused(blobs: Blobs, rootfs: Path) -> None:
    layer = blobs.add([entry("file")])
    config = type(layer)(layer.digest, "application/vnd.oci.image.config.v1+json", layer.path, layer.diff_id)
    with pytest.raises(UnpackError, match="is not a layer"):
        unpack(rootfs, config)


def test_trailing_padding_counts_in_the_diff_id(blobs: Blobs, rootfs: Path) -> None:
    """Tools pad tars to a record size after the end marker: those bytes are part of the diff_id."""
    layer = blobs.add_tar(tar_bytes([entry("file", data=b"x")]) + b"\0" * 10240)
    unpack(rootfs, layer)
    assert (rootfs / "file").read_bytes() == b"x"


def test_the_cache_unpacks_each_chain_once(blobs: Blobs, tmp_path: Path) -> None:
    base = blobs.add([entry("base", data=b"1")])
    top = blobs.add([entry("top", data=b"2")])
    cache = RootfsCache(tmp_path / "cache")
    diff_ids = [base.diff_id, top.diff_id]

    results: list[Path] = []
    builders = [
        threading.Thread(target=lambda: results.append(cache.rootfs([base, top], diff_ids))) for _ in range(3)
    ]
    for builder in builders:
        builder.start()
    for builder in builders:
        builder.join()
    assert len(set(results)) == 1 and results[0].name == chain_id(diff_ids).removeprefix("sha256:")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [results[0].name]  # no staging left

    (results[0] / "marker").write_text("still the first unpack")
    assert cache.rootfs([base, top], diff_ids) == results[0]
    assert (results[0] / "marker").exists()
    assert cache.rootfs([base], [base.diff_id]) != results[0]
    assert stat.S_IMODE(results[0].stat().st_mode) == 0o755  # the container's / gets this mode
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700  # set-user-ID files in there


def test_chain_ids_follow_the_oci_definition() -> None:
    assert chain_id(["sha256:a"]) == "sha256:a"
    # The image spec: ChainID(A|B) = Digest(ChainID(A) + " " + DiffID(B)).
    assert chain_id(["sha256:a", "sha256:b"]) == "sha256:" + hashlib.sha256(b"sha256:a sha256:b").hexdigest()
