"""`registry push` to a real `registry serve`: cross-repository mounts for blobs pulled from a repository
of the same registry, plain uploads otherwise (chunked for big blobs), nothing sent twice."""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path

import httpx
import pytest

from registry.client.distribution import RegistryClient
from registry.client.progress import Progress
from registry.client.push import Pusher, PushResult
from registry.client.reference import parse
from registry.client.store import ImageStore, LocalImage
from tests.client.conftest import CLI, Pushed, add_layout
from tests.support.server import RegistryProcess

pytestmark = pytest.mark.clients


def push(store: ImageStore, image: LocalImage, target: str, chunk_size: int) -> PushResult:
    ref = parse(target)

    async def run() -> PushResult:
        async with RegistryClient(ref.api_host) as client:
            return await Pusher(store, client, Progress(io.StringIO()), chunk_size=chunk_size).push(
                image, ref
            )

    return asyncio.run(run())


def assert_served(client: httpx.Client, repo: str, store: ImageStore, image: LocalImage, tag: str) -> None:
    manifest = client.get(
        f"/v2/{repo}/manifests/{tag}", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
    )
    assert manifest.status_code == 200
    assert manifest.content == store.read_blob(image.manifest_digest)
    for digest in [image.config_digest, *(layer.digest for layer in image.layers)]:
        assert client.get(f"/v2/{repo}/blobs/{digest}").content == store.read_blob(digest)


def test_push_mounts_blobs_from_the_repository_they_were_pulled_from(
    cli: CLI,
    store: ImageStore,
    pushed_busybox: Pushed,
    server: RegistryProcess,
    client: httpx.Client,
    repo: str,
) -> None:
    assert cli("pull", pushed_busybox.reference).code == 0
    target = f"{server.host}/{repo}:2"
    assert cli("tag", pushed_busybox.reference, target).code == 0
    pushed = cli("push", target)
    assert pushed.code == 0, pushed.err
    assert pushed.out.splitlines()[0] == f"The push refers to repository [{server.host}/{repo}]"
    image = store.image(target)
    for layer in image.layers:
        assert f"{layer.digest[7:19]}: Mounted from client/busybox" in pushed.out
    assert (
        pushed.out.splitlines()[-1]
        == f"2: digest: {image.manifest_digest} size: {len(store.read_blob(image.manifest_digest))}"
    )
    assert_served(client, repo, store, image, "2")

    again = cli("push", target)
    assert again.code == 0
    assert again.out.count("Layer already exists") == len(image.layers)


def test_push_uploads_what_the_registry_lacks_and_pulls_back_identical(
    cli: CLI, store: ImageStore, server: RegistryProcess, client: httpx.Client, repo: str, tmp_path: Path
) -> None:
    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as archive:
        payload = (repo.encode() + b"\n") * 1000
        info = tarfile.TarInfo("data/unique.txt")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    target = f"{server.host}/{repo}:1"
    assert cli("import", str(rootfs), target).code == 0
    pushed = cli("push", target)
    assert pushed.code == 0, pushed.err
    image = store.image(target)
    assert f"{image.layers[0].digest[7:19]}: Pushed" in pushed.out
    assert_served(client, repo, store, image, "1")

    elsewhere = ImageStore(tmp_path / "elsewhere")
    assert cli("pull", "--root", str(elsewhere.root), target).code == 0
    assert elsewhere.image(target).manifest_digest == image.manifest_digest

    missing = cli("push", f"{server.host}/{repo}:absent")
    assert missing.code == 1 and "No such image" in missing.err


def test_big_blobs_are_uploaded_in_chunks(
    store: ImageStore, busybox_layout: Path, server: RegistryProcess, client: httpx.Client, repo: str
) -> None:
    image = add_layout(store, busybox_layout, "1", None)  # no known source: nothing to mount from
    assert image.layers[0].path.stat().st_size > 10 * 64 * 1024
    result = push(store, image, f"{server.host}/{repo}:chunked", chunk_size=64 * 1024)
    assert set(result.actions.values()) == {"pushed"}
    assert_served(client, repo, store, image, "chunked")
