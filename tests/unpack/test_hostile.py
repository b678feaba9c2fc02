"""Hostile layers: each is refused with an error naming the layer and the entry, and nothing outside the
root is written, linked or removed."""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.unpack import Limits, Options, UnpackError, unpack_layers
from tests.unpack.layers import Blob, Blobs, directory, entry, hardlink, symlink

VICTIM = b"the host's file\n"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Blobs, Path, Path]]:
    """(blobs, root, outside): `outside` holds a victim file next to the root; after each test, nothing
    but the root may have changed under tmp_path."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(VICTIM)
    root = tmp_path / "box" / "root"
    root.mkdir(parents=True)
    blobs = Blobs(tmp_path / "blobs")
    before = snapshot(tmp_path, skip=(root, blobs.root))
    yield blobs, root, outside
    assert snapshot(tmp_path, skip=(root, blobs.root)) == before
    assert (outside / "victim").read_bytes() == VICTIM
    assert (outside / "victim").stat().st_nlink == 1


def snapshot(top: Path, skip: tuple[Path, ...]) -> dict[str, tuple[int, int, bytes]]:
    found = {}
    for directory_, subdirectories, files in os.walk(top):
        subdirectories[:] = [d for d in subdirectories if Path(directory_, d) not in skip]
        for name in files + subdirectories:
            path = Path(directory_, name)
            info = path.lstat()
            content = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
            found[str(path)] = (info.st_mode, info.st_nlink, content)
    return found


def refused(root: Path, layers: list[Blob], entry_name: str, reason: str, **options: object) -> UnpackError:
    with pytest.raises(UnpackError, match=reason) as error:
        unpack_layers(layers, [layer.diff_id for layer in layers], root, Options(**options))  # type: ignore[arg-type]
    assert error.value.layer == layers[-1].digest and layers[-1].digest in str(error.value)
    assert error.value.entry == entry_name and repr(entry_name) in str(error.value)
    return error.value


@pytest.mark.parametrize("name", ["../outside/pwned", "etc/../../outside/pwned", "../../escape"])
def test_parent_traversal(world: tuple[Blobs, Path, Path], name: str) -> None:
    blobs, root, _ = world
    refused(root, [blobs.add([entry(name, data=b"pwned")])], name, "outside the root")


def test_absolute_paths(world: tuple[Blobs, Path, Path]) -> None:
    blobs, root, outside = world
    name = str(outside / "pwned")
    refused(root, [blobs.add([entry(name, data=b"pwned")])], name, "absolute path")


def test_symlink_escape_in_one_layer(world: tuple[Blobs, Path, Path]) -> None:
    blobs, root, _ = world
    layer = blobs.add([symlink("evil", "../../outside"), entry("evil/pwned", data=b"pwned")])
    refused(root, [layer], "evil/pwned", "through the symlink 'evil'")


def test_symlink_escape_across_layers(world: tuple[Blobs, Path, Path]) -> None:
    blobs, root, _ = world
    base = blobs.add([directory("a/"), symlink("a/up", "../../..")])
    attack = blobs.add([entry("a/up/outside/victim", data=b"pwned")])
    refused(root, [base, attack], "a/up/outside/victim", "outside the root")


def test_absolute_symlinks_stay_inside_the_root(world: tuple[Blobs, Path, Path]) -> None:
    """An absolute target means the container's root: following it writes inside, never on the host."""
    blobs, root, outside = world
    layer = blobs.add([symlink("evil", str(outside)), entry("evil/victim", data=b"contained")])
    unpack_layers([layer], [layer.diff_id], root)
    assert (root / str(outside).lstrip("/") / "victim").read_bytes() == b"contained"


def test_symlink_loops(world: tuple[Blobs, Path, Path]) -> None:
    blobs, root, _ = world
    layer = blobs.add([symlink("a", "b"), symlink("b", "a"), entry("a/file", data=b"x")])
    refused(root, [layer], "a/file", "too many levels of symbolic links")


@pytest.mark.parametrize(
    ("entries", "name", "reason"),
    [
        ([hardlink("link", "../outside/victim")], "link", "outside the root"),
        ([symlink("s", "../../outside"), hardlink("link", "s/victim")], "link", "through the symlink 's'"),
        ([hardlink("link", "/etc/passwd")], "link", "absolute path"),
        ([hardlink("link", "missing")], "link", "does not exist"),
    ],
)
def test_hard_link_escapes(world: tuple[Blobs, Path, Path], entries: list, name: str, reason: str) -> None:
    blobs, root, _ = world
    refused(root, [blobs.add(entries)], name, reason)


@pytest.mark.parametrize(
    ("entries", "name"),
    [
        ([entry("../outside/.wh.victim")], "../outside/.wh.victim"),
        ([symlink("s", "../../outside"), entry("s/.wh.victim")], "s/.wh.victim"),
        ([symlink("s", "../../outside"), entry("s/.wh..wh..opq")], "s/.wh..wh..opq"),
    ],
)
def test_whiteouts_outside_the_root(world: tuple[Blobs, Path, Path], entries: list, name: str) -> None:
    blobs, root, _ = world
    refused(root, [blobs.add(entries)], name, "outside the root")


def test_whiteout_of_the_parent_directory(world: tuple[Blobs, Path, Path]) -> None:
    blobs, root, _ = world
    refused(root, [blobs.add([entry(".wh..."), entry("x")])], ".wh...", "invalid name")


def gzip_bomb(blobs: Blobs, name: str, size: int) -> Blob:
    """A gzip layer of one `size`-byte file of zeros, made cheaply of repeated compressed members."""
    header = tarfile.TarInfo(name)
    header.size = size
    header.mtime = 0
    head = header.tobuf(tarfile.USTAR_FORMAT)
    chunk = 1 << 20
    zeros = gzip.compress(b"\0" * chunk, compresslevel=9, mtime=0)
    count = size // chunk
    blob = gzip.compress(head, mtime=0) + zeros * count + gzip.compress(b"\0" * 1024, mtime=0)
    tar_hash = hashlib.sha256(head)
    block = b"\0" * chunk
    for _ in range(count):
        tar_hash.update(block)
    tar_hash.update(b"\0" * 1024)
    path = blobs.root / "bomb.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    return Blob(digest, "application/vnd.oci.image.layer.v1.tar+gzip", path, "sha256:" + tar_hash.hexdigest())


def test_decompression_bomb_is_bounded(world: tuple[Blobs, Path, Path]) -> None:
    blobs, root, _ = world
    bomb = gzip_bomb(blobs, "zeros", 4 << 30)  # 4 GiB of zeros in about 4 MiB
    assert bomb.path.stat().st_size < 8 << 20
    started = time.monotonic()
    refused(root, [bomb], "zeros", "past 16777216 bytes", limits=Limits(max_bytes=16 << 20))
    assert time.monotonic() - started < 5
    assert not (root / "zeros").exists()


def test_stream_limit_counts_every_byte(world: tuple[Blobs, Path, Path]) -> None:
    """Members within the limit one by one are still stopped once their sum passes it."""
    blobs, root, _ = world
    layer = blobs.add([entry(f"f{i}", data=b"x" * 4096) for i in range(16)])
    with pytest.raises(UnpackError, match="more than 32768 bytes"):
        unpack_layers([layer], [layer.diff_id], root, Options(limits=Limits(max_bytes=32768)))


def test_entry_count_is_bounded(world: tuple[Blobs, Path, Path]) -> None:
    blobs, root, _ = world
    layer = blobs.add([entry(f"f{i}") for i in range(20)])
    refused(root, [layer], "f10", "more than 10 entries", limits=Limits(max_entries=10))


def test_oversized_pax_header_is_not_read_into_memory(world: tuple[Blobs, Path, Path]) -> None:
    blobs, root, _ = world
    header = tarfile.TarInfo("././@PaxHeader")
    header.type = tarfile.XHDTYPE
    header.size = 1 << 30
    tar = header.tobuf(tarfile.USTAR_FORMAT) + b"\0" * (1 << 20)
    layer = blobs.add_tar(tar)
    with pytest.raises(UnpackError, match="metadata header") as error:
        unpack_layers([layer], [layer.diff_id], root)
    assert error.value.layer == layer.digest


def test_garbage_is_a_corrupt_layer(world: tuple[Blobs, Path, Path]) -> None:
    blobs, root, _ = world
    layer = blobs.add_tar(zlib.compress(b"not a tar at all" * 100))
    with pytest.raises(UnpackError, match="corrupt layer"):
        unpack_layers([layer], [layer.diff_id], root)
