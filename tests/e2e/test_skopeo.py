"""skopeo against a real `registry serve`: OCI and Docker schema 2 pushes, multi-arch indexes, round trips
that must be bit-exact, tag listing, inspection and deletion."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.images import (
    OCI_INDEX,
    OCI_MANIFEST,
    build_busybox_layout,
    build_multiarch_layout,
    foreign_arch,
    host_arch,
    layout_descriptor,
    reachable_blobs,
    read_blob,
    sha256,
)
from tests.support.server import RegistryProcess
from tests.support.tools import require_tool

pytestmark = pytest.mark.clients

# Copies that must keep digests pass --preserve-digests: without it, skopeo may legitimately push a
# different manifest. Its blob-info cache (/var/lib/containers/cache, shared with podman when run as root)
# remembers other compressions of the same layer already in this registry (podman recompresses layers on
# push), and skopeo then mounts one of those and rewrites the manifest instead of uploading our blob.

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
ACCEPT_ALL = ", ".join(
    [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, "application/vnd.docker.distribution.manifest.list.v2+json"]
)


@pytest.fixture(scope="module")
def busybox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_busybox_layout(tmp_path_factory.mktemp("busybox") / "layout", tag="1")


@pytest.fixture(scope="module")
def multiarch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_multiarch_layout(tmp_path_factory.mktemp("multiarch") / "layout", tag="multi")


@pytest.fixture
def skopeo(tmp_path: Path):
    """Run skopeo (insecure policy, no ambient credentials); fail the test with its output if it fails."""
    binary = require_tool("skopeo")["skopeo"]
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(tmp_path)}
    env["REGISTRY_AUTH_FILE"] = str(tmp_path / "auth.json")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [binary, "--insecure-policy", *args]
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        if check:
            assert result.returncode == 0, (
                f"{command} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
        return result

    return run


def _get_manifest(client: httpx.Client, repo: str, reference: str) -> httpx.Response:
    return client.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT_ALL})


def _assert_registry_holds(client: httpx.Client, repo: str, blobs: dict[str, bytes]) -> None:
    """Every blob (manifests by digest, the rest as blobs) is served back byte for byte."""
    for digest, data in blobs.items():
        document = _maybe_json(data)
        if document and document.get("mediaType") in (OCI_MANIFEST, OCI_INDEX):
            response = _get_manifest(client, repo, digest)
        else:
            response = client.get(f"/v2/{repo}/blobs/{digest}")
        assert response.status_code == 200, (digest, response.status_code, response.text[:500])
        assert response.content == data, digest
        assert response.headers["Docker-Content-Digest"] == digest


def _maybe_json(data: bytes) -> dict | None:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        return None
    return document if isinstance(document, dict) else None


@pytest.mark.both_servers  # the real-client push and pull that runs on each engine
def test_oci_layout_round_trip_is_bit_exact(
    server: RegistryProcess, client: httpx.Client, repo: str, busybox: Path, skopeo, tmp_path: Path
) -> None:
    name = f"{repo}/busybox"
    ref = f"docker://{server.host}/{name}:1"
    pushed = layout_descriptor(busybox, "1")
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{busybox}:1", ref)

    # The registry has exactly what was pushed: manifest bytes, digest, media type, every blob.
    response = _get_manifest(client, name, "1")
    assert response.status_code == 200, response.text
    assert response.headers["Docker-Content-Digest"] == pushed["digest"]
    assert response.headers["Content-Type"] == OCI_MANIFEST
    assert response.content == read_blob(busybox, pushed["digest"])
    _assert_registry_holds(client, name, reachable_blobs(busybox, "1"))

    # Back into an OCI layout: the same manifest digest, the same bytes for every blob.
    skopeo("copy", "--preserve-digests", "--src-tls-verify=false", ref, f"oci:{tmp_path / 'back'}:1")
    back = layout_descriptor(tmp_path / "back", "1")
    assert (back["digest"], back["size"], back["mediaType"]) == (
        pushed["digest"],
        pushed["size"],
        pushed["mediaType"],
    )
    assert reachable_blobs(tmp_path / "back", "1") == reachable_blobs(busybox, "1")

    # And into a dir: (manifest.json plus one file per blob, named by hex digest).
    skopeo("copy", "--preserve-digests", "--src-tls-verify=false", ref, f"dir:{tmp_path / 'dir'}")
    manifest = (tmp_path / "dir" / "manifest.json").read_bytes()
    assert sha256(manifest) == pushed["digest"]
    document = json.loads(manifest)
    for descriptor in [document["config"], *document["layers"]]:
        hexdigest = descriptor["digest"].removeprefix("sha256:")
        assert (tmp_path / "dir" / hexdigest).read_bytes() == read_blob(busybox, descriptor["digest"])


def test_push_as_docker_schema2(
    server: RegistryProcess, client: httpx.Client, repo: str, busybox: Path, skopeo, tmp_path: Path
) -> None:
    ref = f"docker://{server.host}/{repo}:v2s2"
    skopeo("copy", "--dest-tls-verify=false", "--format", "v2s2", f"oci:{busybox}:1", ref)

    raw = skopeo("inspect", "--tls-verify=false", "--raw", ref).stdout.encode()
    document = json.loads(raw)
    assert document["mediaType"] == DOCKER_MANIFEST
    assert document["config"]["mediaType"] == DOCKER_CONFIG
    assert all(
        layer["mediaType"].startswith("application/vnd.docker.image.rootfs") for layer in document["layers"]
    )

    response = _get_manifest(client, repo, "v2s2")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == DOCKER_MANIFEST
    assert response.content == raw
    assert response.headers["Docker-Content-Digest"] == sha256(raw)
    by_digest = _get_manifest(client, repo, sha256(raw))
    assert by_digest.status_code == 200 and by_digest.content == raw

    # The conversion keeps the config blob. (A layer may be swapped for another compression of the same
    # content that skopeo's blob-info cache knows to be in this registry, so only check it is served.)
    original = json.loads(read_blob(busybox, layout_descriptor(busybox, "1")["digest"]))
    assert document["config"]["digest"] == original["config"]["digest"]
    assert len(document["layers"]) == len(original["layers"])
    for layer in document["layers"]:
        head = client.head(f"/v2/{repo}/blobs/{layer['digest']}")
        assert head.status_code == 200, (layer, head.status_code)
        assert int(head.headers["Content-Length"]) == layer["size"]

    # A docker schema 2 manifest comes back unchanged through dir:.
    skopeo("copy", "--preserve-digests", "--src-tls-verify=false", ref, f"dir:{tmp_path / 'dir'}")
    assert (tmp_path / "dir" / "manifest.json").read_bytes() == raw


def test_multiarch_index_round_trip_with_all(
    server: RegistryProcess, client: httpx.Client, repo: str, multiarch: Path, skopeo, tmp_path: Path
) -> None:
    ref = f"docker://{server.host}/{repo}:multi"
    index = layout_descriptor(multiarch, "multi")
    skopeo("copy", "--preserve-digests", "--all", "--dest-tls-verify=false", f"oci:{multiarch}:multi", ref)

    response = _get_manifest(client, repo, "multi")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == OCI_INDEX
    assert response.headers["Docker-Content-Digest"] == index["digest"]
    assert response.content == read_blob(multiarch, index["digest"])
    _assert_registry_holds(client, repo, reachable_blobs(multiarch, "multi"))

    # --all back into a layout keeps the index digest and every blob of both platforms.
    skopeo(
        "copy", "--preserve-digests", "--all", "--src-tls-verify=false", ref, f"oci:{tmp_path / 'all'}:multi"
    )
    assert layout_descriptor(tmp_path / "all", "multi")["digest"] == index["digest"]
    assert reachable_blobs(tmp_path / "all", "multi") == reachable_blobs(multiarch, "multi")

    # Without --all the client picks one platform's manifest out of the index.
    platforms = {
        entry["platform"]["architecture"]: entry["digest"]
        for entry in json.loads(read_blob(multiarch, index["digest"]))["manifests"]
    }
    skopeo("copy", "--preserve-digests", "--src-tls-verify=false", ref, f"oci:{tmp_path / 'host'}:one")
    assert layout_descriptor(tmp_path / "host", "one")["digest"] == platforms[host_arch()]
    arch = foreign_arch()
    skopeo(
        "--override-arch",
        arch,
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        ref,
        f"oci:{tmp_path / 'foreign'}:one",
    )
    assert layout_descriptor(tmp_path / "foreign", "one")["digest"] == platforms[arch]

    # inspect resolves the index to that platform's image, but reports the digest of the index itself.
    inspected = json.loads(skopeo("--override-arch", arch, "inspect", "--tls-verify=false", ref).stdout)
    assert inspected["Architecture"] == arch
    assert inspected["Digest"] == index["digest"]
    foreign_manifest = json.loads(read_blob(multiarch, platforms[arch]))
    assert inspected["Layers"] == [layer["digest"] for layer in foreign_manifest["layers"]]


def test_list_tags(server: RegistryProcess, repo: str, busybox: Path, skopeo) -> None:
    base = f"docker://{server.host}/{repo}"
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{busybox}:1", f"{base}:1")
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{busybox}:1", f"{base}:latest")
    # Registry to registry: every blob is already there, only the manifest is written.
    skopeo(
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"{base}:1",
        f"{base}:1.0.0-rc_1",
    )

    listed = json.loads(skopeo("list-tags", "--tls-verify=false", base).stdout)
    assert listed["Repository"] == f"{server.host}/{repo}"
    assert sorted(listed["Tags"]) == ["1", "1.0.0-rc_1", "latest"]


def test_delete_by_digest(
    server: RegistryProcess, client: httpx.Client, repo: str, busybox: Path, skopeo
) -> None:
    base = f"docker://{server.host}/{repo}"
    digest = layout_descriptor(busybox, "1")["digest"]
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{busybox}:1", f"{base}:doomed")
    assert _get_manifest(client, repo, digest).status_code == 200

    skopeo("delete", "--tls-verify=false", f"{base}@{digest}")

    for reference in (digest, "doomed"):
        response = _get_manifest(client, repo, reference)
        assert response.status_code == 404, (reference, response.status_code, response.text)
        assert [error["code"] for error in response.json()["errors"]] == ["MANIFEST_UNKNOWN"]
    gone = skopeo("inspect", "--tls-verify=false", f"{base}:doomed", check=False)
    assert gone.returncode != 0
    # Deleting it again is an unknown manifest, which skopeo reports as a failure.
    assert skopeo("delete", "--tls-verify=false", f"{base}@{digest}", check=False).returncode != 0


def test_inspect(server: RegistryProcess, repo: str, busybox: Path, skopeo) -> None:
    ref = f"docker://{server.host}/{repo}:1"
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{busybox}:1", ref)
    skopeo(
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        f"oci:{busybox}:1",
        f"docker://{server.host}/{repo}:2",
    )

    inspected = json.loads(skopeo("inspect", "--tls-verify=false", ref).stdout)
    manifest = json.loads(read_blob(busybox, layout_descriptor(busybox, "1")["digest"]))
    config = json.loads(read_blob(busybox, manifest["config"]["digest"]))
    assert inspected["Name"] == f"{server.host}/{repo}"
    assert inspected["Digest"] == layout_descriptor(busybox, "1")["digest"]
    assert sorted(inspected["RepoTags"]) == ["1", "2"]
    assert inspected["Architecture"] == host_arch()
    assert inspected["Os"] == "linux"
    assert inspected["Layers"] == [layer["digest"] for layer in manifest["layers"]]
    assert inspected["Env"] == config["config"]["Env"]

    inspected_config = json.loads(skopeo("inspect", "--tls-verify=false", "--config", ref).stdout)
    assert inspected_config["rootfs"]["diff_ids"] == config["rootfs"]["diff_ids"]
    assert inspected_config["config"]["Cmd"] == ["sh"]
