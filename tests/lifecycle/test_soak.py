"""Soak: writers push images that share layers, mount, re-tag and delete, while collectors run every
moment with no grace; at the end every tagged image pulls whole and no stored blob is unreferenced.

Two set-ups: one server with two workers (SQLite, filesystem), and two replicas over PostgreSQL and S3.
About 20 seconds each by default; `REGISTRY_TEST_SOAK_SECONDS=300 pytest tests/lifecycle/test_soak.py`
runs longer.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from registry.storage import BlobStore, FilesystemStore
from tests.storage.conftest import MOTO_KEYS, new_bucket, s3_environment
from tests.support.oci import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, descriptor, errors, sha256
from tests.support.server import RegistryProcess
from tests.support.tools import run_registry

SOAK_SECONDS = float(os.environ.get("REGISTRY_TEST_SOAK_SECONDS", "20"))
WRITERS = 3
SHARED_LAYERS = [f"shared layer {n}".encode() * 50 for n in range(6)]
TAGS = ("latest", "stable", "v1", "v2")


@dataclass
class Deployment:
    servers: list[RegistryProcess]
    env: dict[str, str]
    data_dir: Path
    store: BlobStore


@pytest.fixture(params=["two-workers", "two-replicas"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    collector = {"REGISTRY_GC_INTERVAL": "1", "REGISTRY_GC_GRACE": "0", "REGISTRY_GC_UNTAGGED": "true"}
    if request.param == "two-workers":
        env: dict[str, str] = {}
        servers = [RegistryProcess(tmp_path / "data", "", {**collector, "REGISTRY_SERVER_WORKERS": "2"})]
        store: BlobStore = FilesystemStore(tmp_path / "data" / "blobs")
    else:
        from registry.storage.s3 import S3Store

        endpoint = request.getfixturevalue("moto_endpoint")
        bucket = new_bucket(endpoint)
        env = {
            "REGISTRY_DATABASE_URL": request.getfixturevalue("postgres").new_database(),
            **s3_environment(endpoint, bucket),
        }
        servers = [RegistryProcess(tmp_path / f"replica{n}", "", {**env, **collector}) for n in range(2)]
        store = S3Store(bucket, endpoint_url=endpoint, **MOTO_KEYS)
    for server in servers:
        server.launch()
    for server in servers:
        server.wait_ready()
    try:
        yield Deployment(servers, env, servers[0].data_dir, store)
    finally:
        for server in servers:
            server.stop()


@dataclass
class Writer:
    """One writer's repositories and what it expects of them: tag -> manifest bytes."""

    number: int
    clients: list[httpx.Client]
    rng: random.Random
    tagged: dict[tuple[str, str], bytes] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    retries: int = 0

    @property
    def client(self) -> httpx.Client:
        return self.rng.choice(self.clients)

    def repository(self) -> str:
        return f"soak/w{self.number}/{self.rng.choice('ab')}"

    def push_blob(self, repository: str, data: bytes, force: bool = False) -> None:
        digest = sha256(data)
        self.blobs[digest] = data
        client = self.client
        if not force and client.head(f"/v2/{repository}/blobs/{digest}").status_code == 200:
            return  # already there: the push skips it, as clients do
        response = client.post(f"/v2/{repository}/blobs/uploads/", params={"digest": digest}, content=data)
        assert response.status_code == 201, response.text

    def mount(self, repository: str, data: bytes) -> None:
        source = f"soak/w{self.rng.randrange(WRITERS)}/{self.rng.choice('ab')}"
        digest = sha256(data)
        self.blobs[digest] = data
        params = {"mount": digest, "from": source}
        response = self.client.post(f"/v2/{repository}/blobs/uploads/", params=params)
        if response.status_code == 202:  # not there to mount: upload it instead
            self.client.delete(response.headers["Location"])
            self.push_blob(repository, data, force=True)
        else:
            assert response.status_code == 201, response.text

    def push_image(self) -> None:
        repository, tag = self.repository(), self.rng.choice(TAGS)
        layers = [*self.rng.sample(SHARED_LAYERS, 2), f"w{self.number} {time.monotonic()}".encode()]
        config = json.dumps({"os": "linux", "architecture": "amd64", "id": self.rng.random()}).encode()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptor(config, OCI_CONFIG),
                "layers": [descriptor(layer, OCI_LAYER) for layer in layers],
            }
        ).encode()
        for attempt in range(20):
            force = attempt > 0
            self.push_blob(repository, config, force)
            for layer in layers:
                if not force and self.rng.random() < 0.3:
                    self.mount(repository, layer)
                else:
                    self.push_blob(repository, layer, force)
            response = self.client.put(
                f"/v2/{repository}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
            )
            if response.status_code == 201:
                self.tagged[(repository, tag)] = manifest
                return
            # The collector took a blob between its upload and the manifest: push them again.
            assert response.status_code == 400 and errors(response) == ["MANIFEST_BLOB_UNKNOWN"], (
                response.text
            )
            self.retries += 1
        raise AssertionError("a manifest push lost its blobs to the collector 20 times in a row")

    def delete_something(self) -> None:
        if not self.tagged:
            return
        repository, tag = self.rng.choice(sorted(self.tagged))
        if self.rng.random() < 0.5:
            response = self.client.delete(f"/v2/{repository}/manifests/{tag}")
            assert response.status_code == 202, response.text
            del self.tagged[(repository, tag)]
        else:
            digest = sha256(self.tagged[(repository, tag)])
            response = self.client.delete(f"/v2/{repository}/manifests/{digest}")
            assert response.status_code in (202, 404), response.text
            for key in [
                key for key, body in self.tagged.items() if key[0] == repository and sha256(body) == digest
            ]:
                del self.tagged[key]

    def step(self) -> None:
        if self.rng.random() < 0.75:
            self.push_image()
        else:
            self.delete_something()


def _collect(deployment: Deployment) -> str:
    """One `registry gc --grace 0s --untagged`: its report, or "" when a server's background collection had
    the lock."""
    result = run_registry(
        "gc", "--grace", "0s", "--untagged", "--data-dir", str(deployment.data_dir), env=deployment.env
    )
    assert result.returncode == 0, result.stderr
    return result.stdout if result.stdout.startswith("removed") else ""


def _pull_every_tagged_image(client: httpx.Client, writers: list[Writer]) -> set[str]:
    """Pull each writer's tagged images, checking every byte against its digest; the blobs they use."""
    used: set[str] = set()
    for writer in writers:
        for (repository, tag), manifest in writer.tagged.items():
            response = client.get(f"/v2/{repository}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
            assert response.status_code == 200 and response.content == manifest, (repository, tag)
            document = json.loads(manifest)
            for item in [document["config"], *document["layers"]]:
                pulled = client.get(f"/v2/{repository}/blobs/{item['digest']}")
                assert pulled.status_code == 200, (repository, item["digest"], pulled.text)
                assert sha256(pulled.content) == item["digest"]
                used.add(item["digest"])
    return used


async def _stored(store: BlobStore) -> set[str]:
    return {str(digest) async for digest in store.list_blobs()}


def test_soak(deployment: Deployment) -> None:
    clients = [server.client() for server in deployment.servers]
    writers = [Writer(n, clients, random.Random(n)) for n in range(WRITERS)]
    stop = threading.Event()
    failures: list[BaseException] = []

    def work(writer: Writer) -> None:
        try:
            while not stop.is_set():
                writer.step()
        except BaseException as error:
            failures.append(error)
            stop.set()

    threads = [threading.Thread(target=work, args=(writer,)) for writer in writers]
    for thread in threads:
        thread.start()
    reports: list[str] = []
    deadline = time.monotonic() + SOAK_SECONDS
    try:
        while time.monotonic() < deadline and not stop.is_set():
            reports.append(_collect(deployment))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not failures, failures
    print(f"{len(reports)} collections; {sum(w.retries for w in writers)} manifest pushes had to push again")
    # The collections (ours, and the servers' in the background) removed things under the writers' feet.
    reports += [server.log.read_text() for server in deployment.servers]
    assert any(re.search(r"deleted [1-9][0-9]* blob", report) for report in reports), reports

    while not _collect(deployment):
        pass  # a background collection holds the lock: the final one must be ours, after the writers
    expected = _pull_every_tagged_image(clients[0], writers)
    for opened in clients:
        opened.close()
    assert asyncio.run(_stored(deployment.store)) == expected
    assert sum(len(writer.tagged) for writer in writers) > 0
