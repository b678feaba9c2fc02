"""The local image store and the commands that only touch it: images, tag, rmi, image prune, system df.

Images come straight from OCI layouts built by tests.support.images, so no registry is involved.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from registry.client.store import ImageNotFound, ImageStore, StoreError
from registry.client.units import human_size
from tests.client.conftest import CLI, add_layout
from tests.support.images import OCI_LAYER, build_busybox_layout, layout_descriptor, read_blob, sha256
from tests.support.tools import require_tool

LOCAL = "127.0.0.1:5000/team/app"


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two images sharing their busybox layer, differing in a second layer."""
    root = tmp_path_factory.mktemp("layouts")
    return {
        "a": build_busybox_layout(root / "a", "1", {"/etc/which": "a\n"}),
        "b": build_busybox_layout(root / "b", "1", {"/etc/which": "b\n"}),
    }


def test_an_image_is_found_by_reference_short_name_id_and_digest(store: ImageStore, layouts: dict) -> None:
    added = add_layout(store, layouts["a"], "1", "busybox")
    assert added.reference == "docker.io/library/busybox:latest"
    for name in ("busybox", "busybox:latest", "library/busybox", "docker.io/library/busybox:latest"):
        assert store.image(name).manifest_digest == added.manifest_digest, name
    assert store.image(added.id).reference is None
    assert store.image(added.id[:4]).config_digest == added.config_digest
    assert store.image(added.config_digest).config_digest == added.config_digest
    assert store.image(added.manifest_digest).config_digest == added.config_digest
    assert store.image(f"busybox@{added.manifest_digest}").config_digest == added.config_digest

    manifest = json.loads(read_blob(layouts["a"], added.manifest_digest))
    assert added.manifest_digest == layout_descriptor(layouts["a"], "1")["digest"]
    assert [layer.digest for layer in added.layers] == [d["digest"] for d in manifest["layers"]]
    assert {layer.media_type for layer in added.layers} == {OCI_LAYER}
    assert [layer.diff_id for layer in added.layers] == added.config["rootfs"]["diff_ids"]
    for layer in added.layers:
        assert sha256(layer.path.read_bytes()) == layer.digest

    for missing in ("busybox:2", "nothing", "0000", "sha256:" + "0" * 64, "Not A Reference"):
        with pytest.raises(ImageNotFound, match="No such image") as caught:
            store.image(missing)
        assert isinstance(caught.value, KeyError)


def test_the_store_is_an_oci_layout_other_tools_read(store: ImageStore, layouts: dict) -> None:
    added = add_layout(store, layouts["a"], "1", f"{LOCAL}:1")
    skopeo = require_tool("skopeo")["skopeo"]
    inspected = subprocess.run(
        [skopeo, "inspect", f"oci:{store.root}:{LOCAL}:1"], check=True, capture_output=True, text=True
    )
    assert json.loads(inspected.stdout)["Digest"] == added.manifest_digest
    assert json.loads((store.root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}


def test_content_is_verified_before_it_is_stored(store: ImageStore, layouts: dict, tmp_path: Path) -> None:
    manifest = read_blob(layouts["a"], layout_descriptor(layouts["a"], "1")["digest"])
    document = json.loads(manifest)
    config = read_blob(layouts["a"], document["config"]["digest"])
    with pytest.raises(StoreError, match="neither given nor in the local store"):
        store.add_image("x", manifest, config)
    with pytest.raises(StoreError, match="has digest"):
        store.add_image("x", manifest, config + b" ")
    wrong = tmp_path / "wrong"
    wrong.write_bytes(b"not the layer")
    with pytest.raises(StoreError, match="has digest"):
        store.add_image("x", manifest, config, {document["layers"][0]["digest"]: wrong})
    with pytest.raises(StoreError, match="invalid digest"):
        store.blob_path("sha256:../../etc/passwd")
    assert store.entries() == []


def test_retagging_leaves_a_dangling_image_that_prune_removes_with_only_its_own_blobs(
    cli: CLI, store: ImageStore, layouts: dict
) -> None:
    first = add_layout(store, layouts["a"], "1", f"{LOCAL}:1")
    second = add_layout(store, layouts["b"], "1", f"{LOCAL}:1")
    assert store.image(f"{LOCAL}:1").config_digest == second.config_digest
    assert store.dangling() == [first.manifest_digest]

    listed = cli("images")
    assert listed.code == 0
    lines = listed.out.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(line.split()[:3] == [LOCAL, "1", second.id] for line in lines)
    assert any(line.split()[:3] == ["<none>", "<none>", first.id] for line in lines)
    assert cli("images", "-q", "-f", "dangling=true").out.split() == [first.id]
    assert cli("images", "-q", "--filter", "dangling=false").out.split() == [second.id]
    assert cli("images", "--no-trunc", "-q", "-f", "dangling=true").out.split() == [first.config_digest]

    shared = first.layers[0].path
    own = first.layers[1].path
    pruned = cli("image", "prune", "-f")
    assert pruned.code == 0
    assert f"deleted: {first.config_digest}" in pruned.out
    assert "Total reclaimed space:" in pruned.out and "Total reclaimed space: 0B" not in pruned.out
    assert shared.exists() and not own.exists()
    assert not store.blob_path(first.config_digest).exists()
    assert store.dangling() == []
    assert cli("image", "prune", "-f").out.strip() == "Total reclaimed space: 0B"


def test_tag_and_rmi(cli: CLI, store: ImageStore, layouts: dict) -> None:
    image = add_layout(store, layouts["a"], "1", f"{LOCAL}:1")
    assert cli("tag", f"{LOCAL}:1", "other/app:2").code == 0
    assert cli("tag", image.id, "busybox").code == 0
    assert store.image("docker.io/other/app:2").config_digest == image.config_digest
    rows = cli("images", "--digests").out.splitlines()[1:]
    assert sorted(row.split()[:3] for row in rows) == [
        [LOCAL, "1", image.manifest_digest],
        ["busybox", "latest", image.manifest_digest],
        ["other/app", "2", image.manifest_digest],
    ]
    assert cli("images", "busybox").out.count("\n") == 2
    assert cli("images", "-f", "reference=other/*").out.count("\n") == 2

    refused = cli("rmi", image.id)
    assert refused.code == 1 and "referenced in multiple repositories" in refused.err
    untagged = cli("rmi", "busybox", "other/app:2")
    assert untagged.code == 0
    assert untagged.out.splitlines() == ["Untagged: busybox:latest", "Untagged: other/app:2"]
    assert store.image(f"{LOCAL}:1")

    deleted = cli("rmi", f"{LOCAL}:1", "nothing:here")
    assert deleted.code == 1 and "No such image: nothing:here" in deleted.err
    assert deleted.out.splitlines() == [f"Untagged: {LOCAL}:1", f"Deleted: {image.config_digest}"]
    assert store.entries() == []
    assert not any(path.is_file() for path in store.blobs.rglob("*"))


def test_rmi_by_id_with_force_removes_every_reference(cli: CLI, store: ImageStore, layouts: dict) -> None:
    image = add_layout(store, layouts["a"], "1", "one/app")
    cli("tag", "one/app", "two/app")
    forced = cli("rmi", "-f", image.id[:6])
    assert forced.code == 0
    assert sorted(forced.out.splitlines()) == sorted(
        ["Untagged: one/app:latest", "Untagged: two/app:latest", f"Deleted: {image.config_digest}"]
    )
    assert store.entries() == []


def test_system_df_counts_shared_layers_once(cli: CLI, store: ImageStore, layouts: dict) -> None:
    a = add_layout(store, layouts["a"], "1", "a/app")
    b = add_layout(store, layouts["b"], "1", "b/app")
    on_disk = sum(path.stat().st_size for path in store.blobs.rglob("*") if path.is_file())
    busybox_layer = a.layers[0].path.stat().st_size
    assert a.layers[0].digest == b.layers[0].digest
    listings = {listing.image.config_digest: listing.size for listing in store.list_images()}
    assert sum(listings.values()) > on_disk + busybox_layer // 2  # the naive sum counts busybox twice

    df = cli("system", "df")
    assert df.code == 0
    header, images, containers, volumes, cache = df.out.splitlines()
    assert header.split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert images.split()[:5] == ["Images", "2", "0", human_size(on_disk), "0B"]
    assert containers.split() == ["Containers", "0", "0", "0B", "0B"]
    assert volumes.split() == ["Local", "Volumes", "0", "0", "0B", "0B"]
    assert cache.split() == ["Build", "Cache", "0", "0", "0B", "0B"]

    verbose = cli("system", "df", "-v").out
    row = next(line for line in verbose.splitlines() if line.startswith("a/app"))
    assert human_size(busybox_layer) in row.split()  # its shared size


def test_root_is_a_global_option_too(cli: CLI, store: ImageStore, layouts: dict, tmp_path: Path) -> None:
    add_layout(store, layouts["a"], "1", "a/app")
    other = tmp_path / "other"
    assert "a/app" not in cli("--root", str(other), "images").out  # before the command: the other store
    assert "a/app" not in cli("images", "--root", str(other)).out  # after it, as before
    assert "a/app" in cli("--root", str(store.root), "images").out
    assert cli("--root", str(other), "tag", "a/app:1", "b/app:1").code == 1  # not in that store


def test_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    shown = subprocess.run([sys.executable, "-m", "registry", "--version"], capture_output=True, text=True)
    assert shown.returncode == 0 and shown.stdout == f"registry {version('registry')}\n", shown


def test_images_shows_the_unpacked_size(cli: CLI, store: ImageStore, layouts: dict) -> None:
    image = add_layout(store, layouts["a"], "1", "a/app:1")
    unpacked = 0
    for layer in image.layers:
        with tarfile.open(layer.path) as tar:  # what Docker counts: the bytes of the files unpacked
            unpacked += sum(member.size for member in tar.getmembers() if member.isreg())
    compressed = sum(layer.path.stat().st_size for layer in image.layers)
    assert human_size(unpacked) != human_size(compressed)
    row = cli("images").out.splitlines()[1].split()
    assert row[-1] == human_size(unpacked), row
