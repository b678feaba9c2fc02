"""Whiteout and opaque-directory semantics checked against `umoci unpack` on the very same images."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from registry.unpack import unpack_layers
from tests.support.images import build_busybox_layout
from tests.support.tools import require_tool
from tests.unpack.layers import Blob, Blobs, directory, entry, hardlink, symlink, tree


def umoci_rootfs(layout: Path, tag: str, bundle: Path) -> Path:
    umoci = require_tool("umoci")["umoci"]
    subprocess.run(
        [umoci, "unpack", "--image", f"{layout}:{tag}", str(bundle)], check=True, capture_output=True
    )
    return bundle / "rootfs"


def layout_layers(layout: Path, tag: str) -> tuple[list[Blob], list[str]]:
    """The layers of `tag` in an OCI layout, as the local image store would hand them over."""
    index = json.loads((layout / "index.json").read_text())
    descriptor = next(
        d for d in index["manifests"] if d["annotations"]["org.opencontainers.image.ref.name"] == tag
    )

    def blob(digest: str) -> Path:
        return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")

    manifest = json.loads(blob(descriptor["digest"]).read_text())
    diff_ids = json.loads(blob(manifest["config"]["digest"]).read_text())["rootfs"]["diff_ids"]
    layers = [
        Blob(layer["digest"], layer["mediaType"], blob(layer["digest"]), diff_id)
        for layer, diff_id in zip(manifest["layers"], diff_ids, strict=True)
    ]
    return layers, diff_ids


def ours(layout: Path, tag: str, dest: Path) -> Path:
    dest.mkdir()
    unpack_layers(*layout_layers(layout, tag), dest)
    return dest


def test_whiteouts_and_opaque_directories_match_umoci(tmp_path: Path) -> None:
    blobs = Blobs(tmp_path / "layout")
    blobs.add(
        [
            directory("etc/"),
            entry("etc/config", data=b"v1"),
            entry("etc/removed", data=b"old"),
            directory("etc/conf.d/"),
            entry("etc/conf.d/a.conf", data=b"a"),
            entry("etc/conf.d/b.conf", data=b"b"),
            directory("etc/conf.d/nested/"),
            entry("etc/conf.d/nested/deep", data=b"deep"),
            directory("var/"),
            directory("var/cache/", mode=0o700),
            entry("var/cache/big", data=b"x" * 5000),
            entry("var/cache/linked", data=b"shared"),
            hardlink("var/hard", "var/cache/linked"),
            symlink("var/link", "cache/big"),
            directory("opt/"),
            entry("opt/tool", data=b"tool", mode=0o755),
        ]
    )
    blobs.add(
        [
            directory("etc/"),
            entry("etc/.wh.removed"),
            entry("etc/config", data=b"v2"),
            directory("etc/conf.d/"),
            entry("etc/conf.d/.wh..wh..opq"),
            entry("etc/conf.d/c.conf", data=b"c"),
            directory("var/"),
            entry("var/.wh.cache"),  # a whole directory, while a hard link into it survives
            entry(".wh.opt"),
            entry("opt", data=b"now a file"),
        ]
    )
    blobs.add(
        [
            directory("etc/"),
            directory("etc/conf.d/"),
            directory("etc/conf.d/nested/"),  # back, but empty: the opaque layer hid `deep`
            directory("var/"),
            directory("var/cache/"),
            entry("var/cache/new", data=b"new"),
            entry(".wh.opt"),
            directory("opt/", mode=0o750),
            entry("opt/.wh..wh..opq"),
        ]
    )
    blobs.write_layout("whiteouts")

    expected = tree(umoci_rootfs(blobs.root, "whiteouts", tmp_path / "bundle"))
    found = tree(ours(blobs.root, "whiteouts", tmp_path / "ours"))
    assert found == expected
    assert "etc/removed" not in found and "etc/conf.d/a.conf" not in found
    assert "etc/conf.d/nested/deep" not in found and "etc/conf.d/c.conf" in found
    assert found["var/hard"][0] == ("file", b"shared", "var/hard")


def test_busybox_image_matches_umoci(tmp_path: Path) -> None:
    layout = build_busybox_layout(tmp_path / "layout", tag="1", extra_files={"/etc/motd": "hi\n"})
    expected = tree(umoci_rootfs(layout, "1", tmp_path / "bundle"))
    found = tree(ours(layout, "1", tmp_path / "ours"))
    assert found == expected
    assert found["bin/sh"][0] == ("symlink", "busybox")
