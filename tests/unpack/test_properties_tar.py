"""Properties of the unpacker on arbitrary tar headers: every layer is applied inside the root or refused
with an UnpackError, never another exception, and nothing outside the root changes."""

from __future__ import annotations

import contextlib
import tarfile
import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from registry.unpack import Options, UnpackError, unpack_layers
from tests.support.properties import FEW
from tests.unpack.layers import Blobs, entry, tar_bytes
from tests.unpack.test_hostile import VICTIM, snapshot

components = st.sampled_from(["a", "b", "..", ".", "", ".wh.a", ".wh..wh..opq", "c\x00d", "outside"])
paths = st.lists(components, min_size=1, max_size=4).map("/".join) | st.just("/tmp/x")
kinds = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE,
                         tarfile.CHRTYPE, b"Z"])  # fmt: skip
numbers = st.sampled_from(["0", "1e400", "inf", "-inf", "nan", "9" * 30, "-5", "1.5"])
pax = st.dictionaries(
    st.sampled_from(
        ["mtime", "uid", "gid", "path", "linkpath", "SCHILY.xattr.user.a", "SCHILY.xattr.a\x00b"]
    ),
    numbers | paths,
    max_size=3,
)
members = st.tuples(paths, kinds, paths, st.integers(0, 0o7777), st.binary(max_size=4), pax)


@FEW
@given(st.lists(members, min_size=1, max_size=5))
@example([("f", tarfile.REGTYPE, "", 0o644, b"x", {"mtime": "inf"})])  # OverflowError from int(inf)
@example([("f", tarfile.REGTYPE, "", 0o644, b"x", {"mtime": "nan"})])  # ValueError from int(nan)
@example([("f", tarfile.REGTYPE, "", 0o644, b"x", {"uid": "9" * 30})])  # OverflowError from fchown
@example([("f", tarfile.REGTYPE, "", 0o644, b"x", {"path": "c\x00d"})])  # ValueError: embedded null byte
@example([("l", tarfile.SYMTYPE, "", 0o777, b"", {"linkpath": "c\x00d"})])
@example([("f", tarfile.REGTYPE, "", 0o644, b"x", {"SCHILY.xattr.a\x00b": "v"})])
def test_any_headers_unpack_inside_the_root_or_are_refused(
    layer: list[tuple[str, bytes, str, int, bytes, dict[str, str]]],
) -> None:
    with tempfile.TemporaryDirectory() as top:
        base = Path(top)
        (base / "outside").mkdir()
        (base / "outside" / "victim").write_bytes(VICTIM)
        root = base / "box" / "root"
        root.mkdir(parents=True)
        blobs = Blobs(base / "blobs")
        entries = []
        for name, kind, target, mode, data, headers in layer:
            info, content = entry(
                name, kind, data if kind == tarfile.REGTYPE else b"", target=target, mode=mode
            )
            info.pax_headers = dict(headers)
            entries.append((info, content))
        try:
            blob = blobs.add_tar(tar_bytes(entries), "none")
        except (ValueError, tarfile.TarError, UnicodeError):
            return  # tarfile cannot write such a header; nothing to unpack
        before = snapshot(base, skip=(root, blobs.root))
        with contextlib.suppress(UnpackError):
            unpack_layers([blob], [blob.diff_id], root, Options())
        assert snapshot(base, skip=(root, blobs.root)) == before
        assert (base / "outside" / "victim").read_bytes() == VICTIM


@FEW
@given(
    st.binary(min_size=1, max_size=3072),
    st.lists(st.tuples(st.integers(0, 3071), st.integers(0, 255)), max_size=8),
)
def test_mutated_tars_unpack_inside_the_root_or_are_refused(_: bytes, flips: list[tuple[int, int]]) -> None:
    tar = bytearray(tar_bytes([entry("a/b", data=b"content"), entry("c", tarfile.SYMTYPE, target="a")]))
    for offset, value in flips:
        tar[offset % len(tar)] = value
    with tempfile.TemporaryDirectory() as top:
        base = Path(top)
        root = base / "root"
        root.mkdir()
        blobs = Blobs(base / "blobs")
        blob = blobs.add_tar(bytes(tar), "none")
        with contextlib.suppress(UnpackError):
            unpack_layers([blob], [blob.diff_id], root, Options())
        assert sorted(p.name for p in base.iterdir()) == ["blobs", "root"]
