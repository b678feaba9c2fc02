"""`registry save` / `load` in both archive formats, checked against skopeo (which must read what we write,
and whose archives we must read), and `registry import` of root filesystem tarballs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from registry.client.store import ImageStore
from tests.client.conftest import CLI, add_layout
from tests.support.images import build_busybox_layout, layout_descriptor, read_blob
from tests.support.tools import require_tool


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("layouts")
    return {
        "a": build_busybox_layout(root / "a", "1", {"/etc/which": "a\n"}),
        "b": build_busybox_layout(root / "b", "1", {"/etc/which": "b\n"}),
    }


def skopeo(*args: str) -> str:
    binary = require_tool("skopeo")["skopeo"]
    return subprocess.run(
        [binary, "--insecure-policy", *args], check=True, capture_output=True, text=True
    ).stdout


def test_docker_archive_round_trip(cli: CLI, store: ImageStore, layouts: dict, tmp_path: Path) -> None:
    a = add_layout(store, layouts["a"], "1", "127.0.0.1:5000/x/a:1")
    b = add_layout(store, layouts["b"], "1", "b/app")
    archive = tmp_path / "images.tar"
    saved = cli("save", "-o", str(archive), "127.0.0.1:5000/x/a:1", "b/app")
    assert saved.code == 0, saved.err

    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert names.count(f"blobs/sha256/{a.layers[0].digest[7:]}") == 1  # the shared busybox layer, once
    assert [entry["RepoTags"] for entry in manifest] == [["127.0.0.1:5000/x/a:1"], ["b/app:latest"]]
    inspected = json.loads(skopeo("inspect", f"docker-archive:{archive}:b/app:latest"))
    assert inspected["Layers"] == [
        layer.diff_id for layer in b.layers
    ]  # skopeo decompressed and checked them

    fresh = ImageStore(tmp_path / "fresh")
    loaded = cli("load", "--root", str(fresh.root), "-i", str(archive))
    assert loaded.code == 0, loaded.err
    assert loaded.out.splitlines() == ["Loaded image: 127.0.0.1:5000/x/a:1", "Loaded image: b/app:latest"]
    for original in (a, b):
        copy = fresh.image(original.reference or "")
        assert copy.config_digest == original.config_digest  # the image ID survives the format change
        assert [layer.digest for layer in copy.layers] == [layer.digest for layer in original.layers]
        assert copy.config == original.config


def test_oci_archive_round_trip(cli: CLI, store: ImageStore, layouts: dict, tmp_path: Path) -> None:
    a = add_layout(store, layouts["a"], "1", "127.0.0.1:5000/x/a:1")
    archive = tmp_path / "image.oci.tar"
    assert cli("save", "--format", "oci", "-o", str(archive), "127.0.0.1:5000/x/a:1").code == 0
    assert json.loads(skopeo("inspect", f"oci-archive:{archive}:1"))["Digest"] == a.manifest_digest

    fresh = ImageStore(tmp_path / "fresh")
    loaded = cli("load", "--root", str(fresh.root), "-i", str(archive))
    assert loaded.out.splitlines() == ["Loaded image: 127.0.0.1:5000/x/a:1"]
    assert fresh.image("127.0.0.1:5000/x/a:1").manifest_digest == a.manifest_digest  # byte for byte


def test_load_reads_archives_skopeo_writes(
    cli: CLI, store: ImageStore, layouts: dict, tmp_path: Path
) -> None:
    layout = layouts["a"]
    config = json.loads(read_blob(layout, layout_descriptor(layout, "1")["digest"]))["config"]["digest"]
    docker_archive = tmp_path / "docker.tar"
    skopeo("copy", f"oci:{layout}:1", f"docker-archive:{docker_archive}:foo/bar:1")
    compressed = tmp_path / "docker.tar.gz"
    compressed.write_bytes(gzip.compress(docker_archive.read_bytes()))
    loaded = cli("load", "-i", str(compressed))
    assert loaded.code == 0, loaded.err
    assert loaded.out.splitlines() == ["Loaded image: foo/bar:1"]
    assert store.image("foo/bar:1").config_digest == config

    oci_archive = tmp_path / "oci.tar"
    skopeo("copy", f"oci:{layout}:1", f"oci-archive:{oci_archive}:1")
    loaded = cli("load", "-i", str(oci_archive))
    assert loaded.out.splitlines() == [f"Loaded image ID: {config}"]  # a bare tag names no repository


def test_load_refuses_archives_that_escape_or_are_not_images(
    cli: CLI, store: ImageStore, tmp_path: Path
) -> None:
    hostile = tmp_path / "hostile.tar"
    with tarfile.open(hostile, "w") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    refused = cli("load", "-i", str(hostile))
    assert refused.code != 0 and "cannot read the archive" in refused.err
    assert not (store.staging / "escaped").exists() and not (store.root / "escaped").exists()

    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w"):
        pass
    refused = cli("load", "-i", str(empty))
    assert refused.code != 0 and "neither manifest.json nor index.json" in refused.err
    assert store.entries() == [] and not any(store.staging.iterdir())


def rootfs_tar() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in (("etc/hostname", b"imported\n"), ("bin/hello", b"#!/bin/sh\necho hello\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def test_import_makes_a_one_layer_image_with_the_changes_asked(
    cli: CLI, store: ImageStore, tmp_path: Path
) -> None:
    tar = rootfs_tar()
    source = tmp_path / "rootfs.tar.gz"
    source.write_bytes(gzip.compress(tar))
    imported = cli(
        "import", "-c", 'CMD ["/bin/hello"]', "-c", 'ENV GREETING="hi there"', "-c", "ENV A=1 B=2",
        "-c", "WORKDIR /etc", "-c", "USER nobody", "-c", "LABEL team=client", "-c", "EXPOSE 8080",
        "-m", "from a tarball", str(source), "imported:1",
    )  # fmt: skip
    assert imported.code == 0, imported.err
    image = store.image("imported:1")
    assert imported.out.strip() == image.config_digest
    config = image.config["config"]
    assert config["Cmd"] == ["/bin/hello"]
    assert config["Env"] == ["GREETING=hi there", "A=1", "B=2"]
    assert (config["WorkingDir"], config["User"], config["Labels"]) == ("/etc", "nobody", {"team": "client"})
    assert config["ExposedPorts"] == {"8080/tcp": {}}
    assert image.config["history"][0]["comment"] == "from a tarball"
    (layer,) = image.layers
    assert layer.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert layer.media_type == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert gzip.decompress(layer.path.read_bytes()) == tar
    assert "imported" in cli("images").out


def test_import_reads_any_compression_and_refuses_what_is_not_a_tar(
    cli: CLI, store: ImageStore, tmp_path: Path
) -> None:
    tar = rootfs_tar()
    source = tmp_path / "rootfs.tar.zst"
    source.write_bytes(zstandard.ZstdCompressor().compress(tar))
    assert cli("import", str(source)).code == 0
    (listing,) = store.list_images()
    assert listing.references == []  # no name given: a dangling image, as with docker import
    assert listing.image.layers[0].diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()

    junk = tmp_path / "junk"
    junk.write_bytes(b"this is not a tarball at all" * 40)
    refused = cli("import", str(junk), "junk:1")
    assert refused.code != 0 and "not a tar archive" in refused.err
    bad_change = cli("import", "-c", "RUN rm -rf /", str(source))
    assert bad_change.code != 0 and "'RUN' is not a change import accepts" in bad_change.err
    bad_env = cli("import", "-c", "ENV A=hi there", str(source))
    assert bad_env.code != 0 and "'there' in 'A=hi there' is not KEY=VALUE" in bad_env.err
    assert len(store.list_images()) == 1
